"""apps/pdm_anomaly on the virtual factory, in-process: findings with their evidence, and
the human in the loop (a rejected finding raises its machine's threshold on the next run)."""

from __future__ import annotations

import asyncio
import importlib
import json
from pathlib import Path

import pytest

from andon.apps.manifest import load_manifest
from andon.commands.common import plant_or_exit
from andon.store.duckdb_store import DuckDBStore

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "apps" / "pdm_anomaly"


@pytest.mark.slow
def test_findings_carry_evidence_and_a_rejection_raises_the_threshold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from andon.apps.gateway import AppGateway, plant_sites
    from andon.apps.grant import AppGrant
    from andon.apps.sinks import MemorySink
    from andon.bus import InProcessBus
    from andon.demo.run import DemoRun, default_start
    from andon.sdk import Feedback
    from andon.sdk.runner import connect

    monkeypatch.syspath_prepend(str(APP))
    main = importlib.import_module("pdm_anomaly.app").main
    plant = plant_or_exit(None)
    manifest = load_manifest(APP)
    # a sensitive setting, so that 12 h of the demo plant surely has findings to judge
    settings = {**manifest.settings_defaults(), "target_far": 0.05, "min_steps": 2}

    async def run(store: DuckDBStore, sink: MemorySink, iid: str, now: int) -> AppGateway:
        grant = AppGrant(plant.tenant, iid, "pdm_anomaly", "1.0.0", frozenset({plant.site.id}),
                         frozenset(manifest.permissions), settings)  # fmt: skip
        gw = AppGateway(grant, store, InProcessBus(), sink, lambda: now, manifest=manifest,
                        sites=plant_sites([plant]), once=True)  # fmt: skip
        sock = tmp_path / f"{iid}.sock"
        await gw.serve(sock)
        ctx = await connect(str(sock), "pdm_anomaly", "1.0.0")
        try:
            await main(ctx)
        finally:
            await ctx.client.close()
            await gw.close()
        return gw

    async def body() -> None:
        store = DuckDBStore.open(tmp_path / "t.duckdb")
        try:
            start = default_start(plant)
            sim = DemoRun.create(plant, store, 1, start)
            await sim.advance(12 * 3600.0)
            await sim.finish()
            end = start + 12 * 3600 * 10**6
            sink = MemorySink()
            await run(store, sink, "i1", end)
            found = [s.finding for s in sink.findings]
            assert found, "no findings to judge"
            signals = {
                plant.machine_path(a, ln, m): {
                    p for p in plant.signal_paths() if p.startswith(plant.machine_path(a, ln, m))
                }
                for a, ln, m in plant.machines()
            }
            for f in found:
                contrib = f.evidence["contributions"]
                assert abs(sum(contrib.values()) - 1.0) < 0.01
                assert set(f.signals) <= set(contrib) and f.machine is not None
                assert set(contrib) <= signals[f.machine]
                ev = f.evidence
                assert ev["episode_peak_score"] >= ev["peak_score"] > ev["threshold"]
                assert f.end_us <= ev["episode_end_us"]
                assert f.evidence["learned_until_us"] <= f.start_us < f.end_us <= end
                top = max(contrib, key=contrib.__getitem__)
                assert top.rsplit("/", 1)[-1] in f.explanation and f.signals[0] == top
            # someone rejects the strongest finding of one machine
            worst = max(sink.findings, key=lambda s: s.finding.evidence["ratio"])
            machine = worst.finding.machine
            sink.add_feedback("i1", Feedback(worst.id, "rejected", "coolant change", "op:7", 1))
            first = len(sink.findings)
            # the same installation runs again later (a following installation's next run)
            await sink.set_state("i1", "analysed_until", json.dumps(start), 10**6)
            gw = await run(store, sink, "i1", end)
            again = [s.finding for s in sink.findings[first:]]
            before = [f for f in found if f.machine == machine]
            after = [f for f in again if f.machine == machine]
            thr0 = before[0].evidence["threshold"]
            assert all(f.evidence["threshold"] > thr0 for f in after)
            assert all(
                f.evidence["peak_score"] > worst.finding.evidence["peak_score"] for f in after
            )
            assert len(after) < len(before)
            # other machines' findings are unchanged
            others = sorted(f.title for f in found if f.machine != machine)
            assert sorted(f.title for f in again if f.machine != machine) == others
            assert any("coolant change" in x.message for x in gw.logs())
            fb = json.loads(await sink.get_state("i1", "feedback") or "{}")
            assert fb[machine]["rejected"] == 1
        finally:
            await store.close()

    asyncio.run(body())


@pytest.mark.slow
def test_pdm_anomaly_passes_the_test_run_with_its_claims_measured() -> None:
    """``andon app test`` (the harness of andon.commands.app_test) on half-length datasets:
    sandboxed (andon.pdm mounted beside the SDK), every check passes and the detector's
    claims are measured against the replays' failures."""
    from andon.commands.app_test import run_test

    report = asyncio.run(run_test(APP, scale=0.5, quiet=True))
    failed = [f"{c.name}: {c.detail}" for c in report.checks if not c.ok]
    assert report.ok and not failed, failed
    got = {c["metric"]: c for c in report.claims}
    assert set(got) == {"precision", "recall", "lead_time_s"}
    assert got["recall"]["failures"] > 0 and got["recall"]["detected"] > 0
    assert all(c["ok"] and c["measured"] is not None for c in got.values())
