"""Twin fidelity: calibrate from 14 days of the virtual factory's stored telemetry, predict
the next 14 days, compare with what the factory made and with the configured truth."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import numpy as np
import pytest
from scipy import stats

from andon.demo.run import default_start, run_headless
from andon.model.loader import parse_plant
from andon.model.plant import Plant
from andon.model.types import PartBatch, StateBatch
from andon.store.duckdb_store import DuckDBStore
from andon.twin.calibrate import Calibration, calibrate_line, fit_distribution, fit_line
from andon.twin.run import predict_parts
from tests.twin.plants import bare_demo_plant

DAY_US = 86_400_000_000


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    plant = bare_demo_plant()
    start = default_start(plant)
    half, end = start + 14 * DAY_US, start + 28 * DAY_US
    path = tmp_path_factory.mktemp("twin") / "history.duckdb"

    async def go() -> dict[str, Any]:
        store = DuckDBStore.open(path)
        try:
            await run_headless(plant, store, seed=7, hours=28 * 24, start=start)
            out: dict[str, Any] = {"plant": plant, "start": start, "half": half, "end": end}
            for area, line in plant.lines():
                cal = await calibrate_line(store, plant, line.id, start, half)
                sinks = [
                    plant.machine_path(area, line, m)
                    for m in line.machines
                    if not any(m.id in b.from_ for b in line.buffers)
                ]
                made = await store.read_parts(plant.tenant, sinks, half, end)
                out[line.id] = (cal, int(made.good.sum()))
            return out
        finally:
            await store.close()

    return asyncio.run(go())


LINES = ["L1", "L2", "L3"]


@pytest.mark.slow
@pytest.mark.parametrize("line_id", LINES)
def test_twin_predicts_the_next_14_days_within_3_percent(
    history: dict[str, Any], line_id: str
) -> None:
    cal, made = history[line_id]
    twin = parse_plant(cal.to_yaml(), "<twin.yaml>")  # the YAML is a valid plant file
    pred = predict_parts(twin, line_id, history["half"], 14 * 24.0, 8, seed=5)
    assert abs(pred.mean / made - 1.0) < 0.03, (pred, made)


def truth_machines(plant: Plant, line_id: str) -> dict[str, Any]:
    return {m.id: m for _, ln in plant.lines() if ln.id == line_id for m in ln.machines}


@pytest.mark.slow
@pytest.mark.parametrize("line_id", LINES)
def test_fitted_cycle_times_within_5_percent_and_failures_within_their_intervals(
    history: dict[str, Any], line_id: str
) -> None:
    cal: Calibration = history[line_id][0]
    truth = truth_machines(history["plant"], line_id)
    for mid, rep in cal.report["machines"].items():
        m = truth[mid]
        for product, mean in rep["cycle"]["mean_s_by_product"].items():
            true = m.ideal_cycle_s[product] * (1 + m.sim.speed_loss)
            assert mean == pytest.approx(true, rel=0.05), (mid, product)
        for fm in m.sim.failure_modes:
            f = rep["failures"][fm.code]
            if f["n"] == 0:
                continue
            # MTBF: exact 99.9 % chi-square interval around the exposure; 5 % needs
            # ~1,500 failures of a mode, far more than 14 days hold
            exposure = f["mtbf_h"] * f["n"]
            lo = 2 * exposure / stats.chi2.ppf(0.9995, 2 * f["n"] + 2)
            hi = 2 * exposure / stats.chi2.ppf(0.0005, 2 * f["n"])
            assert lo <= fm.mtbf_h <= hi, (mid, fm.code, f)
            if "mttr_ci_min" in f and f["n"] >= 10:
                lo95, hi95 = f["mttr_ci_min"]
                widen = (hi95 - lo95) / 2 * (3.29 / 1.96 - 1)
                assert lo95 - widen <= fm.mttr_min <= hi95 + widen, (mid, fm.code, f)
    assert cal.report["calendar_agreement"] > 0.99


@pytest.mark.slow
def test_buffer_capacity_is_read_from_blocking_and_starving(history: dict[str, Any]) -> None:
    cal: Calibration = history["L2"][0]
    b3 = cal.report["buffers"]["B3"]
    assert {k: b3[k] for k in ("capacity", "configured", "source")} == {
        "capacity": 5,
        "configured": 5,
        "source": "data",
    }
    assert 0 <= b3["initial"] <= 5 and b3["initial_source"] in ("empty", "full")
    text = cal.to_yaml()
    assert text.startswith("# andon twin of line L2")
    assert "MTBF" in text and "cycle" in text


def test_fit_distribution_picks_the_family_and_falls_back_to_empirical() -> None:
    rng = np.random.default_rng(51)
    ln = fit_distribution(rng.lognormal(0.0, 0.3, 3000))
    assert ln["dist"] == "lognormal"
    assert ln["cv"] == pytest.approx(math.sqrt(math.expm1(0.09)), rel=0.05)
    bimodal = np.concatenate([rng.normal(10, 0.2, 1500), rng.normal(20, 0.2, 1500)])
    emp = fit_distribution(bimodal)
    assert emp["dist"] == "empirical" and len(emp["empirical"]) == 101
    assert fit_distribution(np.full(10, 3.0))["dist"] == "deterministic"


def test_without_history_everything_keeps_its_configured_value() -> None:
    plant = bare_demo_plant()
    start = default_start(plant)
    cal = fit_line(plant, "L2", StateBatch.empty(), PartBatch.empty(), start, start + DAY_US)
    twin = parse_plant(cal.to_yaml(), "<twin.yaml>")
    (line,) = [ln for _, ln in twin.lines()]
    assert [m.id for m in line.machines] == ["RB-01", "FSW-01"]
    for rep in cal.report["machines"].values():
        assert rep["cycle"]["source"] == "config"
        assert all(f["source"] == "config" for f in rep["failures"].values())
    assert cal.report["buffers"]["B3"]["source"] == "config"
    with pytest.raises(KeyError, match="no line"):
        fit_line(plant, "nope", StateBatch.empty(), PartBatch.empty(), start, start + DAY_US)
