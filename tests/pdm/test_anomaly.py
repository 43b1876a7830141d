"""andon.pdm.anomaly and ``andon pdm anomaly score``: causality, false-alarm rate, drift
detection with its contributing signal, feedback, the CLI round trip and bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from andon.commands import pdm_anomaly
from andon.pdm.anomaly import AnomalyConfig, AnomalyModel, RegimeClusters, Scorer

SIGNALS = ("vibration", "temperature", "current", "spindle_load")
OFFSET = {"A": np.array([2.0, 40.0, 15.0, 60.0]), "B": np.array([3.0, 45.0, 20.0, 75.0])}
SPREAD = np.array([0.2, 0.5, 0.8, 2.0])


def healthy(n: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Two products (regimes) in runs of 200 rows, AR(1) noise per signal."""
    rng = np.random.default_rng(seed)
    regimes = ["A" if (i // 200) % 2 == 0 else "B" for i in range(n)]
    noise = np.zeros((n, len(SIGNALS)))
    e = rng.normal(size=(n, len(SIGNALS)))
    for i in range(1, n):
        noise[i] = 0.5 * noise[i - 1] + np.sqrt(1 - 0.25) * e[i]
    base = np.array([OFFSET[r] for r in regimes])
    return base + noise * SPREAD, regimes


def run(model: AnomalyModel, x: np.ndarray, regimes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    scorer = Scorer(model)
    idx = model.regime_index(regimes, len(regimes))
    scores, flags = [], []
    for i in range(len(x)):
        r = scorer.step(x[i : i + 1], idx[i : i + 1])
        scores.append(r.score[0])
        flags.append(r.flag[0])
    return np.array(scores), np.array(flags)


def test_no_look_ahead() -> None:
    x, reg = healthy(3000, 1)
    model = AnomalyModel.fit(x[:2000], reg[:2000], signals=SIGNALS)
    before, _ = run(model, x[2000:], reg[2000:])
    changed = x[2000:].copy()
    changed[600:] += 50.0  # every row from 600 on changes
    changed[300, 2] = np.nan
    after, _ = run(model, changed, reg[2000:])
    assert np.array_equal(before[:300], after[:300])
    assert not np.array_equal(before[600:], after[600:])


def test_false_alarm_rate_near_target_on_healthy_data() -> None:
    x, reg = healthy(20_000, 2)
    model = AnomalyModel.fit(x, reg, signals=SIGNALS, config=AnomalyConfig(target_far=0.02))
    fresh, reg2 = healthy(20_000, 3)
    _, flags = run(model, fresh, reg2)
    far = flags.mean()
    # smoothed scores are correlated in time: flags come in runs, so the rate is noisy
    assert 0.005 <= far <= 0.06, far


def test_regimes_matter() -> None:
    x, reg = healthy(8000, 4)
    per_regime = AnomalyModel.fit(x, reg, signals=SIGNALS)
    pooled = AnomalyModel.fit(x, None, signals=SIGNALS)
    # product B's normal rows, labelled as product A: far off A's normal behaviour
    b_rows = x[np.array(reg) == "B"][:500]
    s_right, _ = run(per_regime, b_rows, ["B"] * 500)
    s_wrong, f_wrong = run(per_regime, b_rows, ["A"] * 500)
    assert s_right.mean() < 3 and s_wrong.mean() > 20 * s_right.mean() and f_wrong.mean() > 0.9
    # an unknown regime falls back to the pooled statistics
    assert per_regime.regime_index(["C"], 1)[0] == 0
    assert pooled.regimes == ("*",)


def test_drift_detected_with_the_right_top_signal() -> None:
    x, reg = healthy(6000, 5)
    model = AnomalyModel.fit(x[:4000], reg[:4000], signals=SIGNALS)
    test = x[4000:].copy()
    ramp = np.clip((np.arange(2000) - 1000) / 500.0, 0.0, None)  # temperature rises from 1000
    test[:, 1] += ramp * 3.0 * SPREAD[1]
    scorer = Scorer(model)
    idx = model.regime_index(reg[4000:], 2000)
    first_flag = None
    top = None
    for i in range(2000):
        r = scorer.step(test[i : i + 1], idx[i : i + 1])
        if r.flag[0] and i >= 1000 and first_flag is None:
            first_flag = i
            top = SIGNALS[int(np.argmax(r.contrib[0]))]
            assert r.contrib[0].sum() == pytest.approx(1.0)
    assert first_flag is not None and first_flag < 1500, first_flag
    assert top == "temperature"


def test_feedback_reject_raises_threshold_confirm_keeps() -> None:
    x, reg = healthy(4000, 6)
    models = [AnomalyModel.fit(x, reg, signals=SIGNALS) for _ in range(2)]
    fleet = AnomalyModel.stack(models)
    scorer = Scorer(fleet)
    thr0 = scorer.threshold.copy()
    bump = np.tile(OFFSET["A"], (2, 1))
    bump[:, 0] += 4 * SPREAD[0]  # the same moderate excursion on both machines
    idx = fleet.regime_index(["A", "A"], 2)
    peaks = np.zeros(2)
    for _ in range(40):
        r = scorer.step(bump, idx)
        peaks = np.maximum(peaks, r.score)
    assert r.flag.all()
    new = scorer.reject(0, float(peaks[0]))
    kept = scorer.confirm(1)
    assert new > peaks[0] and new <= thr0[0] * fleet.config.max_raise
    assert kept == thr0[1]
    r = scorer.step(bump, idx)
    assert not r.flag[0] and r.flag[1]  # the rejected pattern is normal now on machine 0 only
    assert scorer.rejected.tolist() == [1, 0] and scorer.confirmed.tolist() == [0, 1]
    # a wild peak cannot switch a machine off: the raise is capped
    assert scorer.reject(0, 1e9) == pytest.approx(thr0[0] * fleet.config.max_raise)


def test_fleet_step_equals_single_machine_steps_and_json_round_trip() -> None:
    xs = [healthy(1500, s) for s in (7, 8, 9)]
    models = [AnomalyModel.fit(x[:1000], r[:1000], signals=SIGNALS) for x, r in xs]
    fleet = AnomalyModel.from_json(AnomalyModel.stack(models).to_json())
    scorer = Scorer(fleet)
    singles = [run(m, x[1000:], r[1000:])[0] for m, (x, r) in zip(models, xs, strict=True)]
    got = []
    for i in range(1000, 1500):
        batch = np.stack([x[i] for x, _ in xs])
        idx = np.array([fleet.regime_index([r[i]], 1)[0] for _, r in xs])
        got.append(scorer.step(batch, idx).score)
    assert np.allclose(np.array(got).T, np.array(singles))


def test_regime_clusters_from_settings() -> None:
    rng = np.random.default_rng(3)
    settings = np.r_[rng.normal(0, 0.1, (100, 2)), rng.normal(5, 0.1, (100, 2))]
    rc = RegimeClusters.fit(settings, k=2)
    labels = rc.assign(settings)
    assert len(set(labels[:100])) == 1 and len(set(labels[100:])) == 1
    assert labels[0] != labels[150]


def test_bad_training_data_is_refused() -> None:
    with pytest.raises(ValueError, match="no training value"):
        AnomalyModel.fit(np.array([[1.0, np.nan], [2.0, np.nan]]), signals=("a", "b"))
    with pytest.raises(ValueError, match="regime labels"):
        AnomalyModel.fit(np.ones((5, 2)), ["A"])


# -- the CLI -----------------------------------------------------------------------------

cli = typer.Typer()
cli.add_typer(pdm_anomaly.app, name="anomaly")
runner = CliRunner()


def write_csv(path: Path, x: np.ndarray, sep: str = ",") -> None:
    lines = [sep.join(["t", *SIGNALS])]
    lines += [sep.join([str(i), *(f"{v:.5f}" for v in row)]) for i, row in enumerate(x)]
    path.write_text("\n".join(lines) + "\n")


def score_cli(path: Path, *extra: str) -> list[list[str]]:
    res = runner.invoke(cli, ["anomaly", "score", str(path), "--time-col", "t", *extra])
    assert res.exit_code == 0, res.output
    return [ln.split(",") for ln in res.stdout.strip().splitlines()]


def test_cli_round_trip_matches_the_library_and_is_causal(tmp_path: Path) -> None:
    x, _ = healthy(1600, 10)
    x = x[:, :]  # one regime: rows 0..199 are product A, still normal data for the model
    x[1400:, 3] += 8 * SPREAD[3]
    f = tmp_path / "m.csv"
    write_csv(f, x, sep=";")
    rows = score_cli(f, "--sep", ";", "--train-rows", "1000", "--target-far", "0.01")
    assert rows[0] == ["time", "score", "flag"]
    body = rows[1:]
    assert [r[0] for r in body] == [str(i) for i in range(1000, 1600)]
    flags = np.array([int(r[2]) for r in body])
    assert flags[420:].mean() > 0.9 and flags[:380].mean() < 0.1
    # the same numbers as the library, from the values as written
    xs = np.loadtxt(f, delimiter=";", skiprows=1)[:, 1:]
    model = AnomalyModel.fit(xs[:1000], signals=SIGNALS, config=AnomalyConfig(target_far=0.01))
    s, _ = run(model, xs, ["*"] * 1600)
    assert np.allclose([float(r[1]) for r in body], s[1000:], rtol=1e-5)
    # a later row changed: no earlier score changes
    xs2 = xs.copy()
    xs2[1300:] *= 3
    write_csv(f, xs2, sep=";")
    rows2 = score_cli(f, "--sep", ";", "--train-rows", "1000")
    assert rows2[1:301] == body[:300]
    assert rows2[301:] != body[300:]


@pytest.mark.parametrize(
    ("content", "args", "expect"),
    [
        ("t,a\n0,1\n1,x\n", ["--train-rows", "1"], "m.csv:3: column 'a': 'x' is not a number"),
        ("t,a\n0,1\n1,2,3\n", ["--train-rows", "1"], "m.csv:3: 3 fields, the header has 2"),
        ("u,a\n0,1\n", ["--train-rows", "1"], "m.csv:1: no time column 't'"),
        ("t,a\n0,1\n2,1\n1,1\n", ["--train-rows", "2"], "m.csv:4: time '1' goes back"),
        ("t,a\n0,1\n1,2\n2,3\n", ["--train-rows", "3"], "none left to score"),
        ("", ["--train-rows", "3"], "m.csv:1: empty file"),
    ],
)
def test_cli_bad_files_one_line_with_file_and_line(
    tmp_path: Path, content: str, args: list[str], expect: str
) -> None:
    f = tmp_path / "m.csv"
    f.write_text(content)
    res = runner.invoke(cli, ["anomaly", "score", str(f), "--time-col", "t", *args])
    assert res.exit_code == 2
    msg = " ".join(res.output.split())
    assert expect in msg, msg
    assert "Traceback" not in res.output


def test_cli_missing_file(tmp_path: Path) -> None:
    res = runner.invoke(
        cli, ["anomaly", "score", str(tmp_path / "no.csv"), "--time-col", "t", "--train-rows", "5"]
    )
    assert res.exit_code == 2 and "no.csv" in res.output
