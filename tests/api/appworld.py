"""The app platform's objects in a test world: the test app ``probe`` published at two
versions (``tests/data/apps/probe-*``), an installation per tenant on its site, and findings
put in through the repository as the gateway would (made once per world and tenant)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from andon.apps.catalog import Catalog, Who, grant_of
from andon.apps.manifest import load_manifest
from andon.apps.repository import SqlAppRepository
from andon.apps.testing.harness import AppTestReport
from andon.platform.service import Conflict
from andon.sdk import Finding
from tests.api.world import Tenant, World

__all__ = [
    "APP_DIRS",
    "PERMS",
    "add_finding",
    "catalog",
    "finding_id",
    "install",
    "installation_id",
    "publish_probe",
    "report_of",
    "repository",
]

APP_DIRS = {
    v: Path(__file__).resolve().parents[1] / "data" / "apps" / f"probe-{v}"
    for v in ("0.1.0", "0.2.0")
}
PERMS = {v: list(load_manifest(d).permissions) for v, d in APP_DIRS.items()}
SIGNAL = "tc1/machining/L1/MC-01/vibration"
MACHINE = "tc1/machining/L1/MC-01"
_INSTALLS: dict[tuple[int, str], str] = {}
_FINDINGS: dict[tuple[int, str], str] = {}


def report_of(app_dir: Path, **measured: float) -> dict[str, Any]:
    """A passing test report for the app in ``app_dir``, built with the harness's own report
    type (``andon app test``'s JSON), its claims measured as given. The catalog tests do not
    run the harness (two minutes per app; its own tests do)."""
    m = load_manifest(app_dir)
    rep = AppTestReport(str(app_dir), m.id, m.version, started_at=0.0, duration_s=1.0)
    rep.add("manifest", True, "valid")
    rep.claims = [
        {
            "metric": c.metric,
            "finding_type": c.finding_type,
            "claimed": c.target,
            "measured": measured.get(c.metric),
            "ok": measured.get(c.metric, 0.0) >= (c.target or 0.0),
            "verdict": f"measured {measured.get(c.metric)}, claimed {c.target}",
        }
        for c in m.claims
    ]
    rep.figures = {"duration_s": 1.0, "datasets": 3, "findings": 12}
    return rep.as_dict()


def repository(w: World) -> SqlAppRepository:
    return SqlAppRepository(w.platform.db, w.clock)


def catalog(w: World) -> Catalog:
    pf = w.platform
    return Catalog(pf.db, pf.audit, repository(w), w.clock)


def publish_probe(w: World) -> None:
    """Both versions in the world's catalog (once)."""
    for v, d in APP_DIRS.items():
        with contextlib.suppress(Conflict):
            w.run(catalog(w).publish, d, report_of(d, precision=0.9 - 0.1 * int(v[2])), Who("cli"))


def install(w: World, t: Tenant, version: str = "0.1.0") -> dict[str, Any]:
    """A new installation of ``probe`` on ``t``'s site."""
    publish_probe(w)

    async def go() -> dict[str, Any]:
        return await catalog(w).install(
            t.id,
            Who(f"user:{t.admin_id}"),
            "probe",
            site_ids=[t.site_id],
            accepted_permissions=PERMS[version],
            version=version,
        )

    return w.run(go)


def installation_id(w: World, t: Tenant) -> str:
    """``t``'s long-lived installation (endpoints that change it get a fresh one)."""
    key = (id(w), t.id)
    if key not in _INSTALLS:
        _INSTALLS[key] = str(install(w, t)["id"])
    return _INSTALLS[key]


def add_finding(w: World, t: Tenant, inst_id: str, **kw: Any) -> str:
    """A finding of installation ``inst_id`` on ``t``'s site, stored as the gateway does."""
    inst = w.run(catalog(w).installation, t.id, inst_id)
    f = Finding(
        **{
            "type": "spindle_wear",
            "site": t.site_id,
            "machine": MACHINE,
            "start_us": w.start + 1_800_000_000,
            "end_us": w.start + 3_600_000_000,
            "score": 0.8,
            "title": "Spindle vibration rising",
            "explanation": "RMS vibration up 40 % over the window",
            "signals": (SIGNAL,),
            "evidence": {"rms_rise_pct": 40},
            **kw,
        }
    )
    return w.run(repository(w).add_finding, grant_of(inst), f, w.clock())


def finding_id(w: World, t: Tenant) -> str:
    """A finding on ``t``'s site (made once per world and tenant)."""
    key = (id(w), t.id)
    if key not in _FINDINGS:
        _FINDINGS[key] = add_finding(w, t, installation_id(w, t))
    return _FINDINGS[key]
