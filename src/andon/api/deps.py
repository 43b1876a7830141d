"""Authentication, authorization and per-request context, as FastAPI dependencies.

``guard(endpoint)`` is attached to every route by ``DeclaredRouter``: it authenticates the
caller (user access token or API key), applies the tenant's API rate limit, looks up the
``{site_id}`` of site-scoped paths *within the caller's tenant*, checks the declared
permission, and audits every refusal. Handlers receive the result as ``Ctx``.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import math
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from andon.api.anonymous import AnonymousAudit
from andon.api.endpoints import Endpoint
from andon.bus import InProcessBus, LiveBus
from andon.floor.alerts import AlertEvaluator, AlertEvents
from andon.ingest import Ingestor
from andon.model.clock import wall_clock
from andon.model.plant import Plant
from andon.model.types import Micros
from andon.platform.config import Settings
from andon.platform.oidc import OidcLogin
from andon.platform.permissions import Permission
from andon.platform.ratelimit import RateLimiter
from andon.platform.security import TokenError
from andon.platform.service import NotFound, Platform, Principal
from andon.store.base import TelemetryStore

_log = logging.getLogger("andon.api")

if TYPE_CHECKING:
    from andon.apps.catalog import InstanceRunner
    from andon.ingest.gateway import IngestGateway
    from andon.ingest.mqtt import MqttReceiver
    from andon.twin.jobs import TwinJobs

__all__ = [
    "Access",
    "Ctx",
    "Services",
    "SiteModel",
    "StepCache",
    "Svc",
    "client_address",
    "forwarded_client",
    "get_access",
    "get_services",
    "guard",
    "wall_clock",
]

_bearer = HTTPBearer(auto_error=False, description="An access token or an API key")


@dataclass(frozen=True, slots=True)
class SiteModel:
    """A site's plant model with its signal and machine paths, computed once per version."""

    plant: Plant
    signals: tuple[str, ...]
    signal_set: frozenset[str]
    machines: tuple[str, ...]


class _StepEntry:
    __slots__ = ("good", "good_step", "step", "task")

    def __init__(self) -> None:
        self.step = -1
        """The step of ``task``, the newest computation started."""
        self.task: asyncio.Task[dict[str, Any]] | None = None
        self.good: dict[str, Any] | None = None
        """The newest successful result of any step (``good_step``)."""
        self.good_step = -1


class StepCache:
    """The latest result per key, computed once per step (``end``) even when many requests
    ask at once (they await the same task). ``stale_ok`` callers get the newest finished
    result at once while a newer step is still being computed (a live board would rather
    show figures one step old than wait a second for them), and start no second
    computation while one is running: when a computation takes longer than a step (a
    60x plant clock steps every 83 ms), the result still lands and the next caller starts
    the step it asks for. The newest result is kept per key, not per step, so a figure
    can never freeze at an old step however slow the computation."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str, int], _StepEntry] = {}

    def _start(
        self,
        entry: _StepEntry,
        step: int,
        compute: Callable[[], Coroutine[Any, Any, dict[str, Any]]],
    ) -> asyncio.Task[dict[str, Any]]:
        task = asyncio.ensure_future(compute())

        def keep(t: asyncio.Task[dict[str, Any]]) -> None:
            if t.cancelled():
                return
            exc = t.exception()
            if exc is not None:
                # stale_ok callers keep the last good figures (which say their step): the
                # failure must still be seen by whoever runs the service
                _log.warning("computation for step %d failed: %r", step, exc, exc_info=exc)
            elif step >= entry.good_step:
                entry.good, entry.good_step = t.result(), step

        task.add_done_callback(keep)
        entry.step, entry.task = step, task
        return task

    async def get(
        self,
        key: tuple[str, str, int],
        step: int,
        compute: Callable[[], Coroutine[Any, Any, dict[str, Any]]],
        *,
        stale_ok: bool = False,
    ) -> dict[str, Any]:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _StepEntry()
        if entry.good is not None and entry.good_step == step:
            return entry.good
        # a stale answer is an earlier step's, never a later one's (a clock set back)
        earlier = entry.good is not None and entry.good_step < step
        task = entry.task
        running = task is not None and not task.done()
        failed = (
            task is not None and task.done() and (task.cancelled() or task.exception() is not None)
        )
        if stale_ok and earlier and running:
            assert entry.good is not None
            return entry.good
        if task is None or entry.step != step or failed:
            task = self._start(entry, step, compute)
        if stale_ok and earlier and not task.done():
            assert entry.good is not None
            return entry.good
        return await asyncio.shield(task)


@dataclass
class Services:
    """What the handlers work with; one per app, built in the lifespan."""

    settings: Settings
    platform: Platform
    store: TelemetryStore
    ingestor: Ingestor
    limiter: RateLimiter
    clock: Callable[[], Micros]
    sleep: Callable[[float], Awaitable[None]]
    kpi_cache: StepCache = field(default_factory=StepCache)
    clock_rate: float = 1.0
    """Seconds of ``clock`` per wall second (1 but for a demo's plant clock): clients tick
    displayed durations at this rate."""
    floor_cache: StepCache = field(default_factory=StepCache)
    """Each site's current machine states, read once per 0.2 s for every board and feed."""
    alerts: AlertEvaluator | None = None
    """The alert evaluator (``andon.floor.alerts``); set by the lifespan."""
    alert_events: AlertEvents | None = None
    """Publishes alert changes on ``bus`` (``AlertChanged``); set by the lifespan."""
    twin_jobs: TwinJobs | None = None
    """Twin scenario jobs (``andon.twin.jobs``); set by the lifespan."""
    gateway: IngestGateway | None = None
    """The ingest gateway every ingest goes through (``andon.api.gateway``); set by the
    lifespan."""
    receiver: MqttReceiver | None = None
    """The gateway's MQTT receiver when ``settings.broker`` is set; run by the lifespan."""
    bus: LiveBus = field(default_factory=InProcessBus)
    """The live bus the ingestor publishes on and live feeds subscribe to (``andon.bus``)."""
    anonymous: AnonymousAudit = field(default_factory=AnonymousAudit)
    """Refusals of callers without valid credentials: one audit row per source per window."""
    open_feeds: dict[str, int] = field(default_factory=dict)
    """Live feeds open per principal (``actor``); ``andon.api.feeds`` caps them."""
    oidc: OidcLogin | None = None
    """Single sign-on sign-ins in progress (``security.oidc``); made on first use."""
    app_runner: InstanceRunner | None = None
    """Runs installed app instances (``andon.apps``); None: installations are only rows and
    their status is ``not running``."""
    _models: dict[tuple[str, str, int], SiteModel] = field(default_factory=dict)

    async def model(self, tenant: str, site: dict[str, Any]) -> SiteModel:
        """The site's parsed model (cached per model version); its signals and machines are
        registered for ingest once per version."""
        key = (tenant, str(site["id"]), int(site["updated_at"]))
        model = self._models.get(key)
        if model is None:
            _, plant = await self.platform.site_model(tenant, key[1])
            signals = tuple(plant.signal_paths())
            machines = tuple(plant.machine_path(a, ln, m) for a, ln, m in plant.machines())
            model = SiteModel(plant, signals, frozenset(signals), machines)
            self._models = {k: v for k, v in self._models.items() if k[:2] != key[:2]}
            self._models[key] = model
            self.ingestor.register(tenant, signals, machines, texts=_text_signals(plant))
        return model


def _text_signals(plant: Plant) -> list[str]:
    """The plant's signals of kind text (decision 0202), as ``signal_paths`` names them."""
    site = plant.site
    out = [
        f"{plant.machine_path(a, ln, m)}/{s.id}"
        for a, ln, m in plant.machines()
        for s in m.signals
        if s.kind == "text"
    ]
    out += [f"{site.id}/{a.id}/{s.id}" for a in site.areas for s in a.sensors if s.kind == "text"]
    out += [
        f"{site.id}/{mt.id}/{s.id}" for mt in site.meters for s in mt.signals if s.kind == "text"
    ]
    return out


def get_services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


Svc = Annotated[Services, Depends(get_services)]


def client_address(request: Request, trust_proxy: bool) -> str:
    """The caller's address: the peer's, or with ``trust_proxy`` (``trust_proxy_headers``)
    the rightmost ``X-Forwarded-For`` entry not added by a trusted proxy (the settings'
    ``trusted_proxies``, else ``trusted_proxy_hops``). Never the leftmost entry, which the
    client writes itself."""
    peer = request.client.host if request.client else "unknown"
    if not trust_proxy:
        return peer
    entries = [e.strip() for v in request.headers.getlist("x-forwarded-for") for e in v.split(",")]
    entries = [e for e in entries if e]
    if not entries:
        return peer
    svc: Services | None = getattr(request.app.state, "services", None)
    trusted = tuple(svc.settings.trusted_proxies) if svc else ()
    hops = svc.settings.trusted_proxy_hops if svc else 1
    return forwarded_client([*entries, peer], trusted, hops)[:100]


def forwarded_client(chain: list[str], trusted: tuple[str, ...], hops: int) -> str:
    """The client in ``chain`` (``X-Forwarded-For`` entries, then the peer): the rightmost
    address not in ``trusted`` (networks), or with none given the one ``hops`` proxies in.

    >>> forwarded_client(["6.6.6.6", "203.0.113.9", "10.0.0.2"], (), 1)
    '203.0.113.9'
    >>> forwarded_client(["6.6.6.6", "203.0.113.9", "10.0.0.2"], ("10.0.0.0/8",), 1)
    '203.0.113.9'
    >>> forwarded_client(["203.0.113.9", "10.0.0.3", "10.0.0.2"], ("10.0.0.0/8",), 1)
    '203.0.113.9'
    """
    if trusted:
        nets = _networks(trusted)
        for addr in reversed(chain):
            try:
                ip = ipaddress.ip_address(addr)
            except ValueError:
                return addr  # not an address a trusted proxy writes: the client's doing
            if not any(ip in n for n in nets):
                return addr
        return chain[0]
    return chain[max(0, len(chain) - 1 - hops)]


@functools.lru_cache(maxsize=8)
def _networks(
    trusted: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(n, strict=False) for n in trusted)


@dataclass
class Access:
    """The authorized caller of one request."""

    services: Services
    endpoint: Endpoint
    principal: Principal
    source: str
    credentials: str = field(default="", repr=False)
    site: dict[str, Any] | None = None
    _seen: tuple[int, float, bool] | None = field(default=None, repr=False)
    """The last re-check: (revocation generation, monotonic time, answer)."""

    @property
    def tenant(self) -> str:
        return self.principal.tenant_id

    @property
    def site_id(self) -> str:
        if self.site is None:
            raise RuntimeError(f"{self.endpoint.name} is not site-scoped")
        return str(self.site["id"])

    async def still_allowed(self) -> bool:
        """Re-check the credentials and the permission (for long-lived streams). Cheap
        enough to run every fraction of a second: the answer is reused until this process
        revokes anything (``Sessions.generation``) or ``security.session_check_s`` passes
        (another worker's revocation), whichever comes first."""
        pf = self.services.platform
        gen, now = pf.sessions.generation, time.monotonic()
        seen = self._seen
        # half the session cache's age: both caches in a row stay within 2 x cache_s
        if seen is not None and seen[0] == gen and now - seen[1] < pf.sessions.cache_s / 2:
            return seen[2]
        ok = await self._recheck()
        self._seen = (gen, now, ok)
        return ok

    async def _recheck(self) -> bool:
        pf = self.services.platform
        try:
            if self.credentials.startswith("andon_"):
                p = await pf.authenticate_key(self.credentials)
            else:
                p = await pf.principal_for_token(self.credentials)
        except TokenError:
            return False
        perm = self.endpoint.permission
        site = None if self.site is None else str(self.site["id"])
        return p is not None and (perm is None or p.can(perm, site))

    async def audit(
        self, action: str, obj: str, result: str = "ok", detail: dict[str, Any] | None = None
    ) -> None:
        await self.services.platform.audit.record(
            tenant_id=self.tenant,
            actor=self.principal.actor,
            source=self.source,
            action=action,
            obj=obj,
            result=result,
            detail=detail,
        )


async def _deny(
    svc: Services,
    request: Request,
    ep: Endpoint,
    principal: Principal | None,
    status: int,
    why: str,
    source: str,
) -> HTTPException:
    detail = {"status": status, "why": why, "method": request.method}
    if principal is None:
        # rate-limited per source, and one audit row per source per window
        _limit(svc.limiter.take(f"address:{source}", "anonymous"))
        await svc.anonymous.record(
            svc.platform.audit, source=source, action=ep.name, obj=request.url.path, detail=detail
        )
    else:
        await svc.platform.audit.record(
            tenant_id=principal.tenant_id,
            actor=principal.actor,
            source=source,
            action=ep.name,
            obj=request.url.path,
            result="denied",
            detail=detail,
        )
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    text = {401: "not authenticated", 403: "not permitted", 404: "not found"}[status]
    return HTTPException(status, text, headers=headers)


async def _authenticate(
    svc: Services, token: str, request: Request, ep: Endpoint, source: str
) -> Principal:
    principal: Principal | None
    if token.startswith("andon_"):
        principal = await svc.platform.authenticate_key(token)
        why = "invalid, expired or revoked API key"
    else:
        try:
            principal = await svc.platform.principal_for_token(token)
        except TokenError as exc:
            principal = None
            why = str(exc)
        else:
            why = "session ended, or user disabled or deleted"
    if principal is None:
        raise await _deny(svc, request, ep, None, 401, why, source)
    return principal


def _limit(wait: float) -> None:
    if wait:
        retry = "3600" if math.isinf(wait) else str(max(1, math.ceil(wait)))
        raise HTTPException(429, "rate limit exceeded", headers={"Retry-After": retry})


def guard(ep: Endpoint) -> Any:
    """The dependency that enforces ``ep``'s declaration."""
    if ep.scope == "public":

        async def public(request: Request) -> None:
            """Public endpoints are limited per source address (credential stuffing)."""
            request.state.endpoint = ep
            if ep.name.startswith("auth."):
                svc = get_services(request)
                source = client_address(request, svc.settings.trust_proxy_headers)
                _limit(svc.limiter.take(f"address:{source}", "auth"))

        return Depends(public)

    async def check(
        request: Request,
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        svc = get_services(request)
        source = client_address(request, svc.settings.trust_proxy_headers)
        if creds is None or creds.scheme.lower() != "bearer":
            raise await _deny(svc, request, ep, None, 401, "no credentials", source)
        principal = await _authenticate(svc, creds.credentials, request, ep, source)
        # the caller's own budget first: one user or key cannot spend the tenant's
        _limit(svc.limiter.take(f"{principal.tenant_id}/{principal.actor}", "principal"))
        _limit(svc.limiter.take(principal.tenant_id, "api"))
        access = Access(svc, ep, principal, source, creds.credentials)
        perm = ep.permission
        if perm is not None:
            if ep.scope == "site":
                site_id = str(request.path_params.get("site_id", ""))
                try:
                    access.site = await svc.platform.get_site(principal.tenant_id, site_id)
                except NotFound:
                    raise await _deny(
                        svc, request, ep, principal, 404, "site not in tenant", source
                    ) from None
                ok = principal.can(perm, site_id)
            elif ep.scope == "sites":
                ok = principal.can_somewhere(perm)
            elif ep.scope == "platform":
                ok = principal.can(Permission.PLATFORM_ADMIN)
            else:
                ok = principal.can(perm)
            if not ok:
                raise await _deny(svc, request, ep, principal, 403, f"lacks {perm.value}", source)
        request.state.access = access

    return Depends(check)


def get_access(request: Request) -> Access:
    access: Access = request.state.access
    return access


Ctx = Annotated[Access, Depends(get_access)]
