"""``create_app``: the FastAPI application of ``andon serve``.

The app owns its services (platform metadata database, telemetry store, ingest gateway, rate
limiter); the lifespan migrates the database and opens the store, unless the caller hands
in a store it owns (tests, the demo), and receives the edges' MQTT uplink when the settings
name a broker. The OpenAPI document is at ``/api/v1/openapi.json``;
the interactive docs page is off, since its scripts would need a looser content policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from andon.api import (  # noqa: F401  (register routes)
    routes,
    routes_account,
    routes_alarms,
    routes_analytics,
    routes_apps,
    routes_edge,
    routes_kiosk,
    routes_ops,
    routes_values,
)
from andon.api.deps import Access, Services, client_address, wall_clock
from andon.api.endpoints import Endpoint
from andon.api.gateway import build_gateway, build_receiver
from andon.api.middleware import BodyLimit, SecurityHeaders
from andon.api.params import api
from andon.api.unavailable import UNAVAILABLE, Unavailable
from andon.apps.catalog import Catalog, InstanceRunner
from andon.apps.repository import SqlAppRepository
from andon.bus import LiveBus, open_bus
from andon.floor.alerts import AlertEvaluator, AlertEvents, FloorRecords
from andon.ingest import Ingestor
from andon.ingest.live import LivePublisher
from andon.model.plant import Plant
from andon.model.types import Micros
from andon.platform.config import Settings
from andon.platform.database import Database
from andon.platform.ratelimit import RateLimiter
from andon.platform.service import Conflict, Invalid, LoginFailed, NotFound, Platform
from andon.platform.twin_jobs import twin_jobs
from andon.store import open_store
from andon.store.base import TelemetryStore
from andon.twin.jobs import BadScenario, TwinJobs

__all__ = ["PREFIX", "create_app", "endpoints"]

PREFIX = "/api/v1"
log = logging.getLogger("andon.api")


def endpoints() -> tuple[Endpoint, ...]:
    """Every declared endpoint (paths relative to ``PREFIX``): the source of the role
    matrix."""
    return tuple(api.endpoints)


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    access: Access | None = getattr(request.state, "access", None)
    svc: Services = request.app.state.services
    ep: Endpoint | None = getattr(request.state, "endpoint", None)
    source = client_address(request, svc.settings.trust_proxy_headers)
    action = ep.name if ep else request.url.path
    detail = {"status": 404, "why": str(exc), "method": request.method}
    if access is None:
        await svc.anonymous.record(
            svc.platform.audit, source=source, action=action, obj=request.url.path, detail=detail
        )
        return JSONResponse({"detail": "not found"}, status_code=404)
    await svc.platform.audit.record(
        tenant_id=access.tenant,
        actor=access.principal.actor,
        source=source,
        action=action,
        obj=request.url.path,
        result="denied",
        detail=detail,
    )
    return JSONResponse({"detail": "not found"}, status_code=404)


def _printable(value: Any) -> Any:
    """``value`` as JSON can carry it: non-finite numbers as text, lone UTF-16 surrogates
    replaced (FastAPI's own handler fails on both while echoing the input: a 500)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {_printable(k): _printable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_printable(v) for v in value]
    return value


async def _unprocessable(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = jsonable_encoder(exc.errors()[:20])
    return JSONResponse({"detail": _printable(errors)}, status_code=422)


async def _conflict(_request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=409)


async def _invalid(_request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=422)


async def _login(_request: Request, _exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": "not authenticated"}, status_code=401)


def _alert_evaluator(svc: Services) -> AlertEvaluator:
    """The background alert evaluator of an app (``andon.floor.alerts``)."""
    platform = svc.platform

    async def plant_of(tenant: str, site_id: str) -> Plant:
        return (await platform.site_model(tenant, site_id))[1]

    records = FloorRecords(platform.db, svc.clock, svc.alert_events)
    return AlertEvaluator(records, plant_of, svc.store, svc.settings.monitoring, svc.clock)


def _report_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the MQTT ingest receiver stopped", exc_info=task.exception())


def _start_anchoring(settings: Settings, platform: Platform) -> asyncio.Task[None] | None:
    """Export the audit head to ``security.audit_anchor_file`` every interval (and once more
    at shutdown), so removing the newest entries is detected (``andon audit verify``)."""
    path = settings.security.audit_anchor_file
    if path is None:
        return None
    every = settings.security.audit_anchor_interval_s

    async def run() -> None:
        try:
            while True:
                try:
                    await platform.audit.export_head(path)
                except OSError:
                    log.exception("audit anchor: cannot append to %s", path)
                await asyncio.sleep(every)
        finally:
            with contextlib.suppress(OSError):
                await asyncio.shield(platform.audit.export_head(path))

    return asyncio.create_task(run(), name="andon-audit-anchor")


def create_app(
    settings: Settings,
    *,
    store: TelemetryStore | None = None,
    clock: Callable[[], Micros] = wall_clock,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock_rate: float = 1.0,
    bus: LiveBus | None = None,
    monotonic: Callable[[], float] | None = None,
    app_runner: Callable[[Services], InstanceRunner] | None = None,
) -> FastAPI:
    """The API app. ``store``: a telemetry store the caller owns (else one is opened from
    ``settings.telemetry_url`` and closed at shutdown); ``clock``: µs since the epoch
    (``clock_rate``: how many of its seconds pass per wall second, e.g. a demo's plant clock);
    ``sleep``: how live feeds wait between polls (tests pass one that moves their clock).
    ``bus``: a live bus the caller owns (else one is opened from ``settings.bus`` and closed
    at shutdown): the ingestor publishes on it and live feeds subscribe to it.
    ``monotonic`` (seconds, never stepped): what buckets, throttles and the ingest future
    bound measure elapsed time on; default ``time.monotonic`` with the wall clock, else the
    given clock's seconds (a test that steps its wall clock passes its own).
    ``app_runner``: builds, from the services, what runs installed app instances (e.g. an
    ``andon.apps.catalog.SupervisedRunner``); the lifespan starts every installed instance
    with it and closes it at shutdown. None: installations are rows only (decision 0902)."""

    # Buckets and throttles run on a monotonic clock, so a wall clock stepped back cannot
    # freeze them; a test's own clock drives them (its steps back are ignored by the bucket).
    mono: Callable[[], float] = (
        monotonic
        if monotonic is not None
        else time.monotonic
        if clock is wall_clock
        else (lambda: clock() / 1e6)
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.database_url)
        platform = Platform(
            db,
            clock,
            secret_key=settings.secret_key,
            secrets_dir=settings.security.secrets_dir,
            session_check_s=settings.security.session_check_s,
            reset_ttl_s=settings.security.reset_ttl_s,
            access_ttl_s=settings.access_token_ttl_s,
            refresh_ttl_s=settings.refresh_token_ttl_s,
            max_failed_logins=settings.max_failed_logins,
            max_failed_logins_per_source=settings.max_failed_logins_per_source,
            lockout_s=settings.lockout_s,
            monotonic=mono,
        )
        own_store = store is None
        live_bus: LiveBus | None = bus
        ing = settings.ingest
        tstore = (
            open_store(settings.telemetry_url, max_signals_per_tenant=ing.max_signals_per_tenant)
            if store is None
            else store
        )
        lim = settings.limits
        limiter = RateLimiter(
            {
                "api": (lim.api_rps, lim.api_burst),
                "ingest": (lim.ingest_points_per_s, lim.ingest_burst),
                "auth": (lim.auth_per_s, lim.auth_burst),
                "principal": (lim.principal_rps, lim.principal_burst),
                "anonymous": (lim.anonymous_per_s, lim.anonymous_burst),
            },
            mono,
        )
        jobs: TwinJobs | None = None
        evaluator: AlertEvaluator | None = None
        receiving: asyncio.Task[None] | None = None
        anchoring: asyncio.Task[None] | None = None
        runner: InstanceRunner | None = None
        try:
            await platform.start()
            if live_bus is None:
                live_bus = await open_bus(settings.bus.kind, settings.bus.url)
            app.state.services = Services(
                settings,
                platform,
                tstore,
                # the platform's clock bounds how far ahead a sample may be (decision 0312)
                Ingestor(
                    tstore,
                    clock=clock,
                    future_tolerance_s=ing.future_tolerance_s,
                    log_interval_s=ing.log_interval_s,
                    # never stepped back (a test's clock-derived seconds would be: none then)
                    monotonic=monotonic
                    if monotonic is not None
                    else time.monotonic
                    if clock is wall_clock
                    else None,
                ),
                limiter,
                clock,
                sleep,
            )
            app.state.services.clock_rate = clock_rate
            app.state.services.bus = live_bus
            app.state.services.alert_events = AlertEvents(live_bus)
            app.state.services.ingestor.live = LivePublisher(live_bus)
            gateway = build_gateway(app.state.services)
            app.state.services.gateway = gateway
            receiver = build_receiver(settings, gateway)
            if receiver is not None:  # the edges' MQTT uplink, through the same gateway
                app.state.services.receiver = receiver
                receiving = asyncio.create_task(receiver.run(), name="andon-ingest-mqtt")
                receiving.add_done_callback(_report_failure)
            jobs = twin_jobs(settings.twin, db, tstore, clock)
            await jobs.start()
            app.state.services.twin_jobs = jobs
            evaluator = _alert_evaluator(app.state.services)
            app.state.services.alerts = evaluator
            evaluator.start()
            if app_runner is not None:
                runner = app_runner(app.state.services)
                app.state.services.app_runner = runner
                sink = SqlAppRepository(db, clock)
                await Catalog(db, platform.audit, sink, clock, runner=runner).start_installed()
            anchoring = _start_anchoring(settings, platform)
            yield
        finally:
            if anchoring is not None:
                anchoring.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await anchoring
            if receiving is not None:
                receiving.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await receiving
            services: Services | None = getattr(app.state, "services", None)
            if services is not None:  # the counts of the last anonymous windows
                await services.anonymous.flush(platform.audit)
            if evaluator is not None:
                await evaluator.stop()
            if runner is not None:
                await runner.close()
            if jobs is not None:
                await jobs.stop()
            if bus is None and live_bus is not None:
                await live_bus.close()
            if own_store:
                await tstore.close()
            await db.close()

    app = FastAPI(
        title="andon platform API",
        version="1",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.include_router(api.router, prefix=PREFIX)
    app.add_exception_handler(RequestValidationError, _unprocessable)
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(Conflict, _conflict)
    app.add_exception_handler(Invalid, _invalid)
    app.add_exception_handler(BadScenario, _invalid)
    app.add_exception_handler(LoginFailed, _login)
    # a database restarting is a 503 with Retry-After, counted, not a 500 (issue 17)
    unavailable = Unavailable()
    app.state.unavailable = unavailable
    for exc_type in UNAVAILABLE:
        app.add_exception_handler(exc_type, unavailable)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
    app.add_middleware(BodyLimit, max_bytes=settings.limits.max_body_bytes)
    # outermost, so the body limit's own refusals carry the headers too
    app.add_middleware(SecurityHeaders, hsts=settings.tls.certfile is not None)
    # The web pages are not the API's: the composition roots (``andon serve``, the demo) mount
    # them (``andon.web.mount``), so ``api`` never imports ``web``.
    return app
