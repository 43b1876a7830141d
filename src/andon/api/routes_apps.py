"""API routes of the app platform (issue 14; registered on the shared declared router):

* the catalog (``tenant:read`` anywhere in the tenant): published apps, each with the
  vendor's claims in its manifest beside the figures its test run measured;
* publishing (platform administrators): an app directory on the platform's host with its
  passing test report;
* installations (``app:manage``, tenant-wide: the tenant admin): install on chosen sites
  with the asked permissions accepted, configure, upgrade, roll back, uninstall, the
  instance's status and logs (``not running`` when no supervisor runs it);
* the work orders apps proposed per site (``state:read``);
* the findings inbox per site (``state:read``), filtered by machine, type, app, verdict and
  window; a finding's evidence, its signals over its window (``telemetry:read``); a verdict
  with a comment (``finding:review``: operators, engineers, managers, tenant admins).

Catalog and installation changes are audited by ``andon.apps.catalog``; verdicts here.
See ``docs/decisions/0902-app-catalog-and-findings.md``."""

from __future__ import annotations

from pathlib import Path as FsPath
from typing import Annotated, Any, Literal

from fastapi import Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from andon.api.deps import Access, Ctx
from andon.api.params import _floats, _model, api
from andon.api.schemas import AggregatesOut
from andon.api.schemas_apps import (
    CatalogAppOut,
    CatalogVersionOut,
    EvidenceOut,
    FeedbackIn,
    FindingOut,
    FindingsOut,
    InstallationOut,
    InstallIn,
    InstanceLogOut,
    InstanceStatusOut,
    SettingsIn,
    UpgradeIn,
    WorkOrderOut,
)
from andon.apps.catalog import Catalog, Who
from andon.apps.repository import SqlAppRepository
from andon.platform.permissions import Permission

__all__ = ["api"]

P = Permission
_Id = Annotated[str, Path(max_length=64)]
MAX_BUCKETS = 600
"""Buckets of a finding's evidence: enough for a chart's width, whatever the window."""
MARGIN = 0.25
"""The evidence shows this share of the window before and after it, for context."""


def _repo(ctx: Access) -> SqlAppRepository:
    return SqlAppRepository(ctx.services.platform.db, ctx.services.clock)


def _catalog(ctx: Access) -> Catalog:
    svc = ctx.services
    return Catalog(
        svc.platform.db, svc.platform.audit, _repo(ctx), svc.clock, runner=svc.app_runner
    )


def _who(ctx: Access) -> Who:
    return Who(ctx.principal.actor, ctx.source)


# ---- the catalog --------------------------------------------------------------------------------


@api.route("GET", "/apps/catalog", name="apps.catalog", permission=P.TENANT_READ, scope="sites")
async def list_catalog(ctx: Ctx) -> list[CatalogAppOut]:
    """Every published app (its newest version): manifest with the vendor's claims and the
    permissions it asks for, and the figures its test run measured."""
    return [CatalogAppOut(**a) for a in await _catalog(ctx).apps()]


@api.route(
    "GET",
    "/apps/catalog/{app_id}",
    name="apps.catalog.get",
    permission=P.TENANT_READ,
    scope="sites",
)
async def get_catalog_app(
    app_id: _Id,
    ctx: Ctx,
    version: Annotated[str | None, Query(max_length=64)] = None,
) -> CatalogVersionOut:
    """One app's version (default: the newest) with its whole test report."""
    cat = _catalog(ctx)
    v = await cat.version(app_id, version)
    versions: list[str] = next(
        (a["versions"] for a in await cat.apps() if a["app_id"] == app_id), []
    )
    return CatalogVersionOut(**{**v, "versions": versions})


class PublishIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    app_dir: str = Field(
        min_length=1,
        max_length=4096,
        description="the app's directory on the platform's host (the platform runs it from there)",
    )
    report: dict[str, Any] = Field(description="its passing report (`andon app test --json`)")


@api.route(
    "POST",
    "/apps/catalog",
    name="apps.publish",
    permission=P.PLATFORM_ADMIN,
    scope="platform",
    status_code=201,
)
async def publish(body: PublishIn, ctx: Ctx) -> CatalogVersionOut:
    """Publish a tested app (platform administrators; ``andon app publish`` does the same
    from the platform's host): its manifest, the report's app and version must match and the
    report must have passed; 409 when that version is already published."""
    cat = _catalog(ctx)
    v = await cat.publish(FsPath(body.app_dir), body.report, _who(ctx))
    versions: list[str] = next(
        (a["versions"] for a in await cat.apps() if a["app_id"] == v["app_id"]), []
    )
    return CatalogVersionOut(**{**v, "versions": versions})


# ---- installations ------------------------------------------------------------------------------


def _status(ctx: Access, inst: dict[str, Any]) -> InstanceStatusOut:
    runner = ctx.services.app_runner
    got = None if runner is None or inst["state"] != "installed" else runner.status(inst["id"])
    if got is None:
        return InstanceStatusOut(state="not running")
    return InstanceStatusOut(
        **{k: got[k] for k in InstanceStatusOut.model_fields if k in got and got[k] is not None}
    )


async def _out(
    ctx: Access, inst: dict[str, Any], names: dict[str, str] | None = None
) -> InstallationOut:
    if names is None:
        names = {a["app_id"]: a["name"] for a in await _catalog(ctx).apps()}
    return InstallationOut(
        **{k: inst[k] for k in InstallationOut.model_fields if k in inst},
        name=names.get(inst["app_id"], inst["app_id"]),
        status=_status(ctx, inst),
    )


@api.route(
    "GET",
    "/apps/installations",
    name="apps.installations.list",
    permission=P.APP_MANAGE,
    scope="tenant",
)
async def list_installations(ctx: Ctx, uninstalled: bool = False) -> list[InstallationOut]:
    """The tenant's app instances with their status (``uninstalled``: those too)."""
    cat = _catalog(ctx)
    names = {a["app_id"]: a["name"] for a in await cat.apps()}
    rows = await cat.installations(ctx.tenant, include_uninstalled=uninstalled)
    return [await _out(ctx, r, names) for r in rows]


@api.route(
    "POST",
    "/apps/installations",
    name="apps.install",
    permission=P.APP_MANAGE,
    scope="tenant",
    status_code=201,
)
async def install(body: InstallIn, ctx: Ctx) -> InstallationOut:
    """Install an app on sites of the tenant. ``accepted_permissions`` must be exactly the
    permissions its manifest asks for (what the admin was shown); settings are checked
    against its schema (422 naming the setting)."""
    inst = await _catalog(ctx).install(
        ctx.tenant,
        _who(ctx),
        body.app_id,
        site_ids=body.site_ids,
        accepted_permissions=body.accepted_permissions,
        settings=body.settings,
        version=body.version,
    )
    return await _out(ctx, inst)


@api.route(
    "GET",
    "/apps/installations/{installation_id}",
    name="apps.installations.get",
    permission=P.APP_MANAGE,
    scope="tenant",
)
async def get_installation(installation_id: _Id, ctx: Ctx) -> InstallationOut:
    return await _out(ctx, await _catalog(ctx).installation(ctx.tenant, installation_id))


@api.route(
    "PUT",
    "/apps/installations/{installation_id}/settings",
    name="apps.configure",
    permission=P.APP_MANAGE,
    scope="tenant",
)
async def configure(installation_id: _Id, body: SettingsIn, ctx: Ctx) -> InstallationOut:
    """New settings for the instance (checked against its version's schema); it restarts."""
    inst = await _catalog(ctx).configure(ctx.tenant, _who(ctx), installation_id, body.settings)
    return await _out(ctx, inst)


@api.route(
    "POST",
    "/apps/installations/{installation_id}/upgrade",
    name="apps.upgrade",
    permission=P.APP_MANAGE,
    scope="tenant",
)
async def upgrade(installation_id: _Id, body: UpgradeIn, ctx: Ctx) -> InstallationOut:
    """Move the instance to another published version, its permissions accepted again."""
    inst = await _catalog(ctx).upgrade(
        ctx.tenant,
        _who(ctx),
        installation_id,
        version=body.version,
        accepted_permissions=body.accepted_permissions,
        settings=body.settings,
    )
    return await _out(ctx, inst)


@api.route(
    "POST",
    "/apps/installations/{installation_id}/rollback",
    name="apps.rollback",
    permission=P.APP_MANAGE,
    scope="tenant",
)
async def rollback(installation_id: _Id, ctx: Ctx) -> InstallationOut:
    """Back to the version, settings and permissions before the last upgrade or change."""
    return await _out(ctx, await _catalog(ctx).rollback(ctx.tenant, _who(ctx), installation_id))


@api.route(
    "DELETE",
    "/apps/installations/{installation_id}",
    name="apps.uninstall",
    permission=P.APP_MANAGE,
    scope="tenant",
    status_code=204,
)
async def uninstall(installation_id: _Id, ctx: Ctx) -> Response:
    """End the instance's access now and stop it; its findings and the verdicts on them
    stay, its key/value state is deleted (decision 0902)."""
    await _catalog(ctx).uninstall(ctx.tenant, _who(ctx), installation_id)
    return Response(status_code=204)


@api.route(
    "GET",
    "/apps/installations/{installation_id}/logs",
    name="apps.logs",
    permission=P.APP_MANAGE,
    scope="tenant",
)
async def logs(
    installation_id: _Id, ctx: Ctx, limit: Annotated[int, Query(ge=1, le=2000)] = 200
) -> list[InstanceLogOut]:
    """The instance's newest log lines (its output, its SDK ``log`` calls, the supervisor's
    notes); empty when no supervisor runs it."""
    inst = await _catalog(ctx).installation(ctx.tenant, installation_id)
    runner = ctx.services.app_runner
    if runner is None or runner.status(inst["id"]) is None:
        return []
    return [InstanceLogOut(**x) for x in runner.logs(inst["id"], limit)]


# ---- the findings inbox -------------------------------------------------------------------------


@api.route(
    "GET", "/sites/{site_id}/findings", name="findings.list", permission=P.STATE_READ, scope="site"
)
async def list_findings(
    site_id: str,
    ctx: Ctx,
    machine: Annotated[str | None, Query(max_length=500)] = None,
    type: Annotated[str | None, Query(max_length=100)] = None,
    app_id: Annotated[str | None, Query(max_length=64)] = None,
    verdict: Literal["open", "confirmed", "rejected"] | None = None,
    start: Annotated[
        int | None, Query(ge=0, lt=2**62, description="window ends at or after, µs")
    ] = None,
    end: Annotated[
        int | None, Query(ge=0, lt=2**62, description="window starts before, µs")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> FindingsOut:
    """The site's findings from every app, newest first; ``verdict=open``: not answered."""
    rows = await _repo(ctx).findings(
        ctx.tenant,
        ctx.site_id,
        machine=machine,
        type_=type,
        app_id=app_id,
        verdict=verdict,
        start=start,
        end=end,
        limit=limit + 1,
    )
    return FindingsOut(
        findings=[FindingOut(**r) for r in rows[:limit]], truncated=len(rows) > limit
    )


@api.route(
    "GET",
    "/sites/{site_id}/findings/{finding_id}",
    name="findings.get",
    permission=P.STATE_READ,
    scope="site",
)
async def get_finding(site_id: str, finding_id: _Id, ctx: Ctx) -> FindingOut:
    """One finding with every verdict on it."""
    return FindingOut(**await _repo(ctx).finding(ctx.tenant, ctx.site_id, finding_id))


@api.route(
    "GET",
    "/sites/{site_id}/findings/{finding_id}/evidence",
    name="findings.evidence",
    permission=P.TELEMETRY_READ,
    scope="site",
)
async def evidence(site_id: str, finding_id: _Id, ctx: Ctx) -> EvidenceOut:
    """The finding's signals over its window and a quarter of it either side, in at most
    600 buckets (min, max, mean, last, count per bucket), read from the store."""
    f = await _repo(ctx).finding(ctx.tenant, ctx.site_id, finding_id)
    model = await _model(ctx)
    signals = [s for s in f["signals"] if s in model.signal_set]
    unknown = [s for s in f["signals"] if s not in model.signal_set]
    span = max(f["end_us"] - f["start_us"], 60_000_000)
    lo = max(0, f["start_us"] - int(span * MARGIN))
    hi = f["end_us"] + int(span * MARGIN)
    bucket = max(1_000_000, -(-(hi - lo) // MAX_BUCKETS))
    if signals:
        a = await ctx.services.store.aggregate(ctx.tenant, signals, lo, hi, bucket)
        series = AggregatesOut(
            signals=list(a.names),
            index=a.index.tolist(),
            bucket=a.bucket.tolist(),
            min=_floats(a.min),
            max=_floats(a.max),
            mean=_floats(a.mean),
            last=_floats(a.last),
            count=a.count.tolist(),
        )
    else:
        series = AggregatesOut(
            signals=[], index=[], bucket=[], min=[], max=[], mean=[], last=[], count=[]
        )
    return EvidenceOut(
        finding_id=finding_id,
        start_us=f["start_us"],
        end_us=f["end_us"],
        from_us=lo,
        to_us=hi,
        bucket_us=bucket,
        series=series,
        unknown=unknown,
    )


@api.route(
    "POST",
    "/sites/{site_id}/findings/{finding_id}/feedback",
    name="findings.feedback",
    permission=P.FINDING_REVIEW,
    scope="site",
)
async def feedback(site_id: str, finding_id: _Id, body: FeedbackIn, ctx: Ctx) -> FindingOut:
    """Confirm or reject a finding with a comment; the app reads it back through the SDK
    (``feedback.list``). A later verdict replaces the earlier one; all are kept."""
    f = await _repo(ctx).add_feedback(
        ctx.tenant, ctx.site_id, finding_id, body.verdict, body.comment, ctx.principal.actor
    )
    await ctx.audit(
        "findings.feedback",
        f"finding:{finding_id}",
        detail={
            "verdict": body.verdict,
            "comment": body.comment[:200],
            "app": f["app_id"],
            "type": f["type"],
        },
    )
    return FindingOut(**f)


@api.route(
    "GET",
    "/sites/{site_id}/workorders",
    name="workorders.list",
    permission=P.STATE_READ,
    scope="site",
)
async def list_work_orders(site_id: str, ctx: Ctx) -> list[WorkOrderOut]:
    """The work orders apps proposed for the site, newest first (at most 1000)."""
    rows = await _repo(ctx).work_orders(ctx.tenant, ctx.site_id)
    return [WorkOrderOut(**{k: r[k] for k in WorkOrderOut.model_fields}) for r in rows]
