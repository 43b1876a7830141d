"""Issue 14's acceptance: misbehaving apps (``tests/apps/misbehaving/``) run at once under the
supervisor, each sandboxed beside its own gateway, and each is stopped or refused with a clear
reason, while a well-behaved app's gateway keeps answering. The good app's request latency is
measured through the whole abuse (a client on its socket, as the app would be) and bounded.

Each app dir is a real app (manifest + package, only ``andon.sdk`` imported); the reasons are
those a tenant admin reads in the instance's status."""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc
import pytest
import yaml

from andon.apps.gateway import AppGateway, plant_sites
from andon.apps.grant import AppGrant
from andon.apps.manifest import load_manifest
from andon.apps.sandbox import check_sandbox
from andon.apps.sinks import MemorySink
from andon.apps.supervisor import AppSupervisor, InstanceSpec, InstanceState, resource_limits
from andon.bus.inprocess import InProcessBus
from andon.model.loader import parse_plant
from andon.model.plant import Plant
from andon.model.types import SampleBatch
from andon.sdk import BadRequest, Client, Forbidden
from andon.store import open_store
from andon.store.base import TelemetryStore

HERE = Path(__file__).parent / "misbehaving"
T0 = 1_767_600_000_000_000  # 2026-01-05 08:00 UTC

EXPECTED: dict[str, str] = {
    "net_socket": r"^network access attempted: (resolve '|connect \(')192\.0\.2\.10'",
    "write_outside": r"^write outside its directory attempted: /escape\.txt$",
    "loop_forever": r"^exceeded CPU time 2 s$",
    "alloc_unbounded": r"^killed: memory limit 128 MB exceeded",
    "fork_bomb": r"^exceeded process limit 8",
    "crash_at_start": r"^crashed \(exit status 1\): RuntimeError: configuration file "
    r"/data/config\.json missing$",
    "flood_findings": r"^flooding findings: \d+ refused over the rate limit$",
    "fill_disk": r"^(data directory over 64 MB|file size limit 16 MB exceeded)",
}
"""App → the reason its status must give (every run of it ends so: a crash loop)."""


def _plant(tenant: str, site: str) -> Plant:
    doc = {
        "tenant": tenant,
        "site": {
            "id": site,
            "calendar": {"shifts": [{"name": "all", "start": "00:00", "end": "00:00"}]},
            "areas": [
                {
                    "id": "a",
                    "lines": [
                        {
                            "id": "l",
                            "products": [{"id": "p"}],
                            "machines": [
                                {
                                    "id": "m",
                                    "type": "generic",
                                    "ideal_cycle_s": {"p": 60},
                                    "signals": [{"id": "power", "type": "power"}],
                                }
                            ],
                        }
                    ],
                }
            ],
        },
    }
    return parse_plant(yaml.safe_dump(doc), f"<{tenant}/{site}>")


PLANTS = [_plant("t1", "s"), _plant("t1", "s2"), _plant("t2", "s")]


async def _store() -> TelemetryStore:
    store = open_store(None)
    for p in PLANTS:
        sig = next(iter(p.signal_paths()))
        value = 7.0 if p.tenant == "t1" and p.site.id == "s" else 666.0  # 666: never to be seen
        n = 600
        await store.append(
            p.tenant,
            SampleBatch.build([sig], [0] * n, [T0 + i * 1_000_000 for i in range(n)], [value] * n),
        )
    return store


def _gateway(
    app_dir: Path, store: TelemetryStore, bus: InProcessBus, sink: MemorySink
) -> AppGateway:
    m = load_manifest(app_dir / "andon-app.yaml")
    grant = AppGrant("t1", f"i-{m.id}", m.id, m.version, frozenset({"s"}), frozenset(m.permissions))
    return AppGateway(
        grant,
        store,
        bus,
        sink,
        clock=lambda: T0 + 600_000_000,
        manifest=m,
        sites=plant_sites(PLANTS),
    )


def _spec(app_dir: Path, gateway: AppGateway, data: Path, **env: str) -> InstanceSpec:
    m = load_manifest(app_dir / "andon-app.yaml")
    return InstanceSpec(
        f"i-{m.id}",
        m.id,
        m.version,
        app_dir,
        data / m.id,
        entry=m.entry,
        limits=resource_limits(m.limits, data_mb=64, file_mb=16),
        gateway=gateway,
        env=env,
    )


async def _measure(
    sock: Path, stop: asyncio.Event, samples: list[float], errors: list[str]
) -> None:
    """The good app's requests, one after another, timed, until ``stop``."""
    client = await Client.connect(str(sock), "good_citizen", "1.0.0")
    try:
        while not stop.is_set():
            t = time.perf_counter()
            try:
                await client.call("sites.list", {})
                await client.call(
                    "telemetry.read",
                    {
                        "site": "s",
                        "signals": ["s/a/l/m/power"],
                        "start_us": T0,
                        "end_us": T0 + 600_000_000,
                    },
                )
            except Exception as e:  # every failure is a finding of this test
                errors.append(repr(e))
            samples.append(time.perf_counter() - t)
            await asyncio.sleep(0.02)
    finally:
        await client.close()


@pytest.mark.slow
def test_misbehaving_apps_are_stopped_with_reasons_while_a_good_app_is_served(
    tmp_path: Path,
) -> None:
    check = check_sandbox()
    assert check.ok, f"bubblewrap must run here (scripts/services.sh installs it): {check.reason}"
    # A fork bomb is run only where the kernel caps it (a pids cgroup): the watchdog alone
    # does not stop an exponential one before the host's limit (decision 0901).
    expected = {k: v for k, v in EXPECTED.items() if k != "fork_bomb" or check.cgroup != "watchdog"}

    async def go() -> dict[str, Any]:
        store = await _store()
        bus = InProcessBus()
        sink = MemorySink()
        sup = AppSupervisor(run_dir=tmp_path, backoff_s=0.1, crash_loop_after=2, flood_refused=50)
        gateways: dict[str, AppGateway] = {}
        for d in sorted(HERE.iterdir()):
            if (d / "andon-app.yaml").exists():
                gateways[d.name] = _gateway(d, store, bus, sink)
        targets = json.dumps(
            {
                "telemetry": [["s2", "s2/a/l/m/power"], ["s", "s2/a/l/m/power"]],
                "sites": ["s2", "t2"],
            }
        )
        samples: list[float] = []
        errors: list[str] = []
        stop = asyncio.Event()
        try:
            await sup.start(_spec(HERE / "good_citizen", gateways["good_citizen"], tmp_path))
            await sup.wait_for(
                "i-good_citizen", lambda s: gateways["good_citizen"].stats()["requests"] >= 2, 60
            )
            baseline: list[float] = []
            await _measure_for(sup.socket_path("i-good_citizen"), 1.0, baseline, errors)
            measurer = asyncio.create_task(
                _measure(sup.socket_path("i-good_citizen"), stop, samples, errors)
            )
            for name in [*expected, "forged_ids"]:
                env = {"PROBE_TARGETS": targets} if name == "forged_ids" else {}
                await sup.start(_spec(HERE / name, gateways[name], tmp_path, **env))
            t0 = time.monotonic()
            ended: dict[str, Any] = {}
            for name in expected:
                ended[name] = await sup.wait_for(
                    f"i-{name}", lambda s: s.state == InstanceState.CRASH_LOOP, 120
                )
            await sup.wait_for(
                "i-forged_ids", lambda s: gateways["forged_ids"].stats()["forbidden"] >= 8, 60
            )
            abuse_s = time.monotonic() - t0
            stop.set()
            await measurer
            good = sup.status("i-good_citizen")
            forged_logs = [line.text for line in sup.logs("i-forged_ids")]
            good_logs = [line.text for line in sup.logs("i-good_citizen")]
        finally:
            stop.set()
            await sup.close()
            await store.close()
            await bus.close()
        return {
            "ended": ended,
            "good": good,
            "samples": samples,
            "baseline": baseline,
            "errors": errors,
            "abuse_s": abuse_s,
            "forged_logs": forged_logs,
            "good_logs": good_logs,
            "gateways": {k: g.stats() for k, g in gateways.items()},
            "findings": len(sink.findings),
        }

    r = asyncio.run(go())
    for name, pattern in expected.items():
        st = r["ended"][name]
        assert st.sandboxed and st.restarts == 1, (name, st)
        assert re.search(pattern, st.last_exit_reason or ""), (name, st.last_exit_reason)
    # forged ids: every attempt refused, counted, and nothing of another site or tenant leaked
    assert not [t for t in r["forged_logs"] if t.startswith("LEAK")], r["forged_logs"]
    refused = [t for t in r["forged_logs"] if t.startswith("refused")]
    assert len(refused) >= 12
    assert {t.split(": ")[0].split()[-1] for t in refused} == {"forbidden", "bad_request"}
    assert r["gateways"]["forged_ids"]["forbidden"] >= 8
    assert r["gateways"]["forged_ids"]["bad_request"] >= 4
    # the flood: at most a minute's worth of findings kept
    assert r["gateways"]["flood_findings"]["rate_limited"] >= 50
    assert r["findings"] <= 2 * 60
    # the good app ran through it all, and its requests were answered in time
    good = r["good"]
    assert good.state == InstanceState.RUNNING and good.restarts == 0, good
    assert "good citizen on 1 site(s)" in r["good_logs"]
    assert r["errors"] == []
    assert len(r["samples"]) >= 20
    p50 = statistics.median(r["samples"])
    worst = max(r["samples"])
    print(
        f"good app under abuse ({r['abuse_s']:.1f} s, {len(r['samples'])} requests): "
        f"p50 {p50 * 1000:.1f} ms, max {worst * 1000:.1f} ms; "
        f"baseline p50 {statistics.median(r['baseline']) * 1000:.1f} ms"
    )
    assert p50 < 0.25 and worst < 2.0, (p50, worst)


async def _measure_for(sock: Path, seconds: float, samples: list[float], errors: list[str]) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(_measure(sock, stop, samples, errors))
    await asyncio.sleep(seconds)
    stop.set()
    await task


def test_forged_ids_are_refused_on_the_raw_protocol(tmp_path: Path) -> None:
    """The probes of ``forged_ids`` made directly (no sandbox needed): another tenant's site
    of the same id is the granted site's data only, another site is forbidden."""

    async def go() -> None:
        store = await _store()
        bus = InProcessBus()
        gw = _gateway(HERE / "forged_ids", store, bus, MemorySink())
        sock = tmp_path / "f.sock"
        await gw.serve(sock)
        client = await Client.connect(str(sock), "forged_ids", "1.0.0")
        try:
            for params in (
                {"site": "s2", "signals": ["s2/a/l/m/power"]},
                {"site": "s", "signals": ["s2/a/l/m/power"]},
                {"site": "t2", "signals": ["s/a/l/m/power"]},
            ):
                with pytest.raises(Forbidden):
                    await client.call(
                        "telemetry.read", {**params, "start_us": T0, "end_us": T0 + 10**9}
                    )
            # naming another tenant is refused outright: the tenant is the grant's
            with pytest.raises(BadRequest, match="no parameter 'tenant'"):
                await client.call(
                    "telemetry.read",
                    {
                        "site": "s",
                        "tenant": "t2",
                        "signals": ["s/a/l/m/power"],
                        "start_us": T0,
                        "end_us": T0 + 10**9,
                    },
                )
            _, arrow = await client.call(
                "telemetry.read",
                {
                    "site": "s",
                    "signals": ["s/a/l/m/power"],
                    "start_us": T0,
                    "end_us": T0 + 10**9,
                },
            )
            assert arrow is not None
            values = pa.ipc.open_stream(arrow).read_all().column("value").to_pylist()
            assert values and set(values) == {7.0}  # 666.0 is the other tenant's and site's
            assert gw.stats()["forbidden"] == 3
        finally:
            await client.close()
            await gw.close()
            await store.close()
            await bus.close()

    asyncio.run(go())
