"""The KPI engine over a real DuckDB store, reason entries, line OEE, reports and the CLI,
on a hand-made three-hour timeline whose figures are worked out by hand."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from andon.commands.kpi import app as kpi_app
from andon.kpi import api
from andon.kpi.baseline import fit_baseline
from andon.kpi.carbon import GRID_FACTORS, GridFactor, co2e_kg, grid_factor
from andon.kpi.cost import LossPrices
from andon.kpi.energy import Tariff
from andon.kpi.oee import oee_table
from andon.kpi.reasons import ReasonEntry, ReasonLog, ReasonTree, apply_entries, downtime
from andon.kpi.report import build_report, write_report
from andon.kpi.timeline import Buckets
from andon.model.loader import parse_plant
from andon.model.plant import Plant
from andon.model.types import MachineState, PartBatch, SampleBatch, StateBatch, to_micros
from andon.store.duckdb_store import DuckDBStore
from tests.kpi.data_dir import write_data_dir
from tests.plants import one_machine, two_machines

S = 1_000_000
ZONE = "Asia/Taipei"
T0 = to_micros(datetime(2026, 1, 5, 8, 0, tzinfo=ZoneInfo(ZONE)))
T1 = T0 + 3 * 3600 * S
M = "s/a/l/m"
# running 08:00-09:00, down without a code 09:00-09:10, running 09:10-10:00,
# down JAM 10:00-10:02, running 10:02-11:00
STOP1, STOP2 = T0 + 3600 * S, T0 + 7200 * S
STATES = StateBatch.build(
    [M],
    [0] * 5,
    [T0, STOP1, STOP1 + 600 * S, STOP2, STOP2 + 120 * S],
    [STOP1, STOP1 + 600 * S, STOP2, STOP2 + 120 * S, T1],
    [0, 3, 0, 3, 0],
    ["", "", "", "JAM", ""],
)
RUNNING_S = 3 * 3600 - 600 - 120  # 10 080 s
# 150 parts of 60 s ideal (9 000 s of net operating time), the 10th and 20th scrap
PART_TS = [T0 + (k + 1) * 67 * S for k in range(150)]
SCRAP = {9, 19}


def _plant() -> Plant:
    base = one_machine(
        cycle_s=60.0,
        signals=[{"id": "energy", "type": "energy", "sample_period_s": 10}],
        timezone=ZONE,
    )
    doc = base.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    # a site meter on the machine whose register wraps at 100 000 kWh during the range
    doc["site"]["meters"] = [
        {
            "id": "main",
            "rollover_kwh": 100_000,
            "signals": [{"id": "energy", "type": "energy", "sample_period_s": 10}],
        }
    ]
    return parse_plant(yaml.safe_dump(doc), "<test>")


def _energy() -> SampleBatch:
    """Energy registers every 10 s: 10 kW running, 1 kW down; the machine's starts at
    500 kWh, the site meter's at 99 990 kWh and wraps at 100 000."""
    grid = np.arange(T0, T1 + 1, 10 * S, dtype=np.int64)
    state_at = np.searchsorted(STATES.start, grid, side="right") - 1
    kw = np.where(STATES.state[np.minimum(state_at, len(STATES) - 1)] == 0, 10.0, 1.0)
    used = np.concatenate(([0.0], np.cumsum(kw[:-1] * 10 / 3600)))
    meter = np.mod(99_990.0 + used, 100_000.0)
    n = len(grid)
    return SampleBatch.build(
        [f"{M}/energy", "s/main/energy"],
        np.repeat([0, 1], n),
        np.concatenate([grid, grid]),
        np.concatenate([500.0 + used, meter]),
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    parts = PartBatch.build(
        [M],
        [0] * 150,
        PART_TS,
        ["p"] * 150,
        [0 if k in SCRAP else 1 for k in range(150)],
        [1 if k in SCRAP else 0 for k in range(150)],
    )
    return write_data_dir(tmp_path_factory.mktemp("kpi"), _plant(), STATES, parts, _energy())


def _with_store(d: Path, fn: Any) -> Any:
    async def go() -> Any:
        store = DuckDBStore.open(d / "telemetry.duckdb")
        try:
            return await fn(store)
        finally:
            await store.close()

    return asyncio.run(go())


def test_oee_from_the_store(data_dir: Path) -> None:
    plant = _plant()
    t = _with_store(data_dir, lambda s: api.oee(s, plant, T0, T1))
    (row,) = t.rows()
    assert row["planned_busy_s"] == 10_800.0
    assert row["availability"] == pytest.approx(RUNNING_S / 10_800)
    assert row["performance"] == pytest.approx(9000 / RUNNING_S)
    assert row["quality"] == pytest.approx(148 / 150)
    # the 10-minute unexplained stop is a breakdown; the 2-minute jam a minor stop
    assert (row["breakdown_s"], row["minor_stop_s"]) == (600.0, 120.0)
    by_hour = _with_store(data_dir, lambda s: api.oee(s, plant, T0, T1, period="day"))
    assert [r["bucket"] for r in by_hour.rows()] == ["2026-01-05"]


def test_reason_entries_explain_stops_and_give_mtta(data_dir: Path, tmp_path: Path) -> None:
    plant = _plant()
    tree = ReasonTree.default().with_failure_modes(plant).with_codes({"JAM": "jam"})
    before = _with_store(data_dir, lambda s: api.downtime_report(s, plant, T0, T1, tree=tree))
    assert before.unexplained_s == 600.0 and before.downtime_s == 720.0
    with ReasonLog(tmp_path / "reasons.duckdb") as log:
        with pytest.raises(ValueError, match="unknown reason"):
            log.record(plant.tenant, ReasonEntry(M, STOP1, "gremlins", "ana", T1), tree)
        with pytest.raises(ValueError, match="person"):
            log.record(plant.tenant, ReasonEntry(M, STOP1, "mechanical", " ", T1), tree)
        # acknowledged 3 min after the stop began; corrected later by someone else
        log.record(plant.tenant, ReasonEntry(M, STOP1, "electrical", "ana", STOP1 + 180 * S), tree)
        log.record(plant.tenant, ReasonEntry(M, STOP1, "mechanical", "bo", T1, "belt"), tree)
        entries = log.entries(plant.tenant, T0, T1)
        assert [(e.who, e.reason) for e in entries] == [("ana", "electrical"), ("bo", "mechanical")]
        after = _with_store(
            data_dir, lambda s: api.downtime_report(s, plant, T0, T1, tree=tree, reason_log=log)
        )
        rel = _with_store(
            data_dir, lambda s: api.reliability_report(s, plant, T0, T1, reason_log=log)
        )
    assert after.unexplained_s == 0.0
    top = after.pareto[0]
    assert (top.category, top.reason, top.duration_s) == ("equipment", "mechanical", 600.0)
    total = next(r for r in rel if r.reason == "")
    assert (total.failures, total.acknowledged, total.mtta_s) == (2, 1, 180.0)
    assert total.mtbf_s == RUNNING_S / 2 and total.mttr_s == 360.0


def test_energy_by_state_idle_and_co2e(data_dir: Path) -> None:
    plant = _plant()
    rep = _with_store(data_dir, lambda s: api.energy_report(s, plant, T0, T1))
    (m,) = rep.machines
    # 10 kW x 10 080 s and 1 kW x 720 s
    assert m.kwh_by_state["running"] == pytest.approx(28.0)
    assert m.kwh_by_state["down"] == pytest.approx(0.2)
    assert m.nonproductive_kwh == pytest.approx(0.2)
    assert m.kwh_per_good_part == pytest.approx((28.0 + 0.2) / 148, abs=1e-6)
    assert m.peak_kw_15min == pytest.approx(10.0)
    assert rep.as_dict()["grid_factor"]["country"] == "TW"
    assert m.co2e_kg == pytest.approx(28.2 * GRID_FACTORS["TW"].kg_per_kwh)
    assert "cost" not in m.as_dict() and m.as_dict()["co2e_kg"] == m.co2e_kg


def test_meter_rollover_tariff_cost_and_factor_override(data_dir: Path) -> None:
    plant = _plant()
    # peak 09:00-10:00 local at 5.0/kWh: 10 min down at 1 kW + 50 min running at 10 kW
    # = 1/6 + 25/3 = 8.5 kWh; the other 19.7 kWh at 2.0/kWh
    tariff = Tariff.from_dict(
        {
            "base_price": 2.0,
            "timezone": ZONE,
            "periods": [{"name": "peak", "start": "09:00", "end": "10:00", "price": 5.0}],
        }
    )
    factor = GridFactor("TW", 0.5, 2025, "supplier")
    rep = _with_store(
        data_dir, lambda s: api.energy_report(s, plant, T0, T1, tariff=tariff, factor=factor)
    )
    (meter,) = rep.meters
    assert meter.kwh == pytest.approx(28.2)  # across the wrap at 100 000 kWh
    assert meter.cost_by_period is not None
    assert meter.cost_by_period["peak"]["kwh"] == pytest.approx(8.5)
    assert meter.cost == pytest.approx(8.5 * 5.0 + 19.7 * 2.0)
    assert meter.co2e_kg == pytest.approx(28.2 * 0.5)
    with pytest.raises(ValueError, match="unknown tariff keys"):
        Tariff.from_dict({"base_price": 1.0, "peak": 2.0})
    with pytest.raises(ValueError, match="unknown days"):
        Tariff.from_dict(
            {
                "base_price": 1,
                "periods": [
                    {"name": "x", "start": "1:00", "end": "2:00", "price": 1, "days": ["monday"]}
                ],
            }
        )


def test_a_stop_cut_by_the_range_start_is_judged_whole(data_dir: Path) -> None:
    # the 10-min unexplained stop began 500 s before the range: 100 s of breakdown in range
    plant = _plant()
    a = STOP1 + 500 * S
    t = _with_store(data_dir, lambda s: api.oee(s, plant, a, T1))
    (row,) = t.rows()
    assert (row["breakdown_s"], row["minor_stop_s"]) == (100.0, 120.0)


def test_energy_baseline_and_savings(tmp_path: Path) -> None:
    # six days; daily energy 100 kWh + 0.5 kWh/part for the four baseline days and 10 % less
    # on the two reporting days, so the savings are 10 % of the predicted 225 + 190 kWh
    plant = one_machine(signals=[{"id": "energy", "type": "energy", "sample_period_s": 3600}])
    day0 = to_micros(datetime(2026, 1, 5, tzinfo=ZoneInfo("UTC")))
    produced = [100, 200, 150, 300, 250, 180]
    daily = [100.0 + 0.5 * p for p in produced]
    daily[4:] = [0.9 * e for e in daily[4:]]
    hours = np.arange(0, 6 * 24 + 1)
    per_hour = np.repeat(np.array(daily) / 24, 24)
    reg = np.concatenate(([1000.0], 1000.0 + np.cumsum(per_hour)))
    ts = day0 + hours * 3600 * S
    part_ts = [
        day0 + d * 86_400 * S + 3600 * S + k * S for d, n in enumerate(produced) for k in range(n)
    ]

    async def go() -> api.EnergyBaseline:
        store = DuckDBStore.open(tmp_path / "t.duckdb")
        try:
            await store.append(
                "t1", SampleBatch.build(["s/a/l/m/energy"], np.zeros(len(ts)), ts, reg)
            )
            await store.append_parts(
                "t1",
                PartBatch.build(
                    ["s/a/l/m"],
                    [0] * len(part_ts),
                    part_ts,
                    ["p"] * len(part_ts),
                    [1] * len(part_ts),
                    [0] * len(part_ts),
                ),
            )
            day = 86_400 * S
            return await api.energy_baseline(
                store, plant, (day0, day0 + 4 * day), (day0 + 4 * day, day0 + 6 * day)
            )
        finally:
            await store.close()

    rep = asyncio.run(go())
    bl = rep.baseline
    assert (bl.intercept_kwh, bl.kwh_per_unit, bl.r2) == pytest.approx((100.0, 0.5, 1.0))
    assert [r.production for r in rep.periods] == [250, 180]
    assert rep.savings_kwh == pytest.approx(0.1 * (225.0 + 190.0))
    assert [sorted(r) for r in rep.as_dict()["periods"]] == [
        ["bucket", "kwh", "predicted_kwh", "production", "savings_kwh"]
    ] * 2


def test_losses_are_priced_and_ranked(data_dir: Path) -> None:
    plant = _plant()
    prices = LossPrices(per_hour=3600.0, per_scrap_part=100.0, per_kwh=5.0, currency="TWD")
    rows = _with_store(data_dir, lambda s: api.loss_report(s, plant, T0, T1, prices))
    costs = [r.cost for r in rows]
    assert costs == sorted(costs, reverse=True)
    by = {r.loss: r for r in rows}
    # speed loss: 10 080 s running - 9 000 s ideal = 1 080 s at 1/s
    assert by["reduced speed"].cost == pytest.approx(1080.0)
    assert by["breakdowns"].cost == pytest.approx(600.0)
    assert by["production rejects"].cost == 200.0
    assert by["idle energy"].cost == pytest.approx(1.0)
    assert by["idle energy"].as_dict()["unit"] == "kWh"


def test_line_oee_average_and_bottleneck() -> None:
    # m1 (ideal 50 s) feeds m2 (ideal 60 s); one hour running each.
    # m1: 60 good -> OEE 3000/3600; m2: 54 good + 1 scrap -> OEE 54 x 60 / 3600 = 0.9.
    # Bottleneck = m2 (load 55 x 60 s > 60 x 50 s): line OEE = 54 good x 60 s / 3600 s = 0.9.
    plant = two_machines(5, {}, {})
    names = ["s/a/l/m1", "s/a/l/m2"]
    st = StateBatch.build(names, [0, 1], [0, 0], [3600 * S] * 2, [0, 0])
    pt = PartBatch.build(
        names,
        [0] * 60 + [1] * 55,
        # (a part finished at the range's first instant would belong to the range before)
        [(k + 1) * S for k in range(60)] + [(k + 1) * S for k in range(55)],
        ["p"] * 115,
        [1] * 60 + [1] * 54 + [0],
        [0] * 60 + [0] * 54 + [1],
    )
    ideal = api.ideal_cycles(plant)
    t = oee_table(st, pt, ideal, Buckets.single(0, 3600 * S), by_product=True)
    (line,) = api.line_oee(t, plant)
    assert line.bottleneck == ("s/a/l/m2",)
    assert line.oee_bottleneck == pytest.approx(0.9)
    assert line.oee_average == pytest.approx((3000 / 3600 + 0.9) / 2)
    assert line.good_out == 54
    assert line.as_dict()["bottleneck"] == ["s/a/l/m2"]  # the JSON row keeps a list


def test_time_of_a_machine_without_parts_has_no_product() -> None:
    names = ["s/a/l/m1", "s/a/l/m2"]
    st = StateBatch.build(names, [0, 1], [0, 0], [3600 * S] * 2, [0, 1])
    pt = PartBatch.build(names, [0], [60 * S], ["p"], [1], [0])
    t = oee_table(st, pt, {}, Buckets.single(0, 3600 * S), by_product=True)
    assert sorted(zip(t.machine, t.product, strict=True)) == [("s/a/l/m1", "p"), ("s/a/l/m2", "")]
    (m1,) = [r for r in t.rows() if r["machine"] == "s/a/l/m1"]
    assert m1["unknown_ideal"] == 1 and m1["performance"] == 0.0


def test_selection_by_line_and_machine() -> None:
    plant = two_machines(5, {}, {})
    assert api.select(plant, line="l").machines == ("s/a/l/m1", "s/a/l/m2")
    assert api.select(plant, machine="s/a/l/m2").machines == ("s/a/l/m2",)
    with pytest.raises(KeyError):
        api.select(plant, machine="nope")


def test_reason_tree_validation_and_apply() -> None:
    with pytest.raises(ValueError, match="unknown reason"):
        ReasonTree.from_dict({"categories": {"c": {"r": "R"}}, "codes": {"E1": "x"}})
    with pytest.raises(ValueError, match="both"):
        ReasonTree.from_dict({"categories": {"a": {"r": ""}, "b": {"r": ""}}})
    tree = ReasonTree.from_dict({"categories": {"c": {"r": "R"}}, "codes": {"E1": "r"}})
    st, acked = apply_entries(STATES, [ReasonEntry(M, STOP2, "r", "x", STOP2)])
    # the operator's entry wins over the machine's code (issue 18: the person at the machine
    # knows the cause; the code stays on /stops and in the audit log)
    assert st.reason == ("", "", "", "r", "") and acked == {(M, STOP2): STOP2}
    d = downtime(STATES, tree.with_codes({"JAM": "r"}), include_planned=True)
    assert {(r["category"], r["reason"]) for r in d["pareto"]} == {("c", "r"), ("unexplained", "")}


def test_baseline_with_degree_days_and_carbon_override() -> None:
    prod = np.array([100.0, 200.0, 150.0, 300.0, 250.0])
    dd = np.array([5.0, 0.0, 10.0, 2.0, 8.0])
    energy = 50.0 + 1.5 * prod + 4.0 * dd
    b = fit_baseline(energy, prod, dd)
    assert (b.intercept, b.per_unit, b.per_degree_day) == pytest.approx((50.0, 1.5, 4.0))
    assert b.r2 == pytest.approx(1.0)
    # a reporting period 10 % below the baseline saved 10 % of its predicted energy
    pred = b.predict([200.0], [3.0])
    assert b.savings(pred * 0.9, [200.0], [3.0]) == pytest.approx(float(pred[0]) * 0.1)
    with pytest.raises(ValueError, match="degree-days"):
        b.predict([1.0])
    with pytest.raises(ValueError, match="periods"):
        fit_baseline([1.0, 2.0], [1.0, 2.0])
    for code in ("TW", "MY", "JP", "KR", "CN"):
        f = grid_factor(code)
        assert 0.2 < f.kg_per_kwh < 1.0 and f.year >= 2020 and f.source
    mine = GridFactor("TW", 0.3, 2025, "supplier contract")
    assert co2e_kg(10.0, grid_factor("Asia/Taipei", {"TW": mine})) == pytest.approx(3.0)
    with pytest.raises(KeyError, match="no grid emission factor"):
        grid_factor("Europe/Paris")


def test_report_to_xlsx_and_csv(data_dir: Path, tmp_path: Path) -> None:
    from openpyxl import load_workbook  # type: ignore[import-untyped]

    plant = _plant()
    prices = LossPrices(1000.0, 10.0, 4.0)
    sheets = _with_store(data_dir, lambda s: build_report(s, plant, T0, T1, prices=prices))
    assert set(sheets) == {"oee", "lines", "reliability", "downtime", "energy", "losses"}
    (xlsx,) = write_report(sheets, tmp_path / "r.xlsx")
    wb = load_workbook(xlsx)
    assert wb.sheetnames == list(sheets)
    header = [c.value for c in wb["oee"][1]]
    row = dict(zip(header, [c.value for c in wb["oee"][2]], strict=True))
    assert row["oee"] == sheets["oee"][0]["oee"] and row["machine"] == M
    files = write_report(sheets, tmp_path / "csv")
    assert sorted(f.name for f in files) == sorted(f"{k}.csv" for k in sheets)
    energy_csv = (tmp_path / "csv" / "energy.csv").read_text().splitlines()
    assert "kwh_by_state.running" in energy_csv[0]


def test_cli(data_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    common = [
        "--from",
        "2026-01-05T08:00",
        "--to",
        "2026-01-05T11:00",
        "--data-dir",
        str(data_dir),
        "--plant",
        str(data_dir / "plant.yaml"),
    ]
    r = runner.invoke(kpi_app, ["oee", *common, "--json"])
    assert r.exit_code == 0, r.output
    (row,) = json.loads(r.output)
    assert row["availability"] == pytest.approx(RUNNING_S / 10_800, abs=1e-9)
    r = runner.invoke(kpi_app, ["oee", *common, "--csv", "--machine", "m", "--period", "shift"])
    assert r.exit_code == 0 and r.output.splitlines()[0].startswith("machine,bucket,product")
    r = runner.invoke(kpi_app, ["oee", *common, "--lines"])
    assert r.exit_code == 0 and "s/a/l" in r.output
    for cmd in (["downtime"], ["downtime", "--reliability"], ["energy"], ["losses"]):
        r = runner.invoke(kpi_app, [*cmd, *common])
        assert r.exit_code == 0, (cmd, r.output)
    (tmp_path / "tariff.yaml").write_text(
        "base_price: 2.0\nperiods:\n  - {name: peak, start: '09:00', end: '10:00', price: 5.0}\n"
    )
    r = runner.invoke(
        kpi_app,
        [
            "energy",
            *common,
            "--json",
            "--tariff",
            str(tmp_path / "tariff.yaml"),
            "--grid-factor",
            "0.5",
        ],
    )
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert rep["meters"][0]["cost"] == pytest.approx(8.5 * 5.0 + 19.7 * 2.0, abs=0.01)
    assert rep["machines"][0]["co2e_kg"] == pytest.approx(28.2 * 0.5, abs=1e-5)
    # one day of data cannot fit a baseline: a clear error, not a traceback
    r = runner.invoke(
        kpi_app,
        [
            "energy",
            *common,
            "--baseline-from",
            "2026-01-05T00:00",
            "--baseline-to",
            "2026-01-06T00:00",
        ],
    )
    assert r.exit_code == 2 and "periods" in r.output
    (tmp_path / "tree.yaml").write_text(
        "categories:\n  machine: {jams: Jams, gremlins: Gremlins}\ncodes: {JAM: jams}\n"
    )
    r = runner.invoke(
        kpi_app, ["downtime", *common, "--json", "--reasons", str(tmp_path / "tree.yaml")]
    )
    assert r.exit_code == 0, r.output
    pareto = {(x["category"], x["reason"]) for x in json.loads(r.output)["pareto"]}
    assert pareto == {("machine", "jams"), ("unexplained", "")}
    stop = datetime.fromtimestamp(STOP1 / 1e6, ZoneInfo(ZONE)).isoformat()
    reason = ["reason", "--machine", M, "--stop", stop, "--reason", "mechanical", "--who", "ana"]
    reason += ["--data-dir", str(tmp_path), "--plant", str(data_dir / "plant.yaml")]
    r = runner.invoke(kpi_app, reason)
    assert r.exit_code == 0, r.output
    with ReasonLog(tmp_path / "reasons.duckdb") as log:
        (e,) = log.entries("t1", T0, T1)
    assert (e.machine, e.stop_start, e.reason, e.who) == (M, STOP1, "mechanical", "ana")
    r = runner.invoke(kpi_app, [*reason[:5], "--reason", "gremlins", *reason[7:]])
    assert r.exit_code == 2 and "unknown reason" in r.output
    r = runner.invoke(kpi_app, ["report", *common, "--out", str(tmp_path / "rep.xlsx")])
    assert r.exit_code == 0 and (tmp_path / "rep.xlsx").exists()
    # the form a cron job uses: the last whole local day (no data in it here: said, exit 1)
    cron = ["report", "--last-days", "1", "--period", "shift", "--out", str(tmp_path / "daily")]
    r = runner.invoke(kpi_app, [*cron, *common[4:]])
    assert r.exit_code == 1 and "no data" in r.output and not (tmp_path / "daily").exists()
    # CSV files in a folder
    r = runner.invoke(kpi_app, [*cron[:1], *cron[3:], *common])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "daily").iterdir()) == [
        "downtime.csv",
        "energy.csv",
        "lines.csv",
        "oee.csv",
        "reliability.csv",
    ]
    bad = [
        ["oee", *common[:1], "yesterday", *common[2:]],
        ["oee", *common, "--period", "month"],
        ["oee", *common, "--line", "nope"],
        ["oee", *common[:4], "--data-dir", str(tmp_path / "empty"), *common[6:]],
        ["oee", *common[:2], "--to", "2026-01-05T07:00", *common[4:]],
        ["energy", *common, "--tariff", str(tmp_path / "tree.yaml")],
        ["energy", *common, "--baseline-from", "2026-01-05T00:00"],
        ["downtime", *common, "--reasons", str(tmp_path / "tariff.yaml")],
    ]
    for args in bad:
        r = runner.invoke(kpi_app, args)
        assert r.exit_code == 2, (args, r.output)
    assert MachineState.DOWN.label == "down"
