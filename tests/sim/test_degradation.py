"""Failures that announce themselves (decision 0507): a degrading failure mode's hidden
health falls monotonically, the failure comes when it reaches the threshold, maintenance
restores it, the machine's signals follow it, and memoryless modes are what they were."""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import pytest
import yaml
from scipy.stats import spearmanr

from andon.model.degradation import DegradationProcess, draw_path
from andon.model.loader import ModelError, parse_plant
from andon.model.plant import Degradation, Plant
from andon.model.types import MachineState, SampleBatch, from_micros, to_micros
from andon.sim.factory import HEALTH_SAMPLE_S, Flush, VirtualFactory

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00Z, a Thursday
DAY = 86_400.0
M = "s/a/l/m"
GAMMA: dict[str, Any] = {
    "kind": "gamma",
    "onset_h": 10,
    "life_h": 40,
    "unit_cv": 0.3,
    "path_cv": 0.3,
    "regimes": {"q": 1.6},
}
SIGNALS: list[dict[str, Any]] = [
    {"id": "vib", "type": "vibration", "nominal": 2.0, "sample_period_s": 5},
    {"id": "vib_high", "type": "vibration_high", "sample_period_s": 10},
    {"id": "bearing", "type": "bearing_temperature", "sample_period_s": 10},
    {"id": "current", "type": "motor_current", "sample_period_s": 5},
    {"id": "load", "type": "spindle_load", "sample_period_s": 5},
]


def plant_doc(
    degradation: dict[str, Any] | None = GAMMA,
    *,
    maintenance: bool = False,
    jam: bool = True,
) -> dict[str, Any]:
    """One machine making two products (q is the heavier regime), running round the clock,
    with a memoryless jam and (optionally) a degrading bearing."""
    modes: list[dict[str, Any]] = []
    if jam:
        modes.append({"code": "JAM", "mtbf_h": 6, "mttr_min": 5})
    if degradation is not None:
        modes.append({"code": "BEARING", "mttr_min": 120, "degradation": degradation})
    calendar: dict[str, Any] = {"shifts": [{"name": "all", "start": "00:00", "end": "00:00"}]}
    if maintenance:
        calendar["maintenance"] = [
            {"machines": ["m"], "day": d, "start": "06:00", "duration_min": 60}
            for d in ("mon", "thu")
        ]
    return {
        "tenant": "t1",
        "site": {
            "id": "s",
            "timezone": "UTC",
            "calendar": calendar,
            "areas": [
                {
                    "id": "a",
                    "lines": [
                        {
                            "id": "l",
                            "products": [{"id": "p", "lot_size": 20}, {"id": "q", "lot_size": 20}],
                            "machines": [
                                {
                                    "id": "m",
                                    "type": "machining_centre",
                                    "ideal_cycle_s": {"p": 60, "q": 60},
                                    "signals": SIGNALS,
                                    "sim": {"failure_modes": modes, "cycle_cv": 0.05},
                                }
                            ],
                        }
                    ],
                }
            ],
        },
    }


def build(doc: dict[str, Any]) -> Plant:
    return parse_plant(yaml.safe_dump(doc, allow_unicode=True), "<test>")


def run(plant: Plant, seed: int, days: float) -> tuple[VirtualFactory, list[Flush]]:
    vf = VirtualFactory(plant, seed, T0, window_s=3600.0)
    flushes: list[Flush] = []
    for hour in range(1, round(days * 24) + 1):  # as the demo runs it: an hour at a time
        flushes += vf.advance(hour * 3600.0)
    flushes.append(vf.finish())
    return vf, flushes


def engine_s(iso: str) -> float:
    from datetime import datetime

    return (to_micros(datetime.fromisoformat(iso.replace("Z", "+00:00"))) - T0) / 1e6


def truth(vf: VirtualFactory, kind: str) -> list[dict[str, Any]]:
    return [g for g in vf.ground_truth if g["kind"] == kind]


def series(flushes: list[Flush], name: str) -> tuple[np.ndarray, np.ndarray]:
    b = SampleBatch.concat([f.samples for f in flushes])
    sel = b.index == b.names.index(name)
    return (b.ts[sel] - T0) / 1e6, b.value[sel]


def running_at(flushes: list[Flush], times: np.ndarray) -> np.ndarray:
    start = np.concatenate([f.states.start for f in flushes])
    code = np.concatenate([f.states.state for f in flushes])
    order = np.argsort(start, kind="stable")
    start, code = (start[order] - T0) / 1e6, code[order]
    return np.asarray(code[np.searchsorted(start, times, side="right") - 1] == MachineState.RUNNING)


# --- the law ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["gamma", "exponential"])
def test_a_path_falls_monotonically_to_the_threshold(kind: str) -> None:
    spec = Degradation(kind=kind, onset_h=5, life_h=30, threshold=0.25)
    rng = np.random.Generator(np.random.PCG64(3))
    fails = []
    for _ in range(200):
        path = draw_path(spec, rng)
        u = np.linspace(0.0, path.fail_u * 1.2, 5_000)
        h = path.health(u)
        assert np.all(np.diff(h) <= 1e-12)  # never rises within a life
        assert h[0] == 1.0 and path.health(path.fail_u) == pytest.approx(0.25, abs=1e-9)
        assert np.all(h[u < path.u[0]] == 1.0)  # nothing before the onset
        assert np.all(h[u < path.fail_u - 1e-6] > 0.25)
        fails.append(path.fail_u / 3600.0)
    # the mean time to the threshold is onset + life (both have mean 1 multipliers)
    assert np.mean(fails) == pytest.approx(35.0, rel=0.1)


def test_the_process_counts_wear_time_and_finds_the_crossings() -> None:
    spec = Degradation(kind="exponential", life_h=10, warnings=(0.8, 0.5))
    p = DegradationProcess(spec, np.random.Generator(np.random.PCG64(1)))
    p.start_recording()
    p.set_rate(100.0, 2.0)  # runs twice as fast from t = 100 s
    left = p.seconds_left()
    assert left == pytest.approx(p.path.fail_u / 2.0)
    p.set_rate(100.0 + left, 0.0)  # stops exactly at the threshold
    assert p.wear_left() == pytest.approx(0.0, abs=1e-6)
    levels = [lv for _, lv in p.life_crossings]
    assert levels == [0.8, 0.5]
    for at, lv in p.life_crossings:  # the health at each crossing time is the level
        h, rate = p.health_at(np.array([at]))
        assert h[0] == pytest.approx(lv, abs=1e-6) and rate[0] == 2.0
    h, _ = p.health_at(np.array([0.0, 50.0, 100.0 + left + 500.0]))
    assert h[0] == h[1] == 1.0 and h[2] == pytest.approx(spec.threshold)


# --- the factory -------------------------------------------------------------------------
def test_same_seed_same_degradation_other_seed_other() -> None:
    plant = build(plant_doc())
    a, fa = run(plant, 5, 6)
    b, fb = run(plant, 5, 6)
    assert a.ground_truth == b.ground_truth
    for x, y in zip(fa, fb, strict=True):
        assert np.array_equal(x.samples.value, y.samples.value)
    c, _ = run(plant, 6, 6)
    assert truth(a, "health") != truth(c, "health")


def test_health_falls_until_the_failure_at_the_threshold_and_the_repair_restores_it() -> None:
    plant = build(plant_doc())
    vf, _ = run(plant, 11, 14)
    faults = [g for g in truth(vf, "fault") if g["code"] == "BEARING"]
    assert len(faults) >= 3
    assert all(g["mode"] == "degrading" for g in faults)
    assert all(g["mode"] == "memoryless" for g in truth(vf, "fault") if g["code"] == "JAM")
    health = truth(vf, "health")
    t = np.array([engine_s(g["t"]) for g in health])
    h = np.array([g["health"] for g in health])
    assert np.all(np.diff(t) == HEALTH_SAMPLE_S)
    # between one failure's restart and the next failure the health never rises
    ends = [0.0] + [engine_s(g["end"]) for g in faults]
    for g, since in zip(faults, ends, strict=False):
        at = engine_s(g["t"])
        life = h[(t > since) & (t < at)]
        assert np.all(np.diff(life) <= 0.0)
        assert life[-1] >= 0.2 and life[-1] < 0.35  # a minute before: just above it
        down = h[(t > at) & (t < engine_s(g["end"]))]
        assert np.all(down == 0.2)  # at the threshold until the repair ends
        # each warning level was crossed before the failure, in order
        warned = [engine_s(g["warnings"][k]) for k in ("0.8", "0.5")]
        assert since < warned[0] <= warned[1] < at
        after = h[(t > engine_s(g["end"])) & (t < engine_s(g["end"]) + 120.0)]
        assert len(after) and after[0] == 1.0
    warns = truth(vf, "health_warning")
    assert {(w["code"], w["level"]) for w in warns} == {("BEARING", 0.8), ("BEARING", 0.5)}


def test_a_maintenance_window_restores_the_health() -> None:
    slow = {**GAMMA, "onset_h": 2, "life_h": 400, "onset_cv": 0.0}
    plant = build(plant_doc(slow, maintenance=True, jam=False))
    vf, _ = run(plant, 3, 10)
    pms = [g for g in truth(vf, "maintenance") if g["event"] == "preventive_maintenance"]
    assert len(pms) >= 2
    assert not truth(vf, "fault")
    health = {engine_s(g["t"]): g["health"] for g in truth(vf, "health")}
    for pm in pms:
        at = engine_s(pm["t"])
        before = health[at - at % HEALTH_SAMPLE_S]
        after = health[at - at % HEALTH_SAMPLE_S + HEALTH_SAMPLE_S]
        assert before < 0.99 and after == 1.0
        assert from_micros(T0 + round(at * 1e6)).hour == 6


def test_heavier_regime_wears_faster() -> None:
    # no onset, no spread between lives: the first life ends after exactly 10 h of wear time
    law = {"kind": "exponential", "life_h": 10, "unit_cv": 0.0}

    def first_failure(regimes: dict[str, float]) -> float:
        vf, _ = run(build(plant_doc({**law, "regimes": regimes}, jam=False)), 1, 1)
        return engine_s(truth(vf, "fault")[0]["t"])

    # always on, fed by the supply, shipping its parts: operating time is engine time
    assert first_failure({}) == pytest.approx(36_000.0, abs=1e-3)
    # q (half the lots) wears 1.6 times as fast: about 10 h / 1.3
    assert first_failure({"q": 1.6}) == pytest.approx(36_000.0 / 1.3, rel=0.05)


def test_signals_follow_the_health_over_28_days() -> None:
    plant = build(plant_doc())
    began = time.perf_counter()
    vf, flushes = run(plant, 7, 28)
    wall = time.perf_counter() - began
    print(f"28 days of one degrading machine: {wall:.1f} s")
    health = truth(vf, "health")
    ht = np.array([engine_s(g["t"]) for g in health])
    hv = np.array([g["health"] for g in health])
    hour = 3600.0
    # vibration and the bearing temperature follow the health; the current mostly follows
    # the product's load (its health term is small, decision 0507), yet still the health
    for sig, least in (("vib", 0.8), ("vib_high", 0.8), ("bearing", 0.8), ("current", 0.5)):
        t, v = series(flushes, f"{M}/{sig}")
        run_mask = running_at(flushes, t)
        h = np.interp(t, ht, hv)
        # hourly means over the running samples (noise and regime average out)
        k = (t // hour).astype(np.int64)
        keep = np.bincount(k, weights=run_mask) > 0.5 * np.bincount(k)
        vm = np.bincount(k, weights=v * run_mask) / np.maximum(np.bincount(k, weights=run_mask), 1)
        hm = np.bincount(k, weights=h * run_mask) / np.maximum(np.bincount(k, weights=run_mask), 1)
        rho = spearmanr(vm[keep], 1.0 - hm[keep]).statistic
        assert rho > least, (sig, rho)
    # a raw sample correlates too, though less (noise)
    t, v = series(flushes, f"{M}/vib")
    on = running_at(flushes, t)
    raw = spearmanr(v[on], -np.interp(t[on], ht, hv)).statistic
    assert raw > 0.3


def test_memoryless_modes_fail_at_the_same_operating_times_as_without_degradation() -> None:
    with_d = build(plant_doc())
    without = build(plant_doc(None))

    def jam_operating_times(plant: Plant) -> list[float]:
        vf, flushes = run(plant, 21, 6)
        start = np.concatenate([f.states.start for f in flushes])
        end = np.concatenate([f.states.end for f in flushes])
        code = np.concatenate([f.states.state for f in flushes])
        run_iv = sorted(
            ((a - T0) / 1e6, (b - T0) / 1e6)
            for a, b, c in zip(start, end, code, strict=True)
            if c == MachineState.RUNNING
        )
        out = []
        for g in truth(vf, "fault"):
            if g["code"] != "JAM":
                continue
            at = engine_s(g["t"])
            out.append(sum(max(0.0, min(b, at) - a) for a, b in run_iv))
        return out

    a, b = jam_operating_times(with_d), jam_operating_times(without)
    n = min(len(a), len(b))
    assert n >= 10
    # the JAM clock counts operating time and draws from its own stream: the degrading
    # mode (its own stream, its stops) does not move it
    assert np.allclose(a[:n], b[:n], rtol=1e-9, atol=1e-3)


def test_a_plant_without_degradation_keeps_its_ground_truth_format() -> None:
    vf, _ = run(build(plant_doc(None)), 2, 1)
    kinds = {g["kind"] for g in vf.ground_truth}
    assert kinds == {"state", "fault"}
    assert all("mode" not in g for g in truth(vf, "fault"))


@pytest.mark.parametrize(
    ("change", "field", "why"),
    [
        (
            lambda d: d["sim"].update(failure_basis="calendar"),
            "sim.failure_modes[1].degradation",
            "failure_basis: operating",
        ),
        (
            lambda d: d["sim"]["failure_modes"][1]["degradation"]["regimes"].update(zz=2),
            "sim.failure_modes[1].degradation.regimes.zz",
            "no product 'zz'",
        ),
        (
            lambda d: d["sim"]["failure_modes"][1].update(mtbf_h=5),
            "sim.failure_modes[1]",
            "leave mtbf_h out",
        ),
        (
            lambda d: d["sim"]["failure_modes"][1]["degradation"].update(warnings=[0.1]),
            "sim.failure_modes[1].degradation",
            "not above the threshold",
        ),
        (
            lambda d: d["sim"]["failure_modes"][1]["degradation"].update(kind="weibull"),
            "sim.failure_modes[1].degradation.kind",
            "gamma",
        ),
    ],
)
def test_bad_degradation_is_a_model_error_at_its_line(change: Any, field: str, why: str) -> None:
    doc = copy.deepcopy(plant_doc())
    machine = doc["site"]["areas"][0]["lines"][0]["machines"][0]
    change(machine)
    text = yaml.safe_dump(doc, allow_unicode=True)
    with pytest.raises(ModelError) as exc:
        parse_plant(text, "plant.yaml")
    err = exc.value
    assert err.file == "plant.yaml" and err.line is not None
    assert err.field == "site.areas[0].lines[0].machines[0]." + field
    assert why in err.message
    assert str(err).startswith(f"plant.yaml:{err.line}:")


def test_a_dumped_plant_with_degradation_validates_again() -> None:
    # the API and the twin store plants as dumps; the nominal mtbf_h rides along
    plant = build(plant_doc())
    assert Plant.model_validate(plant.model_dump(by_alias=True)) == plant
    assert Plant.model_validate_json(plant.model_dump_json(by_alias=True)) == plant
    fm = plant.site.areas[0].lines[0].machines[0].sim.failure_modes[1]
    assert fm.kind == "degrading" and fm.mtbf_h == 50.0


def test_calibrating_a_degrading_line_gives_a_memoryless_twin(tmp_path: Any) -> None:
    # the store holds the stops, not the health: the twin's calibration fits an MTBF
    import asyncio

    from andon.demo.run import run_headless
    from andon.store.duckdb_store import DuckDBStore
    from andon.twin.calibrate import calibrate_line

    doc = plant_doc({**GAMMA, "onset_h": 2, "life_h": 10})
    doc["site"]["areas"][0]["lines"][0]["machines"][0]["signals"] = []  # stops are enough
    plant = build(doc)

    async def go() -> Any:
        store = DuckDBStore.open(tmp_path / "h.duckdb")
        try:
            await run_headless(plant, store, seed=4, hours=3 * 24, start=T0)
            return await calibrate_line(store, plant, "l", T0, T0 + round(3 * DAY * 1e6))
        finally:
            await store.close()

    cal = asyncio.run(go())
    twin = parse_plant(cal.to_yaml(), "<twin.yaml>")
    modes = {fm.code: fm for fm in twin.site.areas[0].lines[0].machines[0].sim.failure_modes}
    rep = cal.report["machines"]["m"]["failures"]["BEARING"]
    assert rep["source"] == "data" and rep["n"] >= 2
    assert modes["BEARING"].kind == "memoryless"
    assert modes["BEARING"].mtbf_h == pytest.approx(rep["mtbf_h"])
