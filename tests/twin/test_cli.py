"""`andon twin ...` end to end on small inputs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from andon.cli import app
from andon.demo.run import default_start, run_headless
from andon.model.loader import load_plant
from andon.store.duckdb_store import DuckDBStore
from andon.twin.reference import reference_plant
from tests.twin.plants import bare_demo_plant


def test_run_and_scenario_print_json(tmp_path: Path) -> None:
    twin = tmp_path / "twin.yaml"
    twin.write_text(yaml.safe_dump(reference_plant().model_dump(by_alias=True, mode="json")))
    runner = CliRunner()
    args = ["twin", "run", str(twin), "--reps", "4", "--hours", "100", "--auto-warmup", "--json"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["engine"] == "fast" and doc["reps"] == 4
    assert 0 <= doc["warmup_h"] < 50
    assert 0 < doc["throughput_per_h"]["mean"] < 60
    sc = tmp_path / "s.yaml"
    sc.write_text("name: bigger B4\nchanges:\n  - {buffer: B4, capacity: 20}\n")
    args = ["twin", "run", str(twin), "--scenario", str(sc), "--reps", "4", "--hours", "100"]
    res = runner.invoke(app, [*args, "--value-per-part", "10", "--json"])
    assert res.exit_code == 0, res.output
    cmp = json.loads(res.stdout)
    assert cmp["scenario"] == "bigger B4" and cmp["value_per_month"] is not None
    res = runner.invoke(app, ["twin", "run", str(twin), "--engine", "warp"])
    assert res.exit_code == 2


def test_calibrate_and_bottleneck_from_a_data_dir(tmp_path: Path) -> None:
    plant = bare_demo_plant()
    pfile = tmp_path / "plant.yaml"
    pfile.write_text(yaml.safe_dump(plant.model_dump(by_alias=True, mode="json")))

    async def fill() -> None:
        store = DuckDBStore.open(tmp_path / "telemetry.duckdb")
        try:
            await run_headless(plant, store, seed=3, hours=48, start=default_start(plant))
        finally:
            await store.close()

    asyncio.run(fill())
    runner = CliRunner()
    span = ["--from", "2026-01-05T06:00", "--to", "2026-01-07T06:00"]
    common = ["--plant", str(pfile), "--data-dir", str(tmp_path), *span]
    out = tmp_path / "l2.yaml"
    res = runner.invoke(app, ["twin", "calibrate", "--line", "L2", *common, "--out", str(out)])
    assert res.exit_code == 0, res.output
    twin = load_plant(out)
    assert [ln.id for _, ln in twin.lines()] == ["L2"]
    res = runner.invoke(app, ["twin", "bottleneck", "--line", "L2", *common, "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert set(doc["bottleneck"]) == {
        "active_period_average",
        "active_period_momentary",
        "turning_point",
        "utilisation",
    }
    res = runner.invoke(app, ["twin", "bottleneck", "--line", "nope", *common])
    assert res.exit_code == 2
