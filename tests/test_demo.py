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

from andon.demo.run import (
    DemoRun,
    HeadlessSummary,
    default_start,
    demo_gateway,
    run_headless,
    run_live,
)
from andon.demo.terminal import KpiView, Snapshot, render
from andon.ingest.gateway import KeyRefused, StaticKeys, StaticSites
from andon.kpi import api as kpi_api
from andon.kpi.summary import parts_of
from andon.model.clock import ManualClock
from andon.model.loader import load_plant
from andon.model.types import MachineState, StateBatch
from andon.sim.factory import VirtualFactory
from andon.store.duckdb_store import DuckDBStore
from andon.wire.frames import key_parts

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

    async def go() -> HeadlessSummary:
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
    for rt, m in zip(vf.machines, s.summary.machines, strict=True):
        assert m.machine == rt.path
        assert (m.parts.good, m.parts.scrap) == (rt.good, rt.scrap)
        assert m.states_s["running"] == pytest.approx(rt.durations[MachineState.RUNNING], abs=1e-3)


def test_live_loop_follows_its_clock_and_renders(tmp_path: Path) -> None:
    plant = load_plant(DEMO)
    ticks: list[float] = []
    clock = ManualClock()

    async def go() -> tuple[DemoRun, Snapshot]:
        store = DuckDBStore.open(tmp_path / "live.duckdb")
        try:
            run = await run_live(
                plant,
                store,
                seed=1,
                speed=120.0,
                clock=clock,
                until_s=1800.0,
                on_tick=lambda r: ticks.append(r.factory.now),
            )
            return run, await KpiView(store).refresh(run)
        finally:
            await store.close()

    run, snap = asyncio.run(go())
    # each 0.25 s tick of the clock moves the plant 30 s
    assert ticks[:3] == [0.0, 30.0, 60.0]
    assert ticks[-1] == 1800.0 and clock.now == pytest.approx(1800.0 / 120.0)
    assert run.ingestor.stats.samples > 0 and run.ingestor.stats.states > 0
    console = Console(record=True, width=160)
    console.print(render(run, snap, 120.0))
    text = console.export_text()
    for name in ("MC-01", "SG-01", "FSW-01", "PC-01", "B1"):
        assert name in text
    assert "running" in text


def test_terminal_view_shows_what_the_kpi_facade_reads_from_the_store(tmp_path: Path) -> None:
    """The terminal's figures are ``andon.kpi.api``'s for the same range (the production day
    so far), its states the store's open states, and it asks the store at most once per
    ``every_s`` of its clock while the loop ticks every 0.25 s."""
    plant = load_plant(DEMO)
    clock = ManualClock()
    seen: list[Snapshot] = []

    async def go() -> tuple[
        DemoRun, Snapshot, list[dict[str, Any]], kpi_api.EnergyReport, StateBatch
    ]:
        store = DuckDBStore.open(tmp_path / "view.duckdb")
        try:
            view = KpiView(store, every_s=1.0, monotonic=clock.monotonic)

            async def tick(r: DemoRun) -> None:
                seen.append(await view.refresh(r))

            run = await run_live(
                plant, store, seed=3, speed=240.0, clock=clock, until_s=5400.0, on_tick=tick
            )
            snap = await view.refresh(run, force=True)
            table = await kpi_api.oee(store, plant, snap.start, snap.end, now=snap.end)
            energy = await kpi_api.energy_report(store, plant, snap.start, snap.end, factor=None)
            machines = [m.machine for m in snap.machines]
            return run, snap, table.rows(), energy, await store.open_states(plant.tenant, machines)
        finally:
            await store.close()

    run, snap, rows, energy, open_ = asyncio.run(go())
    assert (snap.start, snap.end) == (default_start(plant), run.factory.ts(5400.0))
    by = {m.machine: m for m in snap.machines}
    assert set(by) == {r["machine"] for r in rows} and len(by) == len(plant.machines())
    for r in rows:
        m = by[r["machine"]]
        assert (m.availability, m.performance, m.quality, m.oee) == (
            r["availability"],
            r["performance"],
            r["quality"],
            r["oee"],
        )
        assert (m.good, m.scrap) == parts_of(r)
    assert {m.machine: m.kwh for m in snap.machines} == {e.machine: e.kwh for e in energy.machines}
    assert any(m.oee is not None and m.oee > 0 for m in snap.machines)
    assert sum(m.good for m in snap.machines) > 0
    states = {
        open_.names[int(i)]: (int(s), int(a))
        for i, s, a in zip(open_.index, open_.state, open_.start, strict=True)
    }
    assert {
        m.machine: (int(m.state), m.since) for m in snap.machines if m.state is not None
    } == states
    # 5400 / 240 = 22.5 s of clock in 0.25 s ticks: 92 ticks, a store read every 4th
    assert len(seen) == 92
    assert len({id(s) for s in seen}) == 23


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


def test_the_demo_writes_through_the_gateway_with_an_edge_key_for_its_site() -> None:
    """``DemoRun`` writes as an edge does: its edge key is checked by the gateway, for the
    plant's site only. A revoked key, or one for another site of the tenant, stores nothing
    and is counted by reason; the same factory with its own key stores what it drew."""
    plant = load_plant(DEMO)

    async def main() -> None:
        store = DuckDBStore.open(None)
        try:
            run = DemoRun.create(plant, store, 7, default_start(plant), window_s=60.0)
            await run.advance(60.0)
            stats = run.ingestor.stats
            assert stats.samples > 0 and stats.states > 0
            stored = stats.samples
            assert run.gateway.stats.points_stored == stored  # the gateway's own count

            keys = run.gateway.keys
            assert isinstance(keys, StaticKeys)
            kid = key_parts(run.key)
            assert kid is not None
            keys.revoke(kid[0])
            run.gateway.key_cache_s = 0  # else the cached answer holds for two seconds
            with pytest.raises(KeyRefused, match="revoked_key"):
                await run.advance(120.0)
            assert stats.samples == stored and stats.rejected["revoked_key"] > 0

            # a key of the tenant for another site may not write this one
            other, other_key = demo_gateway(plant, store, site_id="another-site")
            other.sites = StaticSites({plant.tenant: {plant.site.id: "this-site"}})
            run2 = DemoRun.create(
                plant, store, 8, default_start(plant), window_s=60.0, gateway=(other, other_key)
            )
            with pytest.raises(KeyRefused, match="site_not_permitted"):
                await run2.advance(60.0)
            assert other.stats.frames_refused["site_not_permitted"] == 1
            assert other.ingestor.stats.samples == 0
        finally:
            await store.close()

    asyncio.run(main())
