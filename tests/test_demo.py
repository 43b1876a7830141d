"""`andon demo`: headless runs are fast and byte-identical, the summary read back from the
store is consistent, and the live loop follows its clock."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from andon.demo.run import DemoRun, default_start, run_headless, run_live
from andon.demo.terminal import render
from andon.model.clock import ManualClock
from andon.model.loader import load_plant
from andon.model.types import MachineState
from andon.sim.factory import VirtualFactory
from andon.store.duckdb_store import DuckDBStore

DEMO = Path(__file__).resolve().parents[1] / "examples" / "plants" / "demo.yaml"


def _demo_json(*extra: str) -> tuple[str, float]:
    t = time.perf_counter()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "andon.cli",
            "demo",
            "--headless",
            "--hours",
            "24",
            "--seed",
            "7",
            "--json",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout, time.perf_counter() - t


def test_headless_24h_is_fast_and_byte_identical(tmp_path: Path) -> None:
    first, took = _demo_json()
    second, _ = _demo_json("--data-dir", str(tmp_path / "d"))
    assert first == second
    assert took < 60.0  # the acceptance bound on a 2-core machine (typically ~4 s)
    s: dict[str, Any] = json.loads(first)
    assert (tmp_path / "d" / "telemetry.duckdb").exists()
    truth = (tmp_path / "d" / "ground_truth.jsonl").read_text().splitlines()
    assert sum(json.loads(x)["kind"] == "fault" for x in truth) == len(s["faults"])
    assert s["hours"] == 24 and s["seed"] == 7
    assert len(s["machines"]) == 7
    for m in s["machines"]:
        assert sum(m["states_s"].values()) == pytest.approx(86_400.0, abs=0.01)
        for k in ("availability", "performance", "quality"):
            assert 0.0 <= m[k] <= 1.0
        assert m["oee"] == pytest.approx(
            m["availability"] * m["performance"] * m["quality"], abs=2e-6
        )
        assert m["kwh"] > 0
        assert m["kwh_per_good_part"] == pytest.approx(m["kwh"] / m["parts"]["good"], abs=1e-4)
    assert {ln["line"] for ln in s["lines"]} == {
        "tc1/machining/L1",
        "tc1/joining/L2",
        "tc1/cleanroom/L3",
    }
    assert all(ln["good_out"] > 0 for ln in s["lines"])
    # 24 h from Monday 06:00: two shifts of 8 h less 1.25 h of breaks are planned
    assert all(ln["planned_production_s"] == 14.75 * 3600 for ln in s["lines"])
    assert s["faults"] and all({"t", "code", "end", "duration_s"} <= f.keys() for f in s["faults"])
    assert s["ingest"]["rejected"] == {} and s["ingest"]["samples"] > 1_000_000
    # the main meter covers the machines plus 35 kW of base load
    machines_kwh = sum(m["kwh"] for m in s["machines"])
    assert s["meters"][0]["kwh"] == pytest.approx(machines_kwh + 35 * 24, rel=0.01)


def test_summary_from_the_store_matches_the_factory(tmp_path: Path) -> None:
    plant = load_plant(DEMO)

    async def go() -> dict[str, Any]:
        store = DuckDBStore.open(tmp_path / "t.duckdb")
        try:
            return await run_headless(plant, store, seed=5, hours=6)
        finally:
            await store.close()

    s = asyncio.run(go())
    # the same seed in a separate factory gives the same parts as the store holds
    vf = VirtualFactory(plant, 5, default_start(plant))
    vf.advance(6 * 3600.0)
    vf.finish()
    for rt, m in zip(vf.machines, s["machines"], strict=True):
        assert m["machine"] == rt.path
        assert m["parts"] == {"good": rt.good, "scrap": rt.scrap}
        assert m["states_s"]["running"] == pytest.approx(
            rt.durations[MachineState.RUNNING], abs=1e-3
        )


def test_live_loop_follows_its_clock_and_renders(tmp_path: Path) -> None:
    plant = load_plant(DEMO)
    ticks: list[float] = []
    clock = ManualClock()

    async def go() -> DemoRun:
        store = DuckDBStore.open(tmp_path / "live.duckdb")
        try:
            return await run_live(
                plant,
                store,
                seed=1,
                speed=120.0,
                clock=clock,
                until_s=1800.0,
                on_tick=lambda r: ticks.append(r.factory.now),
            )
        finally:
            await store.close()

    run = asyncio.run(go())
    # each 0.25 s tick of the clock moves the plant 30 s
    assert ticks[:3] == [0.0, 30.0, 60.0]
    assert ticks[-1] == 1800.0 and clock.now == pytest.approx(1800.0 / 120.0)
    assert run.ingestor.stats.samples > 0 and run.ingestor.stats.states > 0
    console = Console(record=True, width=160)
    console.print(render(run, 120.0))
    text = console.export_text()
    for name in ("MC-01", "SG-01", "FSW-01", "PC-01", "B1"):
        assert name in text
    assert "running" in text


def test_bad_arguments_exit_2() -> None:
    for args in (
        ["--hours", "-1"],
        ["--speed", "0"],
        ["--start", "yesterday"],
        ["--via", "carrier-pigeon"],
        ["--via", "protocols"],  # headless through protocols needs --hours of wall time
        ["--via", "protocols", "--hours", "1", "--start", "2026-01-05T06:00"],
    ):
        r = subprocess.run(
            [sys.executable, "-m", "andon.cli", "demo", "--headless", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert r.returncode == 2, (args, r.stderr)
        assert "Traceback" not in r.stderr
