"""The ``/api/v1`` routes. Thin: parse, call the platform service or the telemetry store,
audit, answer. Each route's permission and scope are in its ``api.route(...)`` line."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse

from andon.api.deps import Access, Ctx, SiteModel, Svc, client_address
from andon.api.feeds import event_stream, sse
from andon.api.live import FloorFeed, SiteFeed
from andon.api.params import (
    _LABELS,
    _MAX_ROWS,
    End,
    P,
    Start,
    _f,
    _floats,
    _model,
    _range,
    api,
)
from andon.api.schemas import (
    AggregatesOut,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    AuditOut,
    GrantCreate,
    GrantOut,
    KpiOut,
    LastValueOut,
    LastValuesOut,
    LoginIn,
    MeOut,
    RangeOut,
    RangesOut,
    RefreshIn,
    SeriesOut,
    SiteModelIn,
    SiteOut,
    StatesOut,
    TenantCreate,
    TenantCreated,
    TenantOut,
    TokenOut,
    UserCreate,
    UserOut,
)
from andon.kpi.ranges import NamedRange, named_range, this_shift, today
from andon.kpi.summary import plant_summary
from andon.platform.permissions import KeyKind, Role
from andon.platform.service import Invalid, LoginFailed, TokenPair

__all__: list[str] = []  # registers its routes on ``andon.api.params.api``


def _tokens(pair: TokenPair) -> TokenOut:
    return TokenOut(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_at=pair.expires_at
    )


# ---- health and auth ---------------------------------------------------------------------


@api.route("GET", "/health", name="health", permission=None, scope="public")
async def health() -> dict[str, str]:
    """Liveness: answers without touching the databases."""
    return {"status": "ok"}


@api.route("POST", "/auth/login", name="auth.login", permission=None, scope="public")
async def login(body: LoginIn, request: Request, svc: Svc) -> TokenOut:
    """Email and password for an access token (short-lived) and a refresh token."""
    source = client_address(request, svc.settings.trust_proxy_headers)
    audit = svc.platform.audit
    try:
        tenant, uid, pair = await svc.platform.login(body.email, body.password, source, body.tenant)
    except LoginFailed as exc:
        if exc.tenant_id is None or exc.reason == "throttled":
            # unknown emails and throttled repeats: one row per source per window
            await svc.anonymous.record(
                audit,
                source=source,
                action="auth.login",
                obj="session",
                detail={"why": exc.reason, "email": body.email[:100]},
                result="failed",
            )
            raise HTTPException(
                401, "login failed", headers={"WWW-Authenticate": "Bearer"}
            ) from None
        await audit.record(
            tenant_id=exc.tenant_id,
            actor=f"user:{exc.user_id}" if exc.user_id else f"email:{body.email[:100]}",
            source=source,
            action="auth.login",
            obj="session",
            result="failed",
            detail={"why": exc.reason},
        )
        raise HTTPException(401, "login failed", headers={"WWW-Authenticate": "Bearer"}) from None
    await audit.record(
        tenant_id=tenant,
        actor=f"user:{uid}",
        source=source,
        action="auth.login",
        obj="session",
        result="ok",
    )
    return _tokens(pair)


@api.route("POST", "/auth/refresh", name="auth.refresh", permission=None, scope="public")
async def refresh(body: RefreshIn, request: Request, svc: Svc) -> TokenOut:
    """A refresh token for a new pair; the old refresh token is spent."""
    try:
        _tenant, _uid, pair = await svc.platform.refresh(body.refresh_token)
    except LoginFailed as exc:  # under the account's tenant whenever the token names one
        await svc.platform.audit.record(
            tenant_id=exc.tenant_id,
            actor=f"user:{exc.user_id}" if exc.user_id else "anonymous",
            source=client_address(request, svc.settings.trust_proxy_headers),
            action="auth.refresh",
            obj="session",
            result="failed",
            detail={"why": exc.reason},
        )
        raise HTTPException(401, "invalid refresh token") from None
    return _tokens(pair)


@api.route(
    "POST", "/auth/logout", name="auth.logout", permission=None, scope="public", status_code=204
)
async def logout(body: RefreshIn, request: Request, svc: Svc) -> Response:
    """End the refresh token's session: its access tokens stop working at once."""
    got = await svc.platform.logout(body.refresh_token)
    if got is not None:
        await svc.platform.audit.record(
            tenant_id=got[0],
            actor=f"user:{got[1]}",
            source=client_address(request, svc.settings.trust_proxy_headers),
            action="auth.logout",
            obj="session",
            result="ok",
        )
    return Response(status_code=204)


@api.route("GET", "/auth/me", name="auth.me", permission=None, scope="authenticated")
async def me(ctx: Ctx) -> MeOut:
    """Who the credentials belong to and what they may do."""
    p = ctx.principal
    return MeOut(
        kind=p.kind,
        id=p.id,
        tenant_id=p.tenant_id,
        tenant_wide=sorted(x.value for x in p.tenant_wide),
        per_site={s: sorted(x.value for x in v) for s, v in p.per_site.items()},
    )


# ---- tenants -------------------------------------------------------------------------------


@api.route(
    "POST",
    "/tenants",
    name="tenants.create",
    permission=P.PLATFORM_ADMIN,
    scope="platform",
    status_code=201,
)
async def create_tenant(body: TenantCreate, ctx: Ctx) -> TenantCreated:
    """A new tenant and its first tenant administrator."""
    pf = ctx.services.platform
    tenant = await pf.create_tenant(body.id, body.name)
    admin = await pf.create_user(
        body.id, body.admin_email, body.admin_password, [(Role.TENANT_ADMIN, None)]
    )
    await ctx.audit("tenants.create", f"tenant:{body.id}", detail={"admin": admin["id"]})
    return TenantCreated(tenant=TenantOut(**tenant), admin=UserOut(**admin))


@api.route("GET", "/tenants", name="tenants.list", permission=P.PLATFORM_ADMIN, scope="platform")
async def list_tenants(ctx: Ctx) -> list[TenantOut]:
    """Every tenant (platform administrators only)."""
    return [TenantOut(**t) for t in await ctx.services.platform.list_tenants()]


@api.route(
    "GET",
    "/tenants/{tenant_id}",
    name="tenants.get",
    permission=P.PLATFORM_ADMIN,
    scope="platform",
)
async def get_tenant(tenant_id: str, ctx: Ctx) -> TenantOut:
    """One tenant (platform administrators only)."""
    return TenantOut(**await ctx.services.platform.get_tenant(tenant_id))


@api.route("GET", "/tenant", name="tenant.get", permission=P.TENANT_READ, scope="sites")
async def own_tenant(ctx: Ctx) -> TenantOut:
    """The caller's own tenant."""
    return TenantOut(**await ctx.services.platform.get_tenant(ctx.tenant))


# ---- users and role grants -----------------------------------------------------------------


@api.route("GET", "/users", name="users.list", permission=P.USER_READ, scope="tenant")
async def list_users(ctx: Ctx) -> list[UserOut]:
    """The tenant's users with their role grants."""
    return [UserOut(**u) for u in await ctx.services.platform.list_users(ctx.tenant)]


@api.route(
    "POST",
    "/users",
    name="users.create",
    permission=P.USER_WRITE,
    scope="tenant",
    status_code=201,
)
async def create_user(body: UserCreate, ctx: Ctx) -> UserOut:
    """A user, with the roles in ``grants`` (more with ``POST /users/{id}/grants``). Every
    grant is checked before the user is created, so a bad one creates nothing."""
    pf = ctx.services.platform
    for g in body.grants:
        if g.role is Role.PLATFORM_ADMIN:
            raise Invalid("platform-admin is granted by the platform operator, not through the API")
        if g.site_id is not None:
            await pf.get_site(ctx.tenant, g.site_id)  # another tenant's site: 404, audited
    roles = [(g.role, g.site_id) for g in body.grants]
    u = await pf.create_user(ctx.tenant, body.email, body.password, roles)
    await ctx.audit("users.create", f"user:{u['id']}", detail={"grants": [list(r) for r in roles]})
    return UserOut(**u)


@api.route("GET", "/users/{user_id}", name="users.get", permission=P.USER_READ, scope="tenant")
async def get_user(user_id: str, ctx: Ctx) -> UserOut:
    return UserOut(**await ctx.services.platform.get_user(ctx.tenant, user_id))


@api.route(
    "DELETE",
    "/users/{user_id}",
    name="users.delete",
    permission=P.USER_WRITE,
    scope="tenant",
    status_code=204,
)
async def delete_user(user_id: str, ctx: Ctx) -> Response:
    if user_id == ctx.principal.id:
        raise Invalid("you cannot delete yourself")
    await ctx.services.platform.delete_user(ctx.tenant, user_id)
    await ctx.audit("users.delete", f"user:{user_id}")
    return Response(status_code=204)


@api.route(
    "POST",
    "/users/{user_id}/grants",
    name="grants.create",
    permission=P.USER_WRITE,
    scope="tenant",
    status_code=201,
)
async def create_grant(user_id: str, body: GrantCreate, ctx: Ctx) -> GrantOut:
    """Grant a role at one site of the tenant, or (``site_id`` null) at all of them."""
    if body.role is Role.PLATFORM_ADMIN:
        raise Invalid("platform-admin is granted by the platform operator, not through the API")
    g = await ctx.services.platform.grant_role(ctx.tenant, user_id, body.role, body.site_id)
    await ctx.audit("grants.create", f"user:{user_id}", detail=g)
    return GrantOut(**g)


@api.route(
    "DELETE",
    "/users/{user_id}/grants/{grant_id}",
    name="grants.delete",
    permission=P.USER_WRITE,
    scope="tenant",
    status_code=204,
)
async def delete_grant(user_id: str, grant_id: str, ctx: Ctx) -> Response:
    await ctx.services.platform.revoke_grant(ctx.tenant, user_id, grant_id)
    await ctx.audit("grants.delete", f"user:{user_id}", detail={"grant": grant_id})
    return Response(status_code=204)


# ---- API keys --------------------------------------------------------------------------------


@api.route("GET", "/api-keys", name="keys.list", permission=P.APIKEY_READ, scope="tenant")
async def list_keys(ctx: Ctx, kind: KeyKind | None = None) -> list[ApiKeyOut]:
    """The tenant's keys (never their secrets)."""
    return [ApiKeyOut(**k) for k in await ctx.services.platform.list_api_keys(ctx.tenant, kind)]


@api.route(
    "POST",
    "/api-keys",
    name="keys.create",
    permission=P.APIKEY_WRITE,
    scope="tenant",
    status_code=201,
)
async def create_key(body: ApiKeyCreate, ctx: Ctx) -> ApiKeyCreated:
    """A key for an edge agent (``ingest:write``) or an app (read permissions), limited to
    ``site_ids`` (empty: all sites), expiring after ``ttl_days``. The secret is in this answer
    only."""
    key, secret = await ctx.services.platform.create_api_key(
        ctx.tenant,
        ctx.principal,
        name=body.name,
        kind=body.kind,
        permissions=body.permissions,
        site_ids=body.site_ids,
        ttl_s=body.ttl_days * 86_400,
    )
    await ctx.audit(
        "keys.create",
        f"key:{key['id']}",
        detail={"kind": key["kind"], "permissions": key["permissions"], "sites": key["site_ids"]},
    )
    return ApiKeyCreated(key=ApiKeyOut(**key), secret=secret)


@api.route("GET", "/api-keys/{key_id}", name="keys.get", permission=P.APIKEY_READ, scope="tenant")
async def get_key(key_id: str, ctx: Ctx) -> ApiKeyOut:
    return ApiKeyOut(**await ctx.services.platform.get_api_key(ctx.tenant, key_id))


@api.route(
    "DELETE",
    "/api-keys/{key_id}",
    name="keys.revoke",
    permission=P.APIKEY_WRITE,
    scope="tenant",
)
async def revoke_key(key_id: str, ctx: Ctx) -> ApiKeyOut:
    """Revoke a key at once; it stays listed, with ``revoked_at``."""
    key = await ctx.services.platform.revoke_api_key(ctx.tenant, key_id)
    await ctx.audit("keys.revoke", f"key:{key_id}")
    return ApiKeyOut(**key)


# ---- audit -----------------------------------------------------------------------------------


@api.route("GET", "/audit", name="audit.list", permission=P.AUDIT_READ, scope="tenant")
async def list_audit(
    ctx: Ctx,
    action: Annotated[str | None, Query(max_length=100)] = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    result: Annotated[str | None, Query(max_length=32)] = None,
    since: Annotated[int | None, Query(ge=0, lt=2**62)] = None,
    until: Annotated[int | None, Query(ge=0, lt=2**62)] = None,
    after_seq: Annotated[int, Query(ge=0, lt=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditOut]:
    """The tenant's audit entries, oldest first; page with ``after_seq``."""
    rows = await ctx.services.platform.audit.query(
        ctx.tenant,
        since=since,
        until=until,
        action=action,
        actor=actor,
        result=result,
        after_seq=after_seq,
        limit=limit,
    )
    return [
        AuditOut(
            seq=r.seq,
            ts=r.ts,
            actor=r.actor,
            source=r.source,
            action=r.action,
            object=r.object,
            result=r.result,
            detail=r.detail,
            hash=r.hash,
        )
        for r in rows
    ]


# ---- sites and the asset model -----------------------------------------------------------------


async def _site_out(ctx: Access, site: dict[str, Any]) -> SiteOut:
    """A site row with its time zone, from the parsed model (cached per model version)."""
    model = await ctx.services.model(ctx.tenant, site)
    fields = {k: site[k] for k in ("id", "key", "name", "created_at", "updated_at")}
    return SiteOut(**fields, timezone=model.plant.site.timezone)


@api.route("GET", "/sites", name="sites.list", permission=P.SITE_READ, scope="sites")
async def list_sites(
    ctx: Ctx, key: Annotated[str | None, Query(max_length=64)] = None
) -> list[SiteOut]:
    """The sites the caller may read, optionally filtered by site key."""
    only = ctx.principal.sites_with(P.SITE_READ)
    rows = await ctx.services.platform.list_sites(ctx.tenant, only, key)
    return [await _site_out(ctx, s) for s in rows]


@api.route(
    "POST",
    "/sites",
    name="sites.create",
    permission=P.SITE_WRITE,
    scope="tenant",
    status_code=201,
)
async def create_site(body: SiteModelIn, ctx: Ctx) -> SiteOut:
    """Import a plant model (the YAML of ``andon model check``) as a new site. The tenant is
    the caller's, whatever the file's ``tenant:`` says."""
    s = await ctx.services.platform.create_site(ctx.tenant, body.model_yaml)
    await ctx.audit("sites.create", f"site:{s['id']}", detail={"key": s["key"]})
    return await _site_out(ctx, s)


@api.route("GET", "/sites/{site_id}", name="sites.get", permission=P.SITE_READ, scope="site")
async def get_site(site_id: str, ctx: Ctx) -> SiteOut:
    return await _site_out(ctx, ctx.site or {})


@api.route(
    "GET",
    "/sites/{site_id}/model",
    name="sites.model.export",
    permission=P.SITE_READ,
    scope="site",
    response_class=Response,
    responses={200: {"content": {"application/yaml": {"schema": {"type": "string"}}}}},
)
async def export_model(site_id: str, ctx: Ctx) -> Response:
    """The site's plant model as YAML."""
    text, _ = await ctx.services.platform.site_model(ctx.tenant, ctx.site_id)
    return Response(text, media_type="application/yaml")


@api.route(
    "PUT",
    "/sites/{site_id}/model",
    name="sites.model.import",
    permission=P.SITE_WRITE,
    scope="site",
)
async def import_model(site_id: str, body: SiteModelIn, ctx: Ctx) -> SiteOut:
    """Replace the site's plant model (same site key)."""
    s = await ctx.services.platform.update_site_model(ctx.tenant, ctx.site_id, body.model_yaml)
    await ctx.audit("sites.model.import", f"site:{site_id}")
    return await _site_out(ctx, s)


@api.route(
    "DELETE",
    "/sites/{site_id}",
    name="sites.delete",
    permission=P.SITE_WRITE,
    scope="tenant",
    status_code=204,
)
async def delete_site(site_id: str, ctx: Ctx) -> Response:
    """Remove the site's metadata and grants (telemetry stays until retention removes it).
    Needs ``site:write`` tenant-wide: a grant at the site does not reach the other users'
    grants there (a site of another tenant is not found, as for every site path)."""
    await ctx.services.platform.delete_site(ctx.tenant, site_id)
    await ctx.audit("sites.delete", f"site:{site_id}")
    return Response(status_code=204)


# ---- telemetry, states, KPIs ---------------------------------------------------------------------


def _own_signals(model: SiteModel, signals: list[str]) -> list[str]:
    bad = [s for s in signals if s not in model.signal_set]
    if bad:
        raise Invalid(f"not signals of this site: {', '.join(bad[:3])}")
    return signals


@api.route(
    "GET",
    "/sites/{site_id}/telemetry/last",
    name="telemetry.last",
    permission=P.TELEMETRY_READ,
    scope="site",
)
async def last_values(
    site_id: str,
    ctx: Ctx,
    prefix: Annotated[str | None, Query(max_length=200, description="area or area/line")] = None,
) -> LastValuesOut:
    """The newest value of every signal of the site, or of those under ``prefix``."""
    model = await _model(ctx)
    base = model.plant.site.id + "/"
    want = base + prefix.strip("/") + "/" if prefix else base
    signals = [s for s in model.signals if s.startswith(want)]
    got = await ctx.services.store.last_values(ctx.tenant, signals) if signals else {}
    return LastValuesOut(
        values=[
            LastValueOut(signal=s, ts=v.ts, value=_f(v.value), quality=v.quality)
            for s, v in sorted(got.items())
        ]
    )


@api.route(
    "GET",
    "/sites/{site_id}/telemetry/range",
    name="telemetry.range",
    permission=P.TELEMETRY_READ,
    scope="site",
)
async def read_range(
    site_id: str,
    ctx: Ctx,
    signal: Annotated[list[str], Query(min_length=1, max_length=100)],
    start: Start,
    end: End,
) -> SeriesOut:
    """Raw samples ``[start, end)``, at most 100 000 rows (``truncated`` says when cut)."""
    _range(start, end)
    signals = _own_signals(await _model(ctx), signal)
    b = await ctx.services.store.read(ctx.tenant, signals, start, end)
    n = min(len(b), _MAX_ROWS)
    return SeriesOut(
        signals=list(b.names),
        index=b.index[:n].tolist(),
        ts=b.ts[:n].tolist(),
        value=_floats(b.value[:n]),
        quality=b.quality[:n].tolist(),
        truncated=len(b) > n,
    )


@api.route(
    "GET",
    "/sites/{site_id}/telemetry/aggregate",
    name="telemetry.aggregate",
    permission=P.TELEMETRY_READ,
    scope="site",
)
async def aggregate(
    site_id: str,
    ctx: Ctx,
    signal: Annotated[list[str], Query(min_length=1, max_length=100)],
    start: Start,
    end: End,
    bucket_s: Annotated[int, Query(ge=1, le=366 * 86_400)],
) -> AggregatesOut:
    """Per-bucket min, max, mean, last and count (bad-quality samples excluded)."""
    _range(start, end)
    if (end - start) // (bucket_s * 1_000_000) > _MAX_ROWS:
        raise Invalid("too many buckets; use a wider bucket or a shorter range")
    signals = _own_signals(await _model(ctx), signal)
    a = await ctx.services.store.aggregate(ctx.tenant, signals, start, end, bucket_s * 1_000_000)
    return AggregatesOut(
        signals=list(a.names),
        index=a.index.tolist(),
        bucket=a.bucket.tolist(),
        min=_floats(a.min),
        max=_floats(a.max),
        mean=_floats(a.mean),
        last=_floats(a.last),
        count=a.count.tolist(),
    )


@api.route(
    "GET", "/sites/{site_id}/states", name="states.list", permission=P.STATE_READ, scope="site"
)
async def states(
    site_id: str,
    ctx: Ctx,
    start: Start,
    end: End,
    machine: Annotated[list[str] | None, Query(max_length=100)] = None,
) -> StatesOut:
    """Machine-state intervals overlapping ``[start, end)``, clipped to it."""
    _range(start, end)
    known = list((await _model(ctx)).machines)
    if machine:
        bad = [m for m in machine if m not in set(known)]
        if bad:
            raise Invalid(f"not machines of this site: {', '.join(bad[:3])}")
    b = await ctx.services.store.read_states(ctx.tenant, machine or known, start, end)
    n = min(len(b), _MAX_ROWS)
    return StatesOut(
        machines=list(b.names),
        index=b.index[:n].tolist(),
        start=b.start[:n].tolist(),
        end=b.end[:n].tolist(),
        state=[_LABELS[int(s)] for s in b.state[:n]],
        reason=list(b.reason[:n]),
    )


@api.route(
    "GET",
    "/sites/{site_id}/live",
    name="live.values",
    permission=P.TELEMETRY_READ,
    scope="site",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
)
async def live(
    site_id: str,
    ctx: Ctx,
    request: Request,
    prefix: Annotated[str | None, Query(max_length=200, description="area or area/line")] = None,
    interval_s: Annotated[float, Query(ge=0.2, le=60)] = 1.0,
    max_ticks: Annotated[int, Query(ge=1, le=86_400)] = 3600,
) -> StreamingResponse:
    """Server-sent events: the signals (under ``prefix``) whose newest value changed, as
    ``event: values`` (all on the first tick, then from the live bus as they are stored,
    coalesced over 0.1 s, never read from the store again); the newest text values (decision
    0202) stored since the feed opened, as ``event: text``, from the live bus likewise; the
    machines whose current state
    changed, as ``event: states`` (all on the first tick, then from the live bus as they
    arrive, and every ``interval_s`` the floor's own view: not scheduled, offline when
    silent); the alerts opened, acknowledged or closed, as ``event: alerts`` (all open ones
    on the first tick, then every ``interval_s``). The credentials are re-checked every
    tick and every tenth of a second between ticks, so a revocation ends the stream within a
    second; the stream ends with ``event: end`` when they lapse or after ``max_ticks``
    (clients reconnect); one user or key holds at most ``max_feeds_per_principal`` feeds.
    The loop: ``andon.api.feeds.event_stream``."""
    model = await _model(ctx)
    base = model.plant.site.id + "/"
    want = base + prefix.strip("/") + "/" if prefix else base
    signals = [s for s in model.signals if s.startswith(want)]
    svc, tenant = ctx.services, ctx.tenant
    floor = FloorFeed(ctx, model, want)
    feed = SiteFeed(
        svc.bus,
        tenant,
        model.plant.site.id,
        signals,
        floor,
        max_queue=svc.settings.bus.max_queue,
    )

    async def tick(n: int) -> list[str]:
        if n > 0:  # values come from the bus (``feed``), subscribed before this snapshot
            return await feed.tick()
        got = await svc.store.last_values(tenant, signals) if signals else {}
        feed.sent_ts.update((s, v.ts) for s, v in got.items())
        snapshot = [
            {"signal": s, "ts": v.ts, "value": _f(v.value), "quality": v.quality}
            for s, v in sorted(got.items())
        ]
        return [sse("values", snapshot), *await feed.tick()]

    return event_stream(
        ctx,
        request,
        tick,
        interval_s=interval_s,
        max_ticks=max_ticks,
        recheck_every=30,
        live=feed,
    )


@api.route(
    "GET", "/sites/{site_id}/kpi/ranges", name="kpi.ranges", permission=P.KPI_READ, scope="site"
)
async def kpi_ranges(
    site_id: str,
    ctx: Ctx,
    at: Annotated[int | None, Query(ge=0, lt=2**62, description="default: now")] = None,
) -> RangesOut:
    """Today's production day and this shift at ``at``, per the site's shift calendar: the
    ranges the board and ``/kpi/summary`` use, for pages that ask for "today" or "this
    shift" of another endpoint."""
    plant = (await _model(ctx)).plant
    at_ = ctx.services.clock() if at is None else at
    try:
        d, s = today(plant, at_), this_shift(plant, at_)
    except ValueError as exc:
        raise Invalid(f"at: {exc}") from None
    return RangesOut(
        at=at_,
        today=RangeOut(start=d.start, end=d.end, label=d.label),
        shift=RangeOut(start=s.start, end=s.end, label=s.label),
    )


MAX_KPI_RANGE_S = 93 * 86_400
"""Longest range ``/kpi/summary`` covers (a quarter, as the analytics endpoints): the shift
calendar is laid out day by day over it."""

RangeQ = Annotated[
    NamedRange,
    Query(
        description="default range when `start` is not given: the production day (from the "
        "first shift start, site time) or the shift that contains `end`"
    ),
]


@api.route(
    "GET", "/sites/{site_id}/kpi/summary", name="kpi.summary", permission=P.KPI_READ, scope="site"
)
async def kpi_summary(
    site_id: str,
    ctx: Ctx,
    start: Annotated[int | None, Query(ge=0, lt=2**62)] = None,
    end: Annotated[int | None, Query(ge=0, lt=2**62)] = None,
    range: RangeQ = "today",
) -> KpiOut:
    """OEE, parts, energy per machine and each line's output and rate per planned production
    hour. Default range: ``range`` (today's production day, or this shift, per the site's
    shift calendar) until now, rounded down to ``kpi_cache_s`` seconds and computed once per
    such step for all callers (dashboards poll this); an explicit range is always computed
    afresh."""
    svc = ctx.services
    plant = (await _model(ctx)).plant
    now = svc.clock()
    step = svc.settings.kpi_cache_s * 1_000_000
    cached = start is None and end is None and step > 0
    end_ = (now - now % step if cached else now) if end is None else end
    if start is None:
        try:
            r = named_range(plant, range, end_)
        except ValueError as exc:
            raise Invalid(f"end: {exc}") from None
        start_, end_ = r.start, r.end
    else:
        start_ = start
    _range(start_, end_)
    if end_ - start_ > MAX_KPI_RANGE_S * 1_000_000:
        raise Invalid(f"the range is longer than {MAX_KPI_RANGE_S // 86_400} days")

    async def compute() -> dict[str, Any]:
        summary = await plant_summary(svc.store, plant, start_, end_, now=svc.clock())
        return {**summary.as_dict(), "start": start_, "end": end_}

    if cached:
        site = ctx.site or {}
        key = (ctx.tenant, f"{ctx.site_id}|{range}", int(site.get("updated_at", 0)))
        s = await svc.kpi_cache.get(key, end_, compute)
    else:
        s = await compute()
    return KpiOut(
        start=s["start"], end=s["end"], machines=s["machines"], lines=s["lines"], meters=s["meters"]
    )
