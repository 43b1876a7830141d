"""The signal alarm logic on hand-made samples: limits, deadband, on- and off-delay, rate of
change, bad samples, passes that split a run of samples anywhere giving the same alarms, and
the plant file's ``alarms:`` block with line-numbered errors."""

from __future__ import annotations

from importlib.resources import files
from itertools import pairwise

import numpy as np
import pytest

from andon.floor.alarms import Carry, Transition, evaluate, kinds_of, track_signal
from andon.model.loader import ModelError, parse_plant
from andon.model.plant import SignalAlarms
from andon.model.types import SampleBatch

S = 1_000_000


def _ts(n: int, period_s: float = 10) -> np.ndarray:
    return (np.arange(n) * period_s * S).astype(np.int64)


def _events(got: list[Transition]) -> list[tuple[str, bool, int]]:
    return [(t.kind, t.raised, t.at // S) for t in got]


def test_high_and_high_high_limits_raise_and_clear_without_delays() -> None:
    a = SignalAlarms(high=30, high_high=35)
    v = np.array([25, 31, 36, 34, 29, 25], dtype=np.float64)
    got, carry = track_signal(_ts(6), v, a, {}, start=-1)
    assert _events(got) == [
        ("high", True, 10),
        ("high_high", True, 20),
        ("high_high", False, 30),
        ("high", False, 40),
    ]
    hh = next(t for t in got if t.kind == "high_high" and t.raised)
    assert (hh.value, hh.limit) == (36.0, 35.0)  # the evidence
    assert carry["high"] == Carry(False, 40 * S, False, 50 * S)


def test_low_and_low_low_limits() -> None:
    a = SignalAlarms(low=35, low_low=30)
    v = np.array([45, 34, 29, 31, 36], dtype=np.float64)
    got, _ = track_signal(_ts(5), v, a, {}, start=-1)
    assert _events(got) == [
        ("low", True, 10),
        ("low_low", True, 20),
        ("low_low", False, 30),
        ("low", False, 40),
    ]


def test_the_deadband_keeps_a_value_hovering_at_the_limit_from_chattering() -> None:
    v = np.array([29, 31, 29.5, 30.5, 29.2, 30.8, 28.9, 28], dtype=np.float64)
    chatter, _ = track_signal(_ts(8), v, SignalAlarms(high=30), {}, start=-1)
    assert len(chatter) == 6  # without a deadband: three raises, three clears
    got, _ = track_signal(_ts(8), v, SignalAlarms(high=30, deadband=1), {}, start=-1)
    # raised at the first sample over 30, cleared only below 29 (at 60 s)
    assert _events(got) == [("high", True, 10), ("high", False, 60)]


def test_the_on_delay_ignores_short_excursions_and_the_off_delay_short_returns() -> None:
    # 10 s samples: over for 20 s, back, over for 60 s, back for 20 s, over, back for good
    v = np.array([0, 5, 5, 0, 5, 5, 5, 5, 5, 5, 0, 0, 5, 0, 0, 0, 0, 0], dtype=np.float64)
    a = SignalAlarms(high=1, on_delay_s=30, off_delay_s=30)
    got, carry = track_signal(_ts(len(v)), v, a, {}, start=-1)
    # the 20 s excursion raised nothing; the long one raised 30 s after it began (70 s);
    # the 20 s return at 100 s cleared nothing; clear 30 s after 130 s
    assert _events(got) == [("high", True, 70), ("high", False, 160)]
    assert not carry["high"].active
    # still in its on-delay at the last sample: nothing yet, remembered for the next pass
    got, carry = track_signal(_ts(3), np.array([0, 5, 5.0]), a, {}, start=-1)
    assert got == [] and carry["high"].condition and carry["high"].condition_since == 10 * S


def test_rate_of_change_over_its_window_in_either_direction() -> None:
    # a coolant warming 0.2 °C per 10 s (1.2 °C/min) for a while, then steady, then a drop
    v = np.concatenate([np.full(6, 20.0), 20 + 0.2 * np.arange(1, 13), np.full(12, 22.4)])
    v = np.concatenate([v, 22.4 - 0.5 * np.arange(1, 4)])
    a = SignalAlarms(rate_per_min=1.0, rate_window_s=60)
    got, _ = track_signal(_ts(len(v)), v, a, {}, start=-1)
    # raised when a minute of the ramp is seen (at 120 s: 6 samples of 0.2 °C), cleared
    # when the window holds less than 1 °C of it, raised again by the drop at the end
    assert [(k, r) for k, r, _ in _events(got)] == [("rate", True), ("rate", False), ("rate", True)]
    assert got[0].at == 110 * S
    first = got[0]
    assert first.raised and first.value == pytest.approx(1.2) and first.limit == 1.0
    # the fast drop at the end is a rate alarm too (negative rate, same limit)
    drop = [t for t in got if t.raised][-1]
    assert drop.value < -1.0


def test_passes_split_anywhere_give_the_same_alarms_as_one_pass() -> None:
    rng = np.random.default_rng(3)
    v = np.cumsum(rng.normal(0, 1.0, 400)) + 50
    ts = _ts(400)
    a = SignalAlarms(
        high=55, low=45, high_high=60, deadband=1, on_delay_s=30, off_delay_s=20, rate_per_min=9
    )
    whole, _ = track_signal(ts, v, a, {}, start=-1, signal="x")
    assert len(whole) > 10  # a random walk crosses the limits many times
    for cut in (1, 57, 200, 399):
        first, carry = track_signal(ts[:cut], v[:cut], a, {}, start=-1, signal="x")
        # the second pass reads some samples again (context for the rate)
        lo = max(cut - 8, 0)
        second, _ = track_signal(ts[lo:], v[lo:], a, carry, start=-1, signal="x")
        assert first + second == whole


def test_evaluate_many_signals_from_one_batch_skips_bad_samples() -> None:
    ts = _ts(4).tolist()
    batch = SampleBatch.build(
        ["a", "b", "quiet"],
        [0] * 4 + [1] * 4,
        ts + ts,
        [1, 9, 9, 1, 1, 1, 99, 1],
        [0, 0, 0, 0, 0, 0, 2, 0],  # b's spike is a bad-quality sample
    )
    limits = {"a": SignalAlarms(high=5), "b": SignalAlarms(high=5), "quiet": SignalAlarms(low=0)}
    got, carries = evaluate(batch, limits, {}, start=-1)
    assert [(t.signal, t.kind, t.raised, t.at // S) for t in got] == [
        ("a", "high", True, 10),
        ("a", "high", False, 30),
    ]
    assert set(carries) == {("a", "high"), ("b", "high"), ("quiet", "low")}
    assert carries[("quiet", "low")] == Carry(False, -1, False, -1)


def test_limits_that_make_no_sense_are_refused_and_disabled_alarms_have_no_kinds() -> None:
    with pytest.raises(ValueError, match="high_high"):
        SignalAlarms(high=30, high_high=20)
    with pytest.raises(ValueError, match="deadband"):
        SignalAlarms(high=30, low=29, deadband=2)
    with pytest.raises(ValueError, match="at least one"):
        SignalAlarms(on_delay_s=5)
    with pytest.raises(ValueError, match="finite"):
        SignalAlarms(high=float("nan"))
    assert kinds_of(SignalAlarms(high=1, enabled=False)) == []
    assert kinds_of(SignalAlarms(low_low=0, rate_per_min=1)) == ["low_low", "rate"]


def test_a_bad_alarms_block_in_a_plant_file_names_its_line_and_field() -> None:
    text = (files("andon.sim") / "plants" / "demo.yaml").read_text(encoding="utf-8")
    good = "alarms: {high: 352000, deadband: 30000, on_delay_s: 60, off_delay_s: 120}"
    assert text.count(good) == 1
    line = text[: text.index(good)].count("\n") + 1
    for bad, field, why in (
        ("alarms: {high: 100, low: 200}", "alarms", "low (200) must be below high (100)"),
        ("alarms: {high: 100, on_dealy_s: 5}", "alarms.on_dealy_s", "unknown field"),
        ("alarms: {high: 100, deadband: -1}", "alarms.deadband", "greater than or equal"),
    ):
        with pytest.raises(ModelError) as got:
            parse_plant(text.replace(good, bad), "demo.yaml")
        e = got.value
        assert (e.file, e.line) == ("demo.yaml", line), str(e)
        assert e.field.endswith(f"sensors[2].{field}") and why in e.message, str(e)


def test_evaluate_over_many_signals_equals_each_signal_alone_across_passes() -> None:
    rng = np.random.default_rng(11)
    names = [f"s{i}" for i in range(12)]
    limits = {
        n: SignalAlarms(
            high=55 + i % 3,
            low=44 if i % 2 else None,
            high_high=61 if i % 4 == 0 else None,
            deadband=float(i % 3),
            on_delay_s=float(10 * (i % 4)),
            off_delay_s=float(10 * (i % 3)),
            rate_per_min=20.0 if i % 3 == 0 else None,
            rate_window_s=30.0 + 10 * (i % 2),
        )
        for i, n in enumerate(names)
    }
    period = [1, 5, 10]
    series = {
        n: (
            (np.arange(300) * period[i % 3] * S + i * S).astype(np.int64),
            np.cumsum(rng.normal(0, 1.5, 300)) + 50,
        )
        for i, n in enumerate(names)
    }
    alone = []
    for n, (ts, v) in series.items():
        got, _ = track_signal(ts, v, limits[n], {}, start=-1, signal=n)
        alone += got
    assert len(alone) > 50
    # the same data in three passes of one batch each (with some overlap for the rate)
    cuts = [0, 400 * S, 900 * S, 10**12]
    carries: dict[tuple[str, str], Carry] = {}
    together: list[Transition] = []
    for a, b in pairwise(cuts):
        rows = [
            (i, t, x)
            for i, (ts, v) in enumerate(series.values())
            for t, x in zip(ts.tolist(), v.tolist(), strict=True)
            if a - 60 * S <= t < b
        ]
        rng.shuffle(rows)  # a store need not return rows in order
        batch = SampleBatch.build(
            names, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]
        )
        got, carries = evaluate(batch, limits, carries, start=-1)
        together += got

    def key(t: Transition) -> tuple[str, int, str]:
        return (t.signal, t.at, t.kind)

    assert sorted(together, key=key) == sorted(alone, key=key)


def test_noise_over_a_short_baseline_is_not_a_rate_of_change() -> None:
    # a steady signal with ±2 units of noise at 1 Hz: its rate over a minute is ~0; the
    # first samples have less than a minute behind them and must not read 2 units per
    # second as 120 per minute
    v = 50 + np.random.default_rng(5).normal(0, 2, 600)
    a = SignalAlarms(rate_per_min=30, rate_window_s=60)
    got, _ = track_signal(_ts(600, 1), v, a, {}, start=-1)
    assert got == []
    batch = SampleBatch.build(["x"], [0] * 600, _ts(600, 1), v)
    assert evaluate(batch, {"x": a}, {}, start=-1)[0] == []
