"""``run_app_test``: an app's test run against replayed datasets with ground truth.

The composition root (``andon app test``, ``andon.commands.app_test``) makes the datasets
from the virtual factory (this package may not import it: docs/layering.md) and hands them
here as :class:`Dataset`: a plant, a store holding its run, the range and the ground-truth
failures. The harness then

1. validates the manifest (``file:line`` errors);
2. checks that the sandbox can run and runs a probe program in the app's sandbox (network,
   writes outside its directories, other processes: all must fail);
3. runs the app (sandboxed, ``once``: analyse up to ``time.now`` and return) on every
   dataset, the first one twice more: once to compare (determinism) and once killed after
   its first requests (the supervisor restarts it; it must finish all the same);
4. runs each dataset again damaged (a gap of missing data and NaN values in every signal)
   and expects the app to finish without crashing;
5. checks every finding's schema against the manifest and the grant, probes the app's
   gateway with the app's own grant (another site, another tenant's site, a permission
   not granted: all forbidden), records CPU, memory and wall time per run against the limits,
   and measures the manifest's claims against the ground truth.

Every check and figure goes into a :class:`AppTestReport` (``as_dict()`` for JSON;
``andon.apps.testing.report.render_html`` for the page).
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from andon.apps.gateway import AppGateway, SiteInfo
from andon.apps.grant import APP_PERMISSIONS, AppGrant
from andon.apps.manifest import MANIFEST_FILE, AppManifest, Claim, load_manifest
from andon.apps.sandbox import check_sandbox
from andon.apps.sinks import MemorySink
from andon.apps.supervisor import (
    AppSupervisor,
    InstanceSpec,
    InstanceState,
    InstanceStatus,
    resource_limits,
)
from andon.bus.inprocess import InProcessBus
from andon.model.loader import ModelError
from andon.model.plant import Plant
from andon.model.types import Micros, SampleBatch
from andon.sdk import Client, Finding, Forbidden, RemoteError
from andon.store.base import TelemetryStore

__all__ = [
    "LEAD_WINDOW_S",
    "AppTestReport",
    "Check",
    "DamagedStore",
    "Dataset",
    "GroundTruthFault",
    "GroundTruthState",
    "run_app_test",
    "standby_saving_truth",
]

LEAD_WINDOW_S = 8 * 3600
"""A finding counts for a failure on its machine when it ends at most this long before the
failure starts (a warning) or overlaps the failure."""

OTHER_TENANT = "andon-harness-other-tenant"
OTHER_SITE = "andon-harness-other-site"
OTHER_TENANT_SITE = "andon-harness-other-tenants-site"

PROBE = r"""
import json, os, socket
out = {}
def attempt(name, fn):
    try:
        fn()
        out[name] = "allowed"
    except OSError as e:
        out[name] = "refused"
def w(p):
    with open(p, "w") as fh:
        fh.write("x")
attempt("network", lambda: socket.create_connection(("192.0.2.1", 80), timeout=2))
attempt("write_app_dir", lambda: w("/app/andon-probe"))
attempt("write_system", lambda: w("/usr/andon-probe"))
attempt("write_root", lambda: w("/andon-probe"))
attempt("write_data_dir", lambda: w("/data/andon-probe"))
out["other_processes"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
out["env"] = sorted(os.environ)
print(json.dumps(out))
"""


@dataclass(frozen=True)
class GroundTruthFault:
    machine: str
    start_us: Micros
    end_us: Micros
    code: str


@dataclass(frozen=True)
class GroundTruthState:
    """The factory's record of a machine entering ``state`` (a ``MachineState`` label) at
    ``at_us``; it lasts until the machine's next record (or the replay's end)."""

    machine: str
    at_us: Micros
    state: str


@dataclass(frozen=True)
class Dataset:
    """One replay: ``plant``'s run in ``store`` over ``[start_us, end_us)``, with the
    factory's ground truth: its failures and every machine's state changes."""

    name: str
    plant: Plant
    store: TelemetryStore
    start_us: Micros
    end_us: Micros
    faults: tuple[GroundTruthFault, ...] = ()
    states: tuple[GroundTruthState, ...] = ()


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    figures: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "figures": self.figures}


@dataclass
class AppTestReport:
    path: str
    app_id: str | None
    version: str | None
    started_at: float
    duration_s: float = 0.0
    checks: list[Check] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    claims: list[dict[str, Any]] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, detail: str, **figures: Any) -> Check:
        c = Check(name, ok, detail, figures)
        self.checks.append(c)
        return c

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "app_id": self.app_id,
            "version": self.version,
            "ok": self.ok,
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 3),
            "checks": [c.as_dict() for c in self.checks],
            "runs": self.runs,
            "claims": self.claims,
            "figures": self.figures,
            "manifest": self.manifest,
        }


class DamagedStore:
    """A store whose telemetry reads have a gap (the middle ``gap`` share of each read's
    range is missing) and NaN values (every ``nan_every``-th sample): the faults a real
    plant's data has. Everything else is the wrapped store's."""

    def __init__(self, inner: TelemetryStore, gap: float = 0.1, nan_every: int = 37) -> None:
        self._inner = inner
        self.gap = gap
        self.nan_every = nan_every

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def read(
        self, tenant: str, signals: Sequence[str], start: Micros, end: Micros
    ) -> SampleBatch:
        batch = await self._inner.read(tenant, signals, start, end)
        if len(batch) == 0:
            return batch
        mid = start + (end - start) // 2
        half = int((end - start) * self.gap / 2)
        keep = (batch.ts < mid - half) | (batch.ts >= mid + half)
        value = batch.value[keep].copy()
        value[:: self.nan_every] = np.nan
        return SampleBatch(
            batch.names, batch.index[keep], batch.ts[keep], value, batch.quality[keep]
        )


def _sites(datasets: Sequence[Dataset]) -> Callable[[str, str], Any]:
    """Each dataset's site, plus decoys for the permission probes: the same plant as
    another site of the tenant and as a site of another tenant."""
    known: dict[tuple[str, str], SiteInfo] = {}
    for d in datasets:
        p = d.plant
        known[(p.tenant, p.site.id)] = SiteInfo.from_plant(p)
        known[(p.tenant, OTHER_SITE)] = SiteInfo.from_plant(p, OTHER_SITE)
        known[(OTHER_TENANT, p.site.id)] = SiteInfo.from_plant(p)
        known[(OTHER_TENANT, OTHER_TENANT_SITE)] = SiteInfo.from_plant(p, OTHER_TENANT_SITE)

    async def resolve(tenant_id: str, site_id: str) -> SiteInfo | None:
        return known.get((tenant_id, site_id))

    return resolve


def _canon(f: Finding) -> str:
    return json.dumps(f.to_json(), sort_keys=True, separators=(",", ":"))


@dataclass
class _Run:
    label: str
    dataset: Dataset
    status: InstanceStatus
    findings: list[Finding]
    wall_s: float
    peak_mb: float
    cpu_s: float
    gateway: dict[str, Any]
    log_tail: list[str]
    finished: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "dataset": self.dataset.name,
            "state": str(self.status.state),
            "exit": self.status.last_exit_reason,
            "restarts": self.status.restarts,
            "findings": len(self.findings),
            "wall_s": round(self.wall_s, 3),
            "peak_memory_mb": round(self.peak_mb, 1),
            "cpu_s": round(self.cpu_s, 3),
            "requests": self.gateway.get("requests", 0),
            "refused": {
                k: self.gateway.get(k, 0)
                for k in ("forbidden", "bad_request", "rate_limited", "internal", "not_found")
            },
            "log_tail": self.log_tail,
        }


class _Harness:
    def __init__(
        self, app_dir: Path, manifest: AppManifest, datasets: Sequence[Dataset], timeout_s: float
    ) -> None:
        self.app_dir = app_dir
        self.m = manifest
        self.datasets = datasets
        self.timeout_s = timeout_s
        self.work = Path(tempfile.mkdtemp(prefix="andon-apptest-"))
        self.sup = AppSupervisor(
            run_dir=self.work, backoff_s=0.2, backoff_cap_s=1.0, crash_loop_after=3
        )
        self.resolver = _sites(datasets)
        self.n = 0

    def grant(self, d: Dataset) -> AppGrant:
        self.n += 1
        return AppGrant(
            d.plant.tenant,
            f"test-{self.n}",
            self.m.id,
            self.m.version,
            frozenset({d.plant.site.id}),
            frozenset(self.m.permissions),
            self.m.settings_defaults(),
        )

    def gateway(self, d: Dataset, store: TelemetryStore, grant: AppGrant) -> AppGateway:
        end = d.end_us
        return AppGateway(
            grant,
            store,
            InProcessBus(),
            MemorySink(),
            clock=lambda: end,
            manifest=self.m,
            sites=self.resolver,
            once=True,
        )

    async def run(
        self, d: Dataset, label: str, *, damaged: bool = False, kill: bool = False
    ) -> _Run:
        grant = self.grant(d)
        store: TelemetryStore = DamagedStore(d.store) if damaged else d.store
        gw = self.gateway(d, store, grant)
        spec = InstanceSpec(
            grant.instance_id,
            self.m.id,
            self.m.version,
            self.app_dir,
            self.work / "data" / grant.instance_id,
            entry=self.m.entry,
            limits=resource_limits(self.m.limits),
            gateway=gw,
        )
        t0 = time.monotonic()
        peak = 0.0
        cpu = 0.0
        killed = False
        iid = grant.instance_id

        def kill_at(requests: int) -> None:
            nonlocal killed
            if kill and not killed and requests >= 3:
                killed = self.sup.kill(iid, "killed by the test harness (restart probe)")

        # In the request path, before the third reply: polling let a fast app finish first.
        gw.on_request = kill_at
        await self.sup.start(spec)
        deadline = t0 + self.timeout_s
        done = (InstanceState.FINISHED, InstanceState.CRASH_LOOP)
        while True:
            st = self.sup.status(iid)
            peak = max(peak, st.rss_mb)
            cpu = max(cpu, st.cpu_s)
            if st.state in done or time.monotonic() > deadline:
                break
            kill_at(gw.stats()["requests"])
            with contextlib.suppress(TimeoutError):
                await self.sup.wait_for(iid, lambda s: s.state in done, 0.1)
        wall = time.monotonic() - t0
        finished = self.sup.status(iid).state == InstanceState.FINISHED
        st = await self.sup.stop(iid)
        sink = gw.sink
        assert isinstance(sink, MemorySink)
        findings = [sf.finding for sf in sink.findings]
        tail = [f"{ln.stream}: {ln.text}" for ln in self.sup.logs(iid, 30)]
        return _Run(label, d, st, findings, wall, peak, cpu, gw.stats(), tail, finished)

    async def probe_sandbox(self) -> tuple[bool, str, dict[str, Any]]:
        spec = InstanceSpec(
            "test-probe",
            self.m.id,
            self.m.version,
            self.app_dir,
            self.work / "data" / "probe",
            command=(sys.executable, "-c", PROBE),
            limits=resource_limits(self.m.limits),
        )
        await self.sup.start(spec)
        st = await self.sup.wait_for(
            "test-probe",
            lambda s: s.state in (InstanceState.FINISHED, InstanceState.CRASH_LOOP),
            self.timeout_s,
        )
        lines = [ln.text for ln in self.sup.logs("test-probe") if ln.stream == "stdout"]
        await self.sup.stop("test-probe")
        if st.state != InstanceState.FINISHED or not lines:
            return False, f"the probe did not run: {st.last_exit_reason}", {}
        got = json.loads(lines[-1])
        bad = [
            k
            for k in ("network", "write_app_dir", "write_system", "write_root")
            if got[k] != "refused"
        ]
        if got["write_data_dir"] != "allowed":
            bad.append("write_data_dir (must be allowed)")
        if max(got["other_processes"]) > 10:
            bad.append("other_processes (sees the host's processes)")
        detail = (
            "network, writes outside /data and /tmp, other processes: all refused"
            if not bad
            else "not as required: " + ", ".join(bad)
        )
        return not bad, detail, got

    async def probe_gateway(self, d: Dataset) -> tuple[bool, str, dict[str, Any]]:
        grant = self.grant(d)
        gw = self.gateway(d, d.store, grant)
        sock = self.work / "probe.sock"
        await gw.serve(sock)
        results: dict[str, str] = {}
        m0 = next((m for _, _, m in d.plant.machines()), None)
        sig = next(iter(sorted(d.plant.signal_paths())), "")
        rng = {"start_us": d.start_us, "end_us": d.end_us}
        probes: list[tuple[str, str, dict[str, Any]]] = [
            (
                "other site of its tenant",
                "telemetry.read",
                {"site": OTHER_SITE, "signals": [sig], **rng},
            ),
            (
                "another tenant's site",
                "states.read",
                {"site": OTHER_TENANT_SITE, **rng},
            ),
            (
                "signal of another site",
                "telemetry.read",
                {"site": d.plant.site.id, "signals": [f"x{sig}"], **rng},
            ),
        ]
        for perm, method, params in (
            (
                "telemetry:read",
                "telemetry.read",
                {"site": d.plant.site.id, "signals": [sig], **rng},
            ),
            (
                "workorders:propose",
                "workorders.propose",
                {"site": d.plant.site.id, "machine": "x", "title": "probe"},
            ),
            ("feedback:read", "feedback.list", {"since_us": 0}),
        ):
            if perm not in self.m.permissions:
                probes.append((f"{perm} not granted", method, params))
        _ = m0
        try:
            client = await Client.connect(str(sock), self.m.id, self.m.version)
            try:
                for what, method, params in probes:
                    try:
                        await client.call(method, params)
                        results[what] = "ANSWERED"
                    except Forbidden:
                        results[what] = "forbidden"
                    except RemoteError as e:
                        results[what] = f"{type(e).__name__}: {e}"
                sites = await client.call("sites.list", {})
            finally:
                await client.close()
        finally:
            await gw.close()
        listed = sorted(str(s.get("id")) for s in sites[0]) if isinstance(sites[0], list) else []
        bad = [k for k, v in results.items() if v != "forbidden"]
        if listed != [d.plant.site.id]:
            bad.append(f"sites.list shows {listed}")
        detail = (
            f"{len(results)} probes with the app's grant, all forbidden; sites.list shows only "
            f"its site"
            if not bad
            else "not refused: " + "; ".join(f"{k} ({results.get(k, '')})" for k in bad)
        )
        return not bad, detail, {"probes": results, "forbidden_counted": gw.stats()["forbidden"]}

    async def close(self) -> None:
        await self.sup.close()
        shutil.rmtree(self.work, ignore_errors=True)


def _schema_problems(m: AppManifest, run: _Run) -> list[str]:
    d = run.dataset
    machines = {
        m_path for m_path in (d.plant.machine_path(a, ln, x) for a, ln, x in d.plant.machines())
    }
    signals = set(d.plant.signal_paths())
    out = []
    for f in run.findings:
        if f.type not in m.finding_type_ids:
            out.append(f"type {f.type!r} not declared in the manifest")
        if f.site != d.plant.site.id:
            out.append(f"site {f.site!r} is not the granted site")
        if f.machine is not None and f.machine not in machines:
            out.append(f"machine {f.machine!r} is not a machine of the site")
        for s in f.signals:
            if s not in signals:
                out.append(f"signal {s!r} is not a signal of the site")
        if not (d.start_us - 86_400_000_000 <= f.start_us <= f.end_us <= d.end_us):
            out.append(f"window {f.start_us}..{f.end_us} outside the replay (up to {d.end_us})")
        if not (0.0 <= f.score <= 1.0) or not f.title:
            out.append("score outside 0..1 or empty title")
    return out


def _matches(f: Finding, fault: GroundTruthFault) -> bool:
    return (
        f.machine == fault.machine
        and f.end_us >= fault.start_us - LEAD_WINDOW_S * 1_000_000
        and f.start_us <= fault.end_us
    )


def _detector(claim: Claim, runs: Sequence[_Run]) -> dict[str, Any]:
    found = 0
    tp = 0
    faults = 0
    detected = 0
    leads: list[float] = []
    for r in runs:
        fs = [f for f in r.findings if f.type == claim.finding_type and f.machine]
        found += len(fs)
        tp += sum(any(_matches(f, g) for g in r.dataset.faults) for f in fs)
        for g in r.dataset.faults:
            faults += 1
            hits = [f for f in fs if _matches(f, g)]
            if hits:
                detected += 1
                leads.append(max(0.0, (g.start_us - min(f.end_us for f in hits)) / 1e6))
    precision = tp / found if found else None
    recall = detected / faults if faults else None
    lead = statistics.median(leads) if leads else None
    measured = {"precision": precision, "recall": recall, "lead_time_s": lead}[claim.metric]
    return {
        "measured": measured,
        "findings": found,
        "true_positives": tp,
        "failures": faults,
        "detected": detected,
        "precision": precision,
        "recall": recall,
        "median_lead_time_s": lead,
    }


WAITING: Final = ("starved", "blocked")


def standby_saving_truth(d: Dataset, min_wait_us: int) -> dict[str, tuple[float, int]]:
    """What standby would truly have saved in ``d``: for every wait (back-to-back starved or
    blocked time of one machine, clipped to the replay) of at least ``min_wait_us`` in the
    factory's state records, the plant's power model's idle minus offline power (what the
    machine draws waiting, less what it draws switched off) times the wait; per machine with
    a state record, (kWh, waits).
    No meter reading enters it: the factory's power signals are made from the same model.

    ``ValueError`` when the dataset has no state records or names a machine not in the plant.
    """
    if not d.states:
        raise ValueError(f"dataset {d.name!r}: no ground-truth state records")
    power = {d.plant.machine_path(a, ln, m): m.sim.power for a, ln, m in d.plant.machines()}
    by_machine: dict[str, list[GroundTruthState]] = {}
    for st in d.states:
        if st.machine not in power:
            raise ValueError(f"dataset {d.name!r}: state of {st.machine!r}, not in the plant")
        by_machine.setdefault(st.machine, []).append(st)
    out: dict[str, tuple[float, int]] = {}
    for machine, recs in by_machine.items():
        recs.sort(key=lambda st: st.at_us)
        runs: list[list[int]] = []
        for i, st in enumerate(recs):
            a = max(st.at_us, d.start_us)
            b = min(recs[i + 1].at_us if i + 1 < len(recs) else d.end_us, d.end_us)
            if st.state not in WAITING or b <= a:
                continue
            if runs and runs[-1][1] == a:
                runs[-1][1] = b
            else:
                runs.append([a, b])
        pw = power[machine]
        long = [b - a for a, b in runs if b - a >= min_wait_us]
        out[machine] = ((pw.idle_kw - pw.offline_kw) * sum(long) / 3.6e9, len(long))
    return out


def _min_wait_us(m: AppManifest) -> int:
    """The shortest wait a saving claim counts: the app's ``min_idle_min`` setting."""
    v = m.settings_defaults().get("min_idle_min", 0)
    return round(float(v) * 60e6) if isinstance(v, int | float) else 0


def _claims(m: AppManifest, runs: Sequence[_Run]) -> list[dict[str, Any]]:
    out = []
    for c in m.claims:
        row: dict[str, Any] = {
            "metric": c.metric,
            "finding_type": c.finding_type,
            "claimed": c.target,
            "tolerance_pct": c.tolerance_pct,
            "description": c.description,
        }
        if c.metric in ("precision", "recall", "lead_time_s"):
            got = _detector(c, runs)
            row.update(got)
            measured = got["measured"]
            if measured is None:
                row.update(ok=False, verdict="not measurable: no findings or no failures")
            elif c.target is not None:
                row.update(
                    ok=measured >= c.target,
                    verdict=f"measured {measured:.3g}, claimed {c.target:g}",
                )
            else:
                row.update(ok=True, verdict=f"measured {measured:.3g} (no target claimed)")
        elif c.metric == "saving_kwh":
            key = c.evidence_key or "saving_kwh"
            est = 0.0
            est_by: dict[tuple[str, str], float] = {}
            for r in runs:
                for f in r.findings:
                    v = f.evidence.get(key) if f.type == c.finding_type else None
                    if isinstance(v, int | float) and math.isfinite(v):
                        est += float(v)
                        k = (r.dataset.name, f.machine or "")
                        est_by[k] = est_by.get(k, 0.0) + float(v)
            min_wait = _min_wait_us(m)
            try:
                per = {
                    (r.dataset.name, machine): got
                    for r in runs
                    for machine, got in standby_saving_truth(r.dataset, min_wait).items()
                }
            except ValueError as e:
                row.update(ok=False, measured=round(est, 3), verdict=f"no ground truth: {e}")
                out.append(row)
                continue
            truth = sum(kwh for kwh, _ in per.values())
            machines = [
                {
                    "dataset": name,
                    "machine": machine,
                    "estimated": round(est_by.get((name, machine), 0.0), 4),
                    "truth": round(kwh, 4),
                    "waits": n,
                    "error_pct": (
                        round(abs(est_by.get((name, machine), 0.0) - kwh) / kwh * 100, 2)
                        if kwh > 0
                        else None
                    ),
                }
                for (name, machine), (kwh, n) in sorted(per.items())
                if kwh > 0 or est_by.get((name, machine), 0.0) != 0.0
            ]
            err = abs(est - truth) / truth * 100 if truth > 0 else None
            tol = c.tolerance_pct if c.tolerance_pct is not None else 20.0
            row.update(
                estimated=round(est, 3),
                truth=round(truth, 3),
                truth_basis=(
                    "the plant's power model: idle minus offline power over every starved or "
                    f"blocked wait of at least {min_wait / 60e6:g} min in the factory's state "
                    "records"
                ),
                waits=sum(n for _, n in per.values()),
                machines=machines,
                error_pct=None if err is None else round(err, 2),
                measured=round(est, 3),
                ok=err is not None and err <= tol,
                verdict=(
                    f"estimated {est:.1f} kWh vs {truth:.1f} kWh true"
                    + ("" if err is None else f" ({err:.1f} % off, {tol:g} % allowed)")
                ),
            )
        else:
            row.update(
                ok=False,
                measured=None,
                verdict=f"{c.metric}: no ground truth to measure it against",
            )
        out.append(row)
    return out


async def run_app_test(
    app_dir: Path,
    datasets: Sequence[Dataset],
    *,
    timeout_s: float = 60.0,
    progress: Callable[[str], None] | None = None,
) -> AppTestReport:
    """Test the app in ``app_dir`` against ``datasets`` (the first is also used for the
    determinism, restart and probe runs). Never raises for the app's faults: each is a
    failed check in the report."""
    say = progress or (lambda _s: None)
    t0 = time.monotonic()
    report = AppTestReport(str(app_dir), None, None, time.time())
    try:
        m = load_manifest(app_dir)
    except ModelError as e:
        report.add("manifest", False, str(e))
        report.duration_s = time.monotonic() - t0
        return report
    except OSError as e:
        report.add("manifest", False, f"{app_dir / MANIFEST_FILE}: {e.strerror or e}")
        report.duration_s = time.monotonic() - t0
        return report
    report.app_id, report.version = m.id, m.version
    report.manifest = json.loads(m.model_dump_json(by_alias=True))
    report.add("manifest", True, f"{m.id} {m.version}: valid", permissions=list(m.permissions))
    unknown = set(m.permissions) - set(APP_PERMISSIONS)
    if unknown:  # pragma: no cover - the manifest refuses these already
        report.add("permissions", False, f"unknown permissions {sorted(unknown)}")
    if not datasets:
        raise ValueError("run_app_test: no datasets")
    check = check_sandbox()
    report.add("sandbox", check.ok, check.reason, process_cap=check.cgroup)
    if not check.ok:
        report.duration_s = time.monotonic() - t0
        return report
    h = _Harness(app_dir, m, datasets, timeout_s)
    runs: list[_Run] = []
    try:
        say("sandbox probe")
        ok, detail, got = await h.probe_sandbox()
        report.add("sandbox probes", ok, detail, **got)
        first = datasets[0]
        say("gateway probes")
        ok, detail, got = await h.probe_gateway(first)
        report.add("permission probes", ok, detail, **got)
        for d in datasets:
            say(f"run: {d.name}")
            runs.append(await h.run(d, "clean"))
        say(f"determinism: {first.name} again")
        again = await h.run(first, "repeat")
        say(f"restart: {first.name}, killed after its first requests")
        restarted = await h.run(first, "restart", kill=True)
        damaged = []
        for d in datasets:
            say(f"damaged: {d.name}")
            damaged.append(await h.run(d, "damaged", damaged=True))
    finally:
        await h.close()
    all_runs = [*runs, again, restarted, *damaged]
    report.runs = [r.as_dict() for r in all_runs]
    clean_ok = [r for r in runs if r.finished]
    report.add(
        "runs",
        len(clean_ok) == len(runs),
        f"{len(clean_ok)} of {len(runs)} datasets analysed to the end"
        + "".join(
            f"; {r.dataset.name}: {r.status.last_exit_reason}" for r in runs if not r.finished
        ),
        findings=sum(len(r.findings) for r in runs),
    )
    problems = [p for r in all_runs for p in _schema_problems(m, r)]
    report.add(
        "output schema",
        not problems,
        "every finding: declared type, granted site, its machines and signals, window in the replay"
        if not problems
        else f"{len(problems)} problems, first: {problems[0]}",
        findings_checked=sum(len(r.findings) for r in all_runs),
    )
    a = sorted(_canon(f) for f in runs[0].findings)
    b = sorted(_canon(f) for f in again.findings)
    report.add(
        "determinism",
        a == b and again.finished,
        f"two runs on {first.name}: {len(a)} and {len(b)} findings, "
        + ("identical" if a == b else f"{len(set(a) ^ set(b))} differ"),
    )
    restarted_set = set(_canon(f) for f in restarted.findings)
    report.add(
        "restart",
        restarted.finished and restarted.status.restarts >= 1 and set(a) <= restarted_set,
        f"killed after its first requests, restarted {restarted.status.restarts} time(s), "
        + (
            "finished"
            if restarted.finished
            else f"did not finish: {restarted.status.last_exit_reason}"
        )
        + (
            ", the same findings"
            if set(a) <= restarted_set
            else ", findings missing after the restart"
        ),
    )
    bad = [r for r in damaged if not r.finished]
    report.add(
        "faults in the data",
        not bad,
        f"{len(damaged)} runs with a 10 % gap and NaN values in every read: "
        + (
            "all finished"
            if not bad
            else "; ".join(f"{r.dataset.name}: {r.status.last_exit_reason}" for r in bad)
        ),
        findings=sum(len(r.findings) for r in damaged),
    )
    lim = m.limits
    peak = max(r.peak_mb for r in all_runs)
    cpu = max(r.cpu_s for r in all_runs)
    report.add(
        "resource use",
        peak <= lim.memory_mb and cpu <= lim.cpu_s,
        f"peak {peak:.0f} MB of {lim.memory_mb} MB, CPU {cpu:.2f} s of {lim.cpu_s:g} s per run",
        peak_memory_mb=round(peak, 1),
        max_cpu_s=round(cpu, 3),
        max_wall_s=round(max(r.wall_s for r in all_runs), 3),
    )
    report.claims = _claims(m, runs)
    if report.claims:
        bad_claims = [c for c in report.claims if not c["ok"]]
        report.add(
            "claims",
            not bad_claims,
            f"{len(report.claims) - len(bad_claims)} of {len(report.claims)} claims hold"
            + "".join(f"; {c['metric']}: {c['verdict']}" for c in bad_claims),
        )
    report.duration_s = time.monotonic() - t0
    report.figures = {
        "duration_s": round(report.duration_s, 3),
        "datasets": len(datasets),
        "runs": len(all_runs),
        "findings": sum(len(r.findings) for r in runs),
        "peak_memory_mb": round(peak, 1),
        "max_cpu_s": round(cpu, 3),
    }
    return report
