"""API routes of the alarm console (registered on the shared declared router of
``andon.api.routes``): alarms and alerts, active and past, filtered; shelving with a reason
and its end; and the signal alarm limits an engineer sets over the plant model's. Every
change is audited with what it was before. See ``docs/decisions/0611-alarm-console.md``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import ValidationError

from andon.api.deps import Ctx
from andon.api.params import _model, api
from andon.api.routes_ops import _alert, _alert_changed, _invalid, _records
from andon.api.schemas_alarms import AlarmLimitOut, AlarmLimitsIn, AlarmsOut, ShelveIn
from andon.api.schemas_ops import AlertOut
from andon.floor.alerts import alarm_limits, alarm_points
from andon.model.plant import SignalAlarms
from andon.platform.permissions import Permission

__all__ = ["api"]

P = Permission
_SHELF = ("shelved_by", "shelved_at", "shelved_until", "shelve_reason")


@api.route(
    "GET", "/sites/{site_id}/alarms", name="alarms.list", permission=P.STATE_READ, scope="site"
)
async def list_alarms(
    site_id: str,
    ctx: Ctx,
    state: Literal["active", "shelved", "cleared", "all"] = "active",
    machine: Annotated[str | None, Query(max_length=300)] = None,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    acked: bool | None = None,
    start: Annotated[
        int | None, Query(ge=0, lt=2**62, description="opened at or after, µs")
    ] = None,
    end: Annotated[int | None, Query(ge=0, lt=2**62, description="opened before, µs")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> AlarmsOut:
    """Alarms and alerts of the site, newest first: ``active`` (open and not shelved),
    ``shelved`` (open and shelved now), ``cleared`` or ``all``; by machine (its alerts and
    the alarms of its signals), kind, acknowledgement and when they were opened."""
    if start is not None and end is not None and end <= start:
        raise _invalid("end", "must be after start", "query")
    if machine is not None and machine not in (await _model(ctx)).machines:
        raise _invalid("machine", f"not a machine of this site: {machine[:300]!r}", "query")
    rec = _records(ctx)
    rows = await rec.alerts(
        ctx.tenant,
        ctx.site_id,
        open_only=state in ("active", "shelved"),
        shelved={"active": False, "shelved": True}.get(state),
        machine=machine,
        kind=kind,
        acked=acked,
        start=start,
        end=end,
        limit=limit + 1 if state != "cleared" else 1000,
    )
    if state == "cleared":
        rows = [r for r in rows if r["closed_at"] is not None]
    return AlarmsOut(
        alarms=[_alert(r) for r in rows[:limit]],
        shelved=await rec.count_shelved(ctx.tenant, ctx.site_id),
        truncated=len(rows) > limit,
    )


async def _shelve(
    ctx: Ctx, alert_id: str, until: int | None, reason: str | None, action: str
) -> AlertOut:
    got = await _records(ctx).shelve(
        ctx.tenant, ctx.site_id, alert_id, ctx.principal.actor, until, reason
    )
    return await _alert_changed(ctx, alert_id, got, action, _SHELF, ("kind", "machine", "signal"))


@api.route(
    "POST",
    "/sites/{site_id}/alerts/{alert_id}/shelve",
    name="alerts.shelve",
    permission=P.ALERT_ACK,
    scope="site",
)
async def shelve_alert(
    site_id: str, alert_id: Annotated[str, Path(max_length=64)], body: ShelveIn, ctx: Ctx
) -> AlertOut:
    """Shelve an alert or alarm for ``duration_s`` with a reason: hidden from the board
    (which counts it) until then; if it clears and comes back meanwhile, it stays shelved.
    Shelving again replaces the end and the reason."""
    until = ctx.services.clock() + int(body.duration_s * 1e6)
    return await _shelve(ctx, alert_id, until, body.reason, "alerts.shelve")


@api.route(
    "POST",
    "/sites/{site_id}/alerts/{alert_id}/unshelve",
    name="alerts.unshelve",
    permission=P.ALERT_ACK,
    scope="site",
)
async def unshelve_alert(
    site_id: str, alert_id: Annotated[str, Path(max_length=64)], ctx: Ctx
) -> AlertOut:
    """End an alert's shelving now."""
    return await _shelve(ctx, alert_id, None, None, "alerts.unshelve")


def _dump(a: SignalAlarms | None) -> dict[str, Any] | None:
    return None if a is None else a.model_dump(exclude_defaults=True)


@api.route(
    "GET",
    "/sites/{site_id}/alarms/limits",
    name="alarms.limits.list",
    permission=P.STATE_READ,
    scope="site",
)
async def list_limits(site_id: str, ctx: Ctx) -> list[AlarmLimitOut]:
    """Every signal with alarm limits, in model order: the limits in force, where they come
    from (the plant model or an engineer), and the model's own."""
    plant = (await _model(ctx)).plant
    over = await _records(ctx).alarm_overrides(ctx.tenant, ctx.site_id)
    points = alarm_points(plant)
    out = []
    for path, pt in alarm_limits(plant, {s: o["alarms"] for s, o in over.items()}).items():
        o = over.get(path, {})
        out.append(
            AlarmLimitOut(
                signal=path,
                unit=pt.unit,
                machine=pt.machine,
                source=pt.source,
                alarms=_dump(pt.alarms) or {},
                model=_dump(points[path][2]),
                updated_by=o.get("updated_by"),
                updated_at=o.get("updated_at"),
            )
        )
    return out


@api.route(
    "PUT",
    "/sites/{site_id}/alarms/limits",
    name="alarms.limits.put",
    permission=P.SITE_WRITE,
    scope="site",
)
async def put_limits(site_id: str, body: AlarmLimitsIn, ctx: Ctx) -> list[AlarmLimitOut]:
    """Set a signal's alarm limits over the plant model's (``alarms: null``: remove the
    override). The next evaluator pass applies them; alarms of kinds no longer defined
    clear. Audited with the limits before and after."""
    plant = (await _model(ctx)).plant
    points = alarm_points(plant)
    if body.signal not in points:
        raise _invalid("signal", f"not a signal of this site: {body.signal[:400]!r}")
    new: SignalAlarms | None = None
    if body.alarms is not None:
        try:
            new = SignalAlarms.model_validate(body.alarms)
        except ValidationError as exc:
            e = exc.errors(include_url=False)[0]
            where = ".".join(str(x) for x in e["loc"])
            field = f"alarms.{where}" if where else "alarms"
            raise _invalid(field, e["msg"].removeprefix("Value error, ")) from None
    rec = _records(ctx)
    before = (await rec.alarm_overrides(ctx.tenant, ctx.site_id)).get(body.signal)
    await rec.set_alarm_override(ctx.tenant, ctx.site_id, body.signal, new, ctx.principal.actor)
    await ctx.audit(
        "alarms.limits.put",
        f"signal:{body.signal}",
        detail={
            "before": None if before is None else _dump(before["alarms"]),
            "after": _dump(new),
            "model": _dump(points[body.signal][2]),
        },
    )
    return [x for x in await list_limits(site_id, ctx) if x.signal == body.signal] or [
        AlarmLimitOut(
            signal=body.signal,
            unit=points[body.signal][0],
            machine=points[body.signal][1],
            source="none",
            alarms={},
            model=None,
        )
    ]
