"""The app catalog and each tenant's installations (issue 14 item 5).

* ``publish``: an app directory and its test report (``andon app test``) become a catalog
  version, shared by every tenant; a report that did not pass, or that is another app's or
  version's, is refused.
* ``install`` on chosen sites of the tenant, with exactly the permissions the manifest asks
  for accepted (what the admin was shown), settings validated against the manifest's schema;
  ``configure``, ``upgrade`` (new permissions accepted again), ``rollback`` (to the version
  and settings before the last upgrade or change), ``uninstall``.
* ``uninstall`` ends access at once: the row leaves the ``installed`` state, so ``grant``
  refuses it, and the runner stops the instance. What it wrote is kept or deleted by the
  policy of ``docs/decisions/0902-app-catalog-and-findings.md``: findings, people's feedback
  and work-order proposals stay (the tenant's record of what was found and decided); the
  instance's private key/value state is deleted.

Every change is written to the audit log (``andon.platform.audit``) with who, from where, and
what it was before. Errors are the platform's ``NotFound`` / ``Invalid`` / ``Conflict``, with
the field and the reason in the message.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from andon.apps.gateway import AppGateway, platform_sites
from andon.apps.grant import AppGrant
from andon.apps.manifest import AppManifest, load_manifest
from andon.apps.repository import SqlAppRepository
from andon.apps.supervisor import (
    AppSupervisor,
    InstanceSpec,
    SandboxUnavailable,
    resource_limits,
)
from andon.bus import LiveBus
from andon.model.loader import ModelError
from andon.model.types import Micros
from andon.platform.audit import AuditLog
from andon.platform.database import Database
from andon.platform.security import new_id
from andon.platform.service import Conflict, Invalid, NotFound, Platform
from andon.platform.tables import app_installations, apps, sites
from andon.store.base import TelemetryStore

__all__ = [
    "INSTALLED",
    "UNINSTALLED",
    "Catalog",
    "InstanceRunner",
    "SupervisedRunner",
    "Who",
    "app_digest",
    "grant_of",
    "version_key",
]

log = logging.getLogger(__name__)

INSTALLED = "installed"
UNINSTALLED = "uninstalled"


@dataclass(frozen=True, slots=True)
class Who:
    """Who asks (audit actor, e.g. ``user:<id>``) and from where (address, or ``cli``)."""

    actor: str
    source: str = "cli"


class InstanceRunner(Protocol):
    """Starts, stops and reports on installed instances (``andon.apps.supervisor``'s
    ``AppSupervisor`` behind an adapter). The catalog and the API work without one:
    installations are then only rows, their status ``not running``."""

    async def start(self, grant: AppGrant, app_dir: Path, manifest: AppManifest) -> None: ...

    async def stop(self, instance_id: str) -> None:
        """Stop the instance; nothing when it does not run."""
        ...

    def status(self, instance_id: str) -> dict[str, Any] | None:
        """``InstanceStatus.as_dict()`` of a known instance; ``None`` for one not run."""
        ...

    def logs(self, instance_id: str, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` log lines (``at``, ``stream``, ``level``, ``text``)."""
        ...

    async def close(self) -> None:
        """Stop every instance (the platform shutting down; they start again with it)."""
        ...


class SupervisedRunner:
    """The ``InstanceRunner`` of ``andon serve``: each instance runs sandboxed under
    ``supervisor`` beside its own ``AppGateway`` (its grant, the platform's store, bus and
    sites, ``sink`` for what it writes), its data directory under ``data_root``. An instance
    the supervisor refuses to start (no sandbox here, a missing app directory) is not an
    error of the change that asked for it: its status is ``refused`` with the reason."""

    def __init__(
        self,
        supervisor: AppSupervisor,
        *,
        platform: Platform,
        store: TelemetryStore,
        bus: LiveBus,
        sink: SqlAppRepository,
        clock: Callable[[], Micros],
        data_root: Path,
    ) -> None:
        self.supervisor = supervisor
        self.platform = platform
        self.store = store
        self.bus = bus
        self.sink = sink
        self.clock = clock
        self.data_root = data_root
        self.refused: dict[str, str] = {}
        """Instances the supervisor would not start, and why (until they start)."""

    async def start(self, grant: AppGrant, app_dir: Path, manifest: AppManifest) -> None:
        try:
            await self._start(grant, app_dir, manifest)
        except (SandboxUnavailable, ValueError, RuntimeError, OSError) as exc:
            log.warning("app instance %s (%s) refused: %s", grant.instance_id, grant.app_id, exc)
            self.refused[grant.instance_id] = str(exc)[:500]
        else:
            self.refused.pop(grant.instance_id, None)

    async def _start(self, grant: AppGrant, app_dir: Path, manifest: AppManifest) -> None:
        gateway = AppGateway(
            grant,
            self.store,
            self.bus,
            self.sink,
            self.clock,
            manifest=manifest,
            sites=platform_sites(self.platform),
        )
        await self.supervisor.start(
            InstanceSpec(
                grant.instance_id,
                grant.app_id,
                grant.app_version,
                app_dir,
                self.data_root / grant.instance_id,
                entry=manifest.entry,
                limits=resource_limits(manifest.limits),
                gateway=gateway,
            )
        )

    async def stop(self, instance_id: str) -> None:
        self.refused.pop(instance_id, None)
        if instance_id in self.supervisor.instances():
            await self.supervisor.stop(instance_id)

    def status(self, instance_id: str) -> dict[str, Any] | None:
        if instance_id in self.refused:
            return {"state": "refused", "last_exit_reason": self.refused[instance_id]}
        if instance_id not in self.supervisor.instances():
            return None
        return self.supervisor.status(instance_id).as_dict()

    def logs(self, instance_id: str, limit: int) -> list[dict[str, Any]]:
        if instance_id not in self.supervisor.instances():
            return []
        return [asdict(x) for x in self.supervisor.logs(instance_id, limit)]

    async def close(self) -> None:
        await self.supervisor.close()


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _as_previous(inst: Mapping[str, Any]) -> dict[str, Any]:
    """The installation's current version, settings and permissions as the columns a
    rollback returns to (every change keeps the state before it)."""
    return {
        "previous_version": inst["version"],
        "previous_settings": _dumps(inst["settings"]),
        "previous_permissions": _dumps(inst["permissions"]),
    }


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def _installation_out(r: Mapping[Any, Any]) -> dict[str, Any]:
    out = dict(r)
    for k in ("site_ids", "settings", "permissions", "previous_settings", "previous_permissions"):
        out[k] = _loads(r[k])
    return out


def grant_of(inst: Mapping[str, Any]) -> AppGrant:
    """The grant of an installed instance (an ``installation`` dict of this module)."""
    return AppGrant(
        tenant_id=str(inst["tenant_id"]),
        instance_id=str(inst["id"]),
        app_id=str(inst["app_id"]),
        app_version=str(inst["version"]),
        site_ids=frozenset(inst["site_ids"]),
        permissions=frozenset(inst["permissions"]),
        settings=dict(inst["settings"]),
    )


def _manifest_json(m: AppManifest) -> dict[str, Any]:
    dumped: dict[str, Any] = m.model_dump(mode="json", by_alias=True)
    return dumped


def app_digest(app_dir: Path) -> str:
    """SHA-256 over the app directory's files (relative path, size and bytes, in path
    order; ``__pycache__`` left out): what was tested is what runs."""
    h = hashlib.sha256()
    for path in sorted(p for p in app_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(app_dir)
        if "__pycache__" in rel.parts:
            continue
        data = path.read_bytes()
        h.update(f"{rel.as_posix()}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def version_key(version: str) -> tuple[int, int, int, int, str]:
    """Order of versions ``MAJOR.MINOR.PATCH[-pre]`` (a pre-release before its release).

    >>> sorted(["1.10.0", "1.2.0", "1.2.0-rc1"], key=version_key)
    ['1.2.0-rc1', '1.2.0', '1.10.0']
    """
    core, _, pre = version.partition("-")
    parts = [int(x) if x.isdigit() else 0 for x in core.split(".")[:3]] + [0, 0, 0]
    return (parts[0], parts[1], parts[2], 0 if pre else 1, pre)


def _figures(report: Mapping[str, Any]) -> dict[str, Any]:
    """What the catalog shows of a test report (``andon app test``'s JSON,
    ``andon.apps.testing.AppTestReport``): each claim's measured figure beside the claim
    (``measured``: metric → value, ``claims``: the rows with their verdicts) and the run's
    own figures (``run``: duration, datasets, findings, peak memory, CPU)."""
    claims = report.get("claims", [])
    run = report.get("figures", {})
    if not isinstance(claims, list) or not isinstance(run, Mapping):
        raise Invalid("report: claims must be a list and figures an object (andon app test's)")
    rows = [
        {k: c.get(k) for k in ("metric", "finding_type", "claimed", "measured", "ok", "verdict")}
        for c in claims
        if isinstance(c, Mapping) and isinstance(c.get("metric"), str)
    ]
    return {
        "measured": {r["metric"]: r["measured"] for r in rows},
        "claims": rows,
        "run": dict(run),
    }


class Catalog:
    """Published app versions and the tenant's installations on the metadata database."""

    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        repository: SqlAppRepository,
        clock: Callable[[], Micros],
        *,
        runner: InstanceRunner | None = None,
    ) -> None:
        self.db = db
        self.audit = audit
        self.repository = repository
        self.clock = clock
        self.runner = runner

    async def _audit(
        self, tenant: str | None, who: Who, action: str, obj: str, detail: dict[str, Any]
    ) -> None:
        await self.audit.record(
            tenant_id=tenant,
            actor=who.actor,
            source=who.source,
            action=action,
            obj=obj,
            result="ok",
            detail=detail,
        )

    # -- the catalog ------------------------------------------------------------------------

    async def publish(self, app_dir: Path, report: Mapping[str, Any], who: Who) -> dict[str, Any]:
        """Publish the app in ``app_dir`` with its test report; the catalog version."""
        try:
            manifest = load_manifest(app_dir)
        except ModelError as exc:
            raise Invalid(f"manifest: {exc}") from None
        rep_app, rep_version = report.get("app_id"), report.get("version")
        if (rep_app, rep_version) != (manifest.id, manifest.version):
            raise Invalid(
                f"report: is for {rep_app!r:.80} {rep_version!r:.40}, "
                f"the directory holds {manifest.id} {manifest.version}"
            )
        if report.get("ok") is not True:
            failed = [
                str(c.get("name"))
                for c in report.get("checks", [])
                if isinstance(c, Mapping) and c.get("ok") is False
            ]
            raise Invalid(
                "report: the app did not pass its test run"
                + (f" (failed: {', '.join(failed[:10])})" if failed else "")
            )
        row = {
            "app_id": manifest.id,
            "version": manifest.version,
            "name": manifest.name.en,
            "vendor": manifest.vendor,
            "category": str(manifest.category),
            "source_dir": str(app_dir.resolve()),
            "manifest": _dumps(_manifest_json(manifest)),
            "report": _dumps(dict(report)),
            "figures": _dumps(_figures(report)),
            "passed": True,
            "published_by": who.actor[:200],
            "published_at": self.clock(),
            "digest": await asyncio.to_thread(app_digest, app_dir),
        }
        try:
            async with self.db.begin() as conn:
                await conn.execute(insert(apps).values(**row))
        except IntegrityError:
            raise Conflict(f"{manifest.id} {manifest.version} is already published") from None
        await self._audit(
            None,
            who,
            "apps.publish",
            f"app:{manifest.id}@{manifest.version}",
            {"source_dir": row["source_dir"], "figures": _figures(report)},
        )
        return await self.version(manifest.id, manifest.version)

    async def version(self, app_id: str, version: str | None = None) -> dict[str, Any]:
        """One published version (the newest when ``version`` is None), with its manifest,
        report and figures."""
        q = select(apps).where(apps.c.app_id == app_id)
        if version is not None:
            q = q.where(apps.c.version == version)
        async with self.db.begin() as conn:
            rows = (await conn.execute(q)).mappings().all()
        if not rows:
            what = app_id if version is None else f"{app_id} {version}"
            raise NotFound(f"app {what!r:.120} is not in the catalog")
        r = max(rows, key=lambda x: version_key(x["version"]))
        out = dict(r)
        for k in ("manifest", "report", "figures"):
            out[k] = json.loads(r[k])
        return out

    async def apps(self) -> list[dict[str, Any]]:
        """Every app of the catalog: its newest version (manifest and figures, no report)
        and the versions published, newest first."""
        async with self.db.begin() as conn:
            rows = (await conn.execute(select(apps))).mappings().all()
        out: dict[str, dict[str, Any]] = {}
        for r in sorted(rows, key=lambda x: version_key(x["version"]), reverse=True):
            entry = out.get(r["app_id"])
            if entry is None:
                entry = out[r["app_id"]] = {
                    k: r[k]
                    for k in ("app_id", "version", "name", "vendor", "category", "published_at")
                }
                entry["manifest"] = json.loads(r["manifest"])
                entry["figures"] = json.loads(r["figures"])
                entry["versions"] = []
            entry["versions"].append(r["version"])
        return sorted(out.values(), key=lambda e: str(e["app_id"]))

    async def _manifest(self, app_id: str, version: str) -> tuple[AppManifest, Path]:
        v = await self.version(app_id, version)
        app_dir = Path(v["source_dir"])
        await self._unchanged(v)
        return AppManifest.model_validate(v["manifest"]), app_dir

    @staticmethod
    async def _unchanged(v: Mapping[str, Any]) -> None:
        """``Invalid`` when the version's directory is gone or differs from what was tested."""
        app_dir = Path(v["source_dir"])
        what = f"{v['app_id']} {v['version']}"
        if not app_dir.is_dir():
            raise Invalid(f"app {what}: its directory {app_dir} is gone")
        if await asyncio.to_thread(app_digest, app_dir) != v["digest"]:
            raise Invalid(
                f"app {what}: its directory {app_dir} changed since it was tested and "
                "published; publish the change as a new version"
            )

    # -- installations ----------------------------------------------------------------------

    async def installations(
        self, tenant_id: str, *, include_uninstalled: bool = False
    ) -> list[dict[str, Any]]:
        q = select(app_installations).where(app_installations.c.tenant_id == tenant_id)
        if not include_uninstalled:
            q = q.where(app_installations.c.state == INSTALLED)
        async with self.db.begin() as conn:
            rows = (
                (await conn.execute(q.order_by(app_installations.c.installed_at))).mappings().all()
            )
        return [_installation_out(r) for r in rows]

    async def installation(self, tenant_id: str, installation_id: str) -> dict[str, Any]:
        """One installation of the tenant (also an uninstalled one: its row stays)."""
        async with self.db.begin() as conn:
            r = (
                (
                    await conn.execute(
                        select(app_installations).where(
                            app_installations.c.tenant_id == tenant_id,
                            app_installations.c.id == installation_id,
                        )
                    )
                )
                .mappings()
                .first()
            )
        if r is None:
            raise NotFound(f"installation {installation_id!r:.80} not in tenant")
        return _installation_out(r)

    async def _installed(self, tenant_id: str, installation_id: str) -> dict[str, Any]:
        inst = await self.installation(tenant_id, installation_id)
        if inst["state"] != INSTALLED:
            raise Invalid(f"installation {installation_id}: uninstalled, nothing to change")
        return inst

    async def grant(self, tenant_id: str, installation_id: str) -> AppGrant:
        """The grant of an installed instance; ``NotFound`` once it is uninstalled."""
        inst = await self.installation(tenant_id, installation_id)
        if inst["state"] != INSTALLED:
            raise NotFound(f"installation {installation_id!r:.80} is uninstalled")
        return grant_of(inst)

    async def _check_sites(self, tenant_id: str, site_ids: Iterable[str]) -> list[str]:
        ids = sorted(set(site_ids))
        if not ids:
            raise Invalid("site_ids: choose at least one site")
        async with self.db.begin() as conn:
            found = set(
                (
                    await conn.execute(
                        select(sites.c.id).where(
                            sites.c.tenant_id == tenant_id, sites.c.id.in_(ids)
                        )
                    )
                )
                .scalars()
                .all()
            )
        missing = [s for s in ids if s not in found]
        if missing:
            raise NotFound(f"site {missing[0]!r:.80} not in tenant")
        return ids

    @staticmethod
    def _check_permissions(manifest: AppManifest, accepted: Iterable[str]) -> list[str]:
        asked = sorted(str(p) for p in manifest.permissions)
        got = sorted(set(accepted))
        if got != asked:
            raise Invalid(
                "accepted_permissions: accept exactly the permissions the app asks for "
                f"({', '.join(asked) or 'none'}); got {', '.join(got) or 'none'}"
            )
        return asked

    @staticmethod
    def _check_settings(manifest: AppManifest, settings: Mapping[str, Any]) -> dict[str, Any]:
        try:
            valid: dict[str, Any] = manifest.validate_settings(dict(settings))
        except ValueError as exc:
            raise Invalid(f"settings: {exc}") from None
        return valid

    async def start_installed(self) -> dict[str, str]:
        """Start every installed instance of every tenant (the platform starting up); per
        instance that could not start, why (a missing app directory, no sandbox...). One
        failure does not keep the others from starting."""
        if self.runner is None:
            return {}
        async with self.db.begin() as conn:
            rows = (
                (
                    await conn.execute(
                        select(app_installations).where(app_installations.c.state == INSTALLED)
                    )
                )
                .mappings()
                .all()
            )
        failed: dict[str, str] = {}
        for r in rows:
            try:
                await self._start(_installation_out(r))
            except Exception as exc:  # each instance on its own: say why, go on
                log.warning("app instance %s (%s) not started: %s", r["id"], r["app_id"], exc)
                failed[str(r["id"])] = str(exc)[:500]
        return failed

    async def _start(self, inst: dict[str, Any]) -> None:
        if self.runner is None:
            return
        manifest, app_dir = await self._manifest(inst["app_id"], inst["version"])
        await self.runner.start(grant_of(inst), app_dir, manifest)

    async def _stop(self, instance_id: str) -> None:
        if self.runner is not None:
            await self.runner.stop(instance_id)

    async def install(
        self,
        tenant_id: str,
        who: Who,
        app_id: str,
        *,
        site_ids: Iterable[str],
        accepted_permissions: Iterable[str],
        settings: Mapping[str, Any] | None = None,
        version: str | None = None,
    ) -> dict[str, Any]:
        """Install ``app_id`` (its newest version unless ``version``) on the tenant's
        ``site_ids``; the installation. Started at once when the catalog has a runner."""
        v = await self.version(app_id, version)
        manifest = AppManifest.model_validate(v["manifest"])
        perms = self._check_permissions(manifest, accepted_permissions)
        await self._unchanged(v)
        ids = await self._check_sites(tenant_id, site_ids)
        valid = self._check_settings(manifest, settings or {})
        now = self.clock()
        row = {
            "id": new_id(),
            "tenant_id": tenant_id,
            "app_id": app_id,
            "version": v["version"],
            "site_ids": _dumps(ids),
            "settings": _dumps(valid),
            "permissions": _dumps(perms),
            "state": INSTALLED,
            "installed_by": who.actor[:200],
            "installed_at": now,
            "updated_at": now,
        }
        async with self.db.begin() as conn:
            await conn.execute(insert(app_installations).values(**row))
        inst = await self.installation(tenant_id, str(row["id"]))
        await self._audit(
            tenant_id,
            who,
            "apps.install",
            f"installation:{row['id']}",
            {
                "app": app_id,
                "version": v["version"],
                "sites": ids,
                "permissions": perms,
                "settings": valid,
            },
        )
        await self._start(inst)
        return inst

    async def _change(
        self, tenant_id: str, installation_id: str, values: dict[str, Any]
    ) -> dict[str, Any]:
        async with self.db.begin() as conn:
            await conn.execute(
                update(app_installations)
                .where(
                    app_installations.c.tenant_id == tenant_id,
                    app_installations.c.id == installation_id,
                )
                .values(updated_at=self.clock(), **values)
            )
        return await self.installation(tenant_id, installation_id)

    async def configure(
        self, tenant_id: str, who: Who, installation_id: str, settings: Mapping[str, Any]
    ) -> dict[str, Any]:
        """New settings (validated against the installed version's schema); the instance
        restarts with them. Rollback returns to the settings before."""
        inst = await self._installed(tenant_id, installation_id)
        manifest, _ = await self._manifest(inst["app_id"], inst["version"])
        valid = self._check_settings(manifest, settings)
        new = await self._change(
            tenant_id,
            installation_id,
            {
                "settings": _dumps(valid),
                **_as_previous(inst),
            },
        )
        await self._audit(
            tenant_id,
            who,
            "apps.configure",
            f"installation:{installation_id}",
            {"before": inst["settings"], "after": valid},
        )
        await self._restart(new)
        return new

    async def _restart(self, inst: dict[str, Any]) -> None:
        await self._stop(str(inst["id"]))
        await self._start(inst)

    async def upgrade(
        self,
        tenant_id: str,
        who: Who,
        installation_id: str,
        *,
        version: str,
        accepted_permissions: Iterable[str],
        settings: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Move to another published ``version`` (up or down) with its permissions accepted
        again; ``settings`` (default: the current ones) are validated against its schema."""
        inst = await self._installed(tenant_id, installation_id)
        if version == inst["version"]:
            raise Invalid(f"version: {version!r:.40} is the installed version")
        manifest, _ = await self._manifest(inst["app_id"], version)
        perms = self._check_permissions(manifest, accepted_permissions)
        valid = self._check_settings(manifest, inst["settings"] if settings is None else settings)
        new = await self._change(
            tenant_id,
            installation_id,
            {
                "version": version,
                "settings": _dumps(valid),
                "permissions": _dumps(perms),
                **_as_previous(inst),
            },
        )
        await self._audit(
            tenant_id,
            who,
            "apps.upgrade",
            f"installation:{installation_id}",
            {
                "before": {k: inst[k] for k in ("version", "settings", "permissions")},
                "after": {"version": version, "settings": valid, "permissions": perms},
            },
        )
        await self._restart(new)
        return new

    async def rollback(self, tenant_id: str, who: Who, installation_id: str) -> dict[str, Any]:
        """Back to the version, settings and permissions before the last upgrade or change
        (rolling back twice goes forward again)."""
        inst = await self._installed(tenant_id, installation_id)
        if inst["previous_version"] is None:
            raise Invalid(f"installation {installation_id}: nothing to roll back to")
        await self._manifest(inst["app_id"], inst["previous_version"])  # still as tested
        new = await self._change(
            tenant_id,
            installation_id,
            {
                "version": inst["previous_version"],
                "settings": _dumps(inst["previous_settings"]),
                "permissions": _dumps(inst["previous_permissions"]),
                **_as_previous(inst),
            },
        )
        await self._audit(
            tenant_id,
            who,
            "apps.rollback",
            f"installation:{installation_id}",
            {
                "before": {k: inst[k] for k in ("version", "settings", "permissions")},
                "after": {k: new[k] for k in ("version", "settings", "permissions")},
            },
        )
        await self._restart(new)
        return new

    async def uninstall(self, tenant_id: str, who: Who, installation_id: str) -> dict[str, Any]:
        """End the instance's access at once (its grant is refused from now on, the runner
        stops it), delete its key/value state, keep its findings, feedback and work orders
        (decision 0902); the installation, now ``uninstalled``."""
        inst = await self._installed(tenant_id, installation_id)
        new = await self._change(
            tenant_id, installation_id, {"state": UNINSTALLED, "uninstalled_at": self.clock()}
        )
        stopped = "no runner"
        try:
            await self._stop(installation_id)
            stopped = "stopped" if self.runner is not None else stopped
        except Exception as exc:  # the grant is gone already; say what the runner said
            log.exception("uninstall %s: stopping the instance failed", installation_id)
            stopped = f"stop failed: {exc!r:.200}"
        kept = await self.repository.counts(tenant_id, installation_id)
        dropped = await self.repository.drop_state(tenant_id, installation_id)
        await self._audit(
            tenant_id,
            who,
            "apps.uninstall",
            f"installation:{installation_id}",
            {
                "app": inst["app_id"],
                "version": inst["version"],
                "instance": stopped,
                "kept": {k: v for k, v in kept.items() if k != "state_keys"},
                "state_keys_deleted": dropped,
            },
        )
        return new
