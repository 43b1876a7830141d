"""``AppGateway``: the one place an app instance's reach is decided (decision 0900).

It serves one instance's Unix socket with the protocol of ``andon.sdk.protocol``. The first
request must be ``hello``; every later one is checked against the instance's ``AppGrant``:
the tenant is the grant's (an app never names one), a site must be one of the grant's
sites, a machine or signal must belong to that site, and the method's permission must be
granted. Reading permissions are checked per site by the platform's own ``Principal.can``.
Whatever the grant does not cover is refused ``forbidden`` (never an empty answer) and
counted; ``stats()`` has every count.

Sites are described by a ``SiteResolver`` (``plant_sites`` for a local run from plant
files, ``platform_sites`` for the platform's metadata database): a site's id, its plant key
(the first part of its signal and machine paths), its machines and signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import math
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pyarrow as pa

from andon.apps.grant import PLATFORM_PERMISSION, AppGrant
from andon.apps.manifest import AppManifest
from andon.apps.sinks import STATE_LIMIT_BYTES, AppSink, StateLimitExceeded
from andon.bus import LiveBus, Subscription
from andon.bus.events import encode
from andon.kpi.summary import plant_summary
from andon.model.plant import Plant
from andon.model.types import MachineState, Micros
from andon.platform.permissions import Permission
from andon.platform.service import NotFound as PlatformNotFound
from andon.platform.service import Platform
from andon.sdk.finding import Finding, WorkOrder
from andon.sdk.protocol import (
    MAX_FRAME,
    PROTOCOL_VERSION,
    ProtocolError,
    encode_message,
    read_message,
)
from andon.store.base import TelemetryStore

__all__ = [
    "MAX_CONNECTIONS",
    "MAX_RANGE_US",
    "MAX_REQUEST_FRAME",
    "MAX_SAMPLES_PER_READ",
    "MAX_SIGNALS_PER_READ",
    "AppGateway",
    "LogLine",
    "SiteInfo",
    "SiteMachine",
    "SiteResolver",
    "plant_sites",
    "platform_sites",
]

_log = logging.getLogger(__name__)

MAX_SIGNALS_PER_READ: Final = 1000
MAX_SAMPLES_PER_READ: Final = 300_000
"""Samples one ``telemetry.read`` may answer (about 15 MiB as Arrow): counted in the store
before anything is read, so that no request makes the platform hold more."""
MAX_RANGE_US: Final = 366 * 86_400 * 1_000_000
"""The longest range one read may ask for (the answer is capped by ``MAX_FRAME`` anyway)."""
MAX_REQUEST_FRAME: Final = 2 * 1024 * 1024
"""Bytes of one request frame: the largest request is a ``state.set`` of 1 MiB of JSON."""
MAX_CONNECTIONS: Final = 4
"""Connections one instance may hold at once."""
MAX_SUBSCRIPTIONS: Final = 8
"""Live subscriptions per connection."""
MAX_KEY: Final = 200
MAX_LOG_MESSAGE: Final = 4000
LOG_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_RANGE = frozenset({"site", "start_us", "end_us"})
PARAMS: Final[dict[str, frozenset[str]]] = {
    "time.now": frozenset(),
    "sites.list": frozenset(),
    "machines.list": frozenset({"site"}),
    "telemetry.read": _RANGE | {"signals"},
    "states.read": _RANGE | {"machine"},
    "parts.read": _RANGE | {"machine"},
    "kpi.read": _RANGE,
    "live.subscribe": frozenset({"site"}),
    "live.unsubscribe": frozenset({"sub"}),
    "state.get": frozenset({"key"}),
    "state.set": frozenset({"key", "value"}),
    "settings.get": frozenset(),
    "feedback.list": frozenset({"since_us"}),
    "log": frozenset({"level", "message"}),
}
"""The parameters each method takes; any other (a ``tenant``, say) is refused. Findings and
work orders are checked field by field by their own types."""
SITE_CACHE_S: Final = 30.0
"""How long a resolved site is trusted before it is asked for again."""
COUNTERS: Final = (
    "connections",
    "connections_refused",
    "requests",
    "forbidden",
    "not_found",
    "bad_request",
    "rate_limited",
    "internal",
    "protocol_errors",
    "findings",
    "work_orders",
    "events_pushed",
    "events_dropped",
    "log_lines",
    "log_lines_dropped",
)


@dataclass(frozen=True, slots=True)
class SiteMachine:
    path: str
    id: str
    name: str
    type: str
    signals: Mapping[str, str]
    """Signal path → signal type."""


@dataclass(frozen=True, slots=True)
class SiteInfo:
    """What the gateway knows of a granted site."""

    id: str
    key: str
    name: str
    machines: tuple[SiteMachine, ...]
    signals: frozenset[str]
    """Every signal path of the site: machines', area sensors', meters'."""
    plant: Plant | None = None

    @classmethod
    def from_plant(cls, plant: Plant, site_id: str | None = None, name: str = "") -> SiteInfo:
        machines = tuple(
            SiteMachine(
                plant.machine_path(a, ln, m),
                m.id,
                m.name or m.id,
                m.type.value,
                {f"{plant.machine_path(a, ln, m)}/{s.id}": s.type for s in m.signals},
            )
            for a, ln, m in plant.machines()
        )
        return cls(
            site_id or plant.site.id,
            plant.site.id,
            name or plant.site.name or plant.site.id,
            machines,
            frozenset(plant.signal_paths()),
            plant,
        )

    def machine(self, path: str) -> SiteMachine | None:
        return next((m for m in self.machines if m.path == path), None)


SiteResolver = Callable[[str, str], Awaitable[SiteInfo | None]]
"""``(tenant_id, site_id)`` → the site, or ``None`` when the tenant has no such site."""


def plant_sites(plants: Iterable[Plant]) -> SiteResolver:
    """Sites from plant files: the site id is the plant's ``site.id``, the tenant its
    ``tenant`` (the local runner and the test harness)."""
    known = {(p.tenant, p.site.id): SiteInfo.from_plant(p) for p in plants}

    async def resolve(tenant_id: str, site_id: str) -> SiteInfo | None:
        return known.get((tenant_id, site_id))

    return resolve


def platform_sites(platform: Platform) -> SiteResolver:
    """Sites of the platform's metadata database (their stored plant models)."""

    async def resolve(tenant_id: str, site_id: str) -> SiteInfo | None:
        try:
            row = await platform.get_site(tenant_id, site_id)
            _, plant = await platform.site_model(tenant_id, site_id)
        except PlatformNotFound:
            return None
        return SiteInfo.from_plant(plant, str(row["id"]), str(row["name"]))

    return resolve


@dataclass(frozen=True, slots=True)
class LogLine:
    at_us: Micros
    level: str
    message: str


class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _forbidden(message: str) -> _Refused:
    return _Refused("forbidden", message)


def _bad(message: str) -> _Refused:
    return _Refused("bad_request", message)


def _str(params: dict[str, Any], key: str, limit: int = 500) -> str:
    v = params.get(key)
    if not isinstance(v, str) or not v:
        raise _bad(f"params.{key}: expected a non-empty string, got {v!r:.60}")
    if len(v) > limit:
        raise _bad(f"params.{key}: {len(v):,} characters, at most {limit:,}")
    return v


def _int(params: dict[str, Any], key: str) -> int:
    v = params.get(key)
    if not isinstance(v, int) or isinstance(v, bool):
        raise _bad(f"params.{key}: expected an integer, got {v!r:.60}")
    return v


def _range(params: dict[str, Any]) -> tuple[int, int]:
    start, end = _int(params, "start_us"), _int(params, "end_us")
    if end <= start:
        raise _bad(f"params.end_us {end} is not after start_us {start}")
    if end - start > MAX_RANGE_US:
        raise _bad(f"range of {(end - start) / 86_400e6:.0f} days, at most 366")
    return start, end


def _finite(obj: Any) -> Any:
    """``obj`` with NaN and infinities as ``None`` (JSON has no such numbers)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if hasattr(obj, "item"):  # a NumPy scalar
        return _finite(obj.item())
    return obj


class _RateLimit:
    """At most ``n`` events in any 60 s (monotonic) window."""

    def __init__(self, n: int, monotonic: Callable[[], float]) -> None:
        self.n = n
        self._monotonic = monotonic
        self._times: deque[float] = deque()

    def take(self) -> bool:
        now = self._monotonic()
        while self._times and self._times[0] <= now - 60.0:
            self._times.popleft()
        if len(self._times) >= self.n:
            return False
        self._times.append(now)
        return True


Handler = Callable[["_Connection", dict[str, Any]], Awaitable[tuple[Any, bytes | None]]]


class _Connection:
    def __init__(
        self, gateway: AppGateway, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.gateway = gateway
        self.reader = reader
        self.writer = writer
        self.lock = asyncio.Lock()
        self.hello = False
        self.subs: dict[int, asyncio.Task[None]] = {}
        self.next_sub = 0

    async def send(self, obj: dict[str, Any], binary: bytes | None = None) -> None:
        data = encode_message(obj, binary)
        async with self.lock:
            self.writer.write(data)
            await self.writer.drain()


class AppGateway:
    """Serves one app instance (see the module). ``await serve(path)`` listens on a Unix
    socket and returns at once; ``close()`` stops listening, ends every connection and
    its subscriptions. ``clock`` is the platform's time (a replay's in a test run);
    ``once`` tells the app to analyse what is there and return (a local or test run)."""

    def __init__(
        self,
        grant: AppGrant,
        store: TelemetryStore,
        bus: LiveBus,
        sink: AppSink,
        clock: Callable[[], Micros],
        *,
        manifest: AppManifest | None = None,
        sites: SiteResolver | None = None,
        once: bool = False,
        monotonic: Callable[[], float] = time.monotonic,
        max_log_lines: int = 1000,
        max_samples_per_read: int = MAX_SAMPLES_PER_READ,
    ) -> None:
        if manifest is not None and manifest.id != grant.app_id:
            raise ValueError(f"manifest is app {manifest.id!r}, the grant {grant.app_id!r}")
        self.grant = grant
        self.on_request: Callable[[int], object] | None = None
        """Called with the request count before each request is answered (the test
        harness's restart probe kills the app there, so a fast app cannot finish first)."""
        self.store = store
        self.bus = bus
        self.sink = sink
        self.clock = clock
        self.manifest = manifest
        self.once = once
        self.max_samples_per_read = max_samples_per_read
        self._sites = sites
        self._monotonic = monotonic
        self._principal = grant.principal()
        per_min = manifest.limits.findings_per_min if manifest is not None else 60
        self._findings_rate = _RateLimit(per_min, monotonic)
        self._orders_rate = _RateLimit(per_min, monotonic)
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._by_method: dict[str, int] = {}
        self._logs: deque[LogLine] = deque(maxlen=max_log_lines)
        self._site_cache: dict[str, tuple[float, SiteInfo | None]] = {}
        self._server: asyncio.Server | None = None
        self._conns: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._live: set[Subscription] = set()
        """The open live subscriptions (their drops count in ``stats`` as they happen)."""
        self._app_log = logging.getLogger(f"andon.apps.instance.{grant.app_id}")
        self._handlers: dict[str, tuple[str | None, Handler]] = {
            "time.now": (None, self._time_now),
            "sites.list": (None, self._sites_list),
            "machines.list": (None, self._machines_list),
            "telemetry.read": ("telemetry:read", self._telemetry_read),
            "states.read": ("states:read", self._states_read),
            "parts.read": ("parts:read", self._parts_read),
            "kpi.read": ("kpi:read", self._kpi_read),
            "live.subscribe": ("live:subscribe", self._live_subscribe),
            "live.unsubscribe": (None, self._live_unsubscribe),
            "findings.emit": ("findings:write", self._findings_emit),
            "workorders.propose": ("workorders:propose", self._workorders_propose),
            "state.get": (None, self._state_get),
            "state.set": (None, self._state_set),
            "settings.get": (None, self._settings_get),
            "feedback.list": ("feedback:read", self._feedback_list),
            "log": (None, self._log_line),
        }

    # --- lifecycle ---------------------------------------------------------------------------
    async def serve(self, socket_path: str | Path) -> None:
        """Listen on ``socket_path`` (created with mode 0600; a stale socket file there is
        replaced) and return once listening."""
        if self._server is not None:
            raise RuntimeError("the gateway is already serving")
        path = Path(socket_path)
        if path.is_socket():
            path.unlink()
        self._server = await asyncio.start_unix_server(self._accept, path=str(path))
        os.chmod(path, 0o600)

    async def close(self) -> None:
        """Stop listening and end every connection (their subscriptions with them)."""
        if self._server is not None:
            self._server.close()
        for conn in list(self._conns):
            for task in conn.subs.values():
                task.cancel()
            conn.writer.close()  # the connection's reader sees the end and returns
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=5.0)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=5.0)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> AppGateway:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- what it saw -------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Counts since the gateway was made: connections, requests, each refusal code,
        protocol errors, findings and work orders kept, live events pushed and dropped, log
        lines kept and dropped; ``subscriptions`` open now; ``methods`` counts requests per
        known method."""
        counts = dict(self._counts)
        counts["events_dropped"] += sum(sub.stats.dropped for sub in self._live)
        return {**counts, "subscriptions": len(self._live), "methods": dict(self._by_method)}

    def logs(self) -> list[LogLine]:
        """The app's newest log lines (``log`` requests), oldest first."""
        return list(self._logs)

    # --- connections -------------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        conn = _Connection(self, reader, writer)
        try:
            if len(self._conns) >= MAX_CONNECTIONS:
                self._counts["connections_refused"] += 1
                msg = f"at most {MAX_CONNECTIONS} connections per instance"
                with contextlib.suppress(OSError, ProtocolError):
                    await conn.send({"id": None, "error": {"code": "rate_limited", "message": msg}})
                return
            self._counts["connections"] += 1
            self._conns.add(conn)
            await self._serve_connection(conn)
        except (ConnectionError, OSError):
            pass  # the app went away; its requests were answered or are moot
        except asyncio.CancelledError:
            # the gateway is closing; the stream server's callback (Python 3.11) takes a
            # cancelled handler for an unhandled error, so the handler ends normally
            pass
        finally:
            self._conns.discard(conn)
            for sub in conn.subs.values():
                sub.cancel()
            writer.close()
            with contextlib.suppress(OSError, ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()
            if task is not None:
                self._tasks.discard(task)

    async def _serve_connection(self, conn: _Connection) -> None:
        while True:
            try:
                got = await read_message(conn.reader, MAX_REQUEST_FRAME)
            except ProtocolError as exc:
                self._counts["protocol_errors"] += 1
                with contextlib.suppress(OSError, ProtocolError):
                    err = {"code": "bad_request", "message": f"protocol error: {exc}"}
                    await conn.send({"id": None, "error": err})
                return
            if got is None:
                return
            msg, blob = got
            rid = msg.get("id")
            if not isinstance(rid, int) or isinstance(rid, bool):
                self._counts["protocol_errors"] += 1
                err = {"code": "bad_request", "message": "a request has an integer 'id'"}
                await conn.send({"id": None, "error": err})
                return
            if blob is not None:
                self._counts["protocol_errors"] += 1
                err = {"code": "bad_request", "message": "requests carry no binary part"}
                await conn.send({"id": None, "error": err})
                return
            keep_going = await self._request(conn, rid, msg)
            if not keep_going:
                return

    async def _request(self, conn: _Connection, rid: int, msg: dict[str, Any]) -> bool:
        """Answer one request; False when the connection must end (a failed hello)."""
        self._counts["requests"] += 1
        if self.on_request is not None:
            self.on_request(self._counts["requests"])
        method = msg.get("method")
        params = msg.get("params", {})
        if not isinstance(method, str):
            return await self._reply_error(conn, rid, _bad("a request has a string 'method'"))
        counted = method if method in self._handlers or method == "hello" else "(unknown)"
        self._by_method[counted] = self._by_method.get(counted, 0) + 1
        if not isinstance(params, dict):
            return await self._reply_error(conn, rid, _bad("'params' must be a JSON object"))
        if not conn.hello:
            if method != "hello":
                first = _bad(f"the first request must be hello, not {method!r:.40}")
                await self._reply_error(conn, rid, first)
                return False
            try:
                result = self._hello(params)
            except _Refused as exc:
                await self._reply_error(conn, rid, exc)
                return False
            conn.hello = True
            await conn.send({"id": rid, "result": result})
            return True
        entry = self._handlers.get(method)
        if entry is None:
            what = "hello was already said" if method == "hello" else f"no method {method!r:.40}"
            return await self._reply_error(conn, rid, _Refused("not_found", what))
        perm, handler = entry
        try:
            if perm is not None and perm not in self.grant.permissions:
                raise _forbidden(f"{method} needs the permission {perm!r}, not granted")
            allowed = PARAMS.get(method)
            if allowed is not None and (extra := sorted(set(params) - allowed)):
                raise _bad(f"{method} has no parameter {extra[0]!r:.60}")
            result, binary = await handler(conn, params)
            reply = encode_message({"id": rid, "result": result}, binary)
        except _Refused as exc:
            return await self._reply_error(conn, rid, exc)
        except ProtocolError as exc:  # an answer over the frame cap or not JSON
            return await self._reply_error(conn, rid, _bad(str(exc)))
        except Exception as exc:
            _log.exception("app %s instance %s: %s failed", self.grant.app_id,
                           self.grant.instance_id, method)  # fmt: skip
            return await self._reply_error(
                conn, rid, _Refused("internal", f"{method} failed: {type(exc).__name__}")
            )
        async with conn.lock:
            conn.writer.write(reply)
            await conn.writer.drain()
        return True

    async def _reply_error(self, conn: _Connection, rid: int, exc: _Refused) -> bool:
        self._counts[exc.code] = self._counts.get(exc.code, 0) + 1
        await conn.send({"id": rid, "error": {"code": exc.code, "message": exc.message}})
        return True

    def _hello(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("protocol") != PROTOCOL_VERSION:
            raise _bad(
                f"protocol {params.get('protocol')!r:.20} is not spoken here; "
                f"this gateway speaks {PROTOCOL_VERSION}"
            )
        if params.get("app_id") != self.grant.app_id:
            raise _forbidden(
                f"this socket serves app {self.grant.app_id!r}, not {params.get('app_id')!r:.60}"
            )
        if params.get("version") != self.grant.app_version:
            raise _forbidden(
                f"this socket serves {self.grant.app_id} {self.grant.app_version}, "
                f"not version {params.get('version')!r:.40}"
            )
        g = self.grant
        return {
            "tenant": g.tenant_id,
            "instance_id": g.instance_id,
            "app_id": g.app_id,
            "version": g.app_version,
            "sites": sorted(g.site_ids),
            "permissions": sorted(g.permissions),
            "settings": g.settings,
            "once": self.once,
            "now_us": self.clock(),
        }

    # --- checks ------------------------------------------------------------------------------
    async def _site(self, params: dict[str, Any], perm: str | None = None) -> SiteInfo:
        """The granted site ``params.site`` (``forbidden`` for any other), where ``perm``
        holds by the platform's authorisation code."""
        site_id = _str(params, "site", 200)
        if site_id not in self.grant.site_ids:
            raise _forbidden(f"site {site_id!r:.60} is not granted to this installation")
        platform_perm = PLATFORM_PERMISSION.get(perm) if perm is not None else None
        if platform_perm is not None and not self._principal.can(
            Permission(platform_perm), site_id
        ):
            raise _forbidden(f"{perm} is not granted on site {site_id!r}")
        info = await self._resolve(site_id)
        if info is None:
            raise _Refused("not_found", f"site {site_id!r} has no plant model")
        return info

    async def _resolve(self, site_id: str) -> SiteInfo | None:
        now = self._monotonic()
        hit = self._site_cache.get(site_id)
        if hit is not None and now - hit[0] < SITE_CACHE_S:
            return hit[1]
        info = None if self._sites is None else await self._sites(self.grant.tenant_id, site_id)
        self._site_cache[site_id] = (now, info)
        return info

    @staticmethod
    def _machine(info: SiteInfo, path: str) -> SiteMachine:
        m = info.machine(path)
        if m is None:
            raise _forbidden(f"machine {path!r:.120} is not in site {info.id!r}")
        return m

    @staticmethod
    def _signals(info: SiteInfo, signals: Any, what: str = "params.signals") -> list[str]:
        if not isinstance(signals, list) or not all(isinstance(s, str) for s in signals):
            raise _bad(f"{what}: expected a list of signal paths")
        if len(signals) > MAX_SIGNALS_PER_READ:
            raise _bad(f"{what}: {len(signals):,} signals, at most {MAX_SIGNALS_PER_READ:,}")
        for s in signals:
            if s not in info.signals:
                raise _forbidden(f"signal {s!r:.120} is not in site {info.id!r}")
        return signals

    def _machines(self, info: SiteInfo, params: dict[str, Any]) -> list[str]:
        machine = params.get("machine")
        if machine is None:
            return [m.path for m in info.machines]
        if not isinstance(machine, str):
            raise _bad(f"params.machine: expected a machine path or null, got {machine!r:.60}")
        return [self._machine(info, machine).path]

    # --- methods -----------------------------------------------------------------------------
    async def _time_now(self, conn: _Connection, params: dict[str, Any]) -> tuple[Any, None]:
        return {"now_us": self.clock()}, None

    async def _sites_list(self, conn: _Connection, params: dict[str, Any]) -> tuple[Any, None]:
        out = []
        for site_id in sorted(self.grant.site_ids):
            info = await self._resolve(site_id)
            out.append(
                {"id": site_id, "key": info.key if info else "", "name": info.name if info else ""}
            )
        return out, None

    async def _machines_list(self, conn: _Connection, params: dict[str, Any]) -> tuple[Any, None]:
        info = await self._site(params)
        return [
            {"path": m.path, "id": m.id, "name": m.name, "type": m.type, "signals": dict(m.signals)}
            for m in info.machines
        ], None

    async def _telemetry_read(self, conn: _Connection, params: dict[str, Any]) -> tuple[Any, bytes]:
        info = await self._site(params, "telemetry:read")
        signals = self._signals(info, params.get("signals"))
        start, end = _range(params)
        tenant = self.grant.tenant_id
        counts = await self.store.aggregate(tenant, signals, start, end, end - start)
        n = int(counts.count.sum())
        if n > self.max_samples_per_read:
            raise _bad(
                f"{n:,} samples in the range, over the {self.max_samples_per_read:,} one read "
                "may answer: read fewer signals or a shorter range"
            )
        batch = await self.store.read(tenant, signals, start, end)
        names = pa.array(batch.names, pa.string())
        table = pa.table(
            {
                "signal": names.take(pa.array(batch.index)),
                "ts": pa.array(batch.ts, pa.int64()),
                "value": pa.array(batch.value, pa.float64()),
                "quality": pa.array(batch.quality, pa.uint8()),
            }
        )
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, table.schema) as w:
            w.write_table(table)
        blob = sink.getvalue()
        if len(blob) > MAX_FRAME:
            raise _bad(
                f"{len(batch):,} samples ({len(blob):,} bytes) are over the "
                f"{MAX_FRAME:,}-byte frame cap: read fewer signals or a shorter range"
            )
        return {"rows": len(batch)}, blob

    async def _states_read(self, conn: _Connection, params: dict[str, Any]) -> tuple[Any, None]:
        info = await self._site(params, "states:read")
        machines = self._machines(info, params)
        start, end = _range(params)
        if not machines:
            return [], None
        b = await self.store.read_states(self.grant.tenant_id, machines, start, end)
        labels = [s.label for s in MachineState]
        return [
            {
                "machine": b.names[int(b.index[i])],
                "start_us": int(b.start[i]),
                "end_us": int(b.end[i]),
                "state": labels[int(b.state[i])],
                "reason": b.reason[i],
            }
            for i in range(len(b.start))
        ], None

    async def _parts_read(self, conn: _Connection, params: dict[str, Any]) -> tuple[Any, None]:
        info = await self._site(params, "parts:read")
        machines = self._machines(info, params)
        start, end = _range(params)
        if not machines:
            return [], None
        b = await self.store.read_parts(self.grant.tenant_id, machines, start, end)
        return [
            {
                "machine": b.names[int(b.index[i])],
                "ts_us": int(b.ts[i]),
                "product": b.product[i],
                "good": int(b.good[i]),
                "scrap": int(b.scrap[i]),
            }
            for i in range(len(b.ts))
        ], None

    async def _kpi_read(self, conn: _Connection, params: dict[str, Any]) -> tuple[Any, None]:
        info = await self._site(params, "kpi:read")
        start, end = _range(params)
        if info.plant is None:
            raise _Refused("not_found", f"site {info.id!r} has no plant model for KPIs")
        plant = info.plant
        if plant.tenant != self.grant.tenant_id:
            plant = plant.model_copy(update={"tenant": self.grant.tenant_id})
        summary = await plant_summary(self.store, plant, start, end)
        return _finite(summary.as_dict()), None

    async def _live_subscribe(self, conn: _Connection, params: dict[str, Any]) -> tuple[Any, None]:
        info = await self._site(params, "live:subscribe")
        if len(conn.subs) >= MAX_SUBSCRIPTIONS:
            raise _Refused("rate_limited", f"at most {MAX_SUBSCRIPTIONS} subscriptions")
        conn.next_sub += 1
        sub_id = conn.next_sub
        ready = asyncio.Event()
        task = asyncio.create_task(self._pump(conn, sub_id, info, ready))
        conn.subs[sub_id] = task
        ready_wait = asyncio.create_task(ready.wait())
        await asyncio.wait({task, ready_wait}, return_when=asyncio.FIRST_COMPLETED)
        ready_wait.cancel()
        if task.done():
            conn.subs.pop(sub_id, None)
            raise _Refused("internal", "the live subscription could not be made")
        return {"sub": sub_id}, None

    async def _pump(
        self, conn: _Connection, sub_id: int, info: SiteInfo, ready: asyncio.Event
    ) -> None:
        pattern = ("site", info.key, "*")
        async with self.bus.subscribe(self.grant.tenant_id, pattern) as sub:
            self._live.add(sub)
            ready.set()
            try:
                async for msg in sub:
                    if isinstance(msg.payload, bytes):
                        continue
                    event = json.loads(encode(msg.payload))
                    event.pop("v", None)
                    await conn.send({"sub": sub_id, "event": _finite(event)})
                    self._counts["events_pushed"] += 1
            finally:
                self._live.discard(sub)
                self._counts["events_dropped"] += sub.stats.dropped

    async def _live_unsubscribe(
        self, conn: _Connection, params: dict[str, Any]
    ) -> tuple[Any, None]:
        sub_id = _int(params, "sub")
        task = conn.subs.pop(sub_id, None)
        if task is None:
            raise _Refused("not_found", f"no subscription {sub_id}")
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return {}, None

    async def _findings_emit(self, conn: _Connection, params: dict[str, Any]) -> tuple[Any, None]:
        try:
            finding = Finding.from_json(params)
        except ValueError as exc:
            raise _bad(str(exc)) from None
        info = await self._site({"site": finding.site})
        if finding.machine is not None:
            self._machine(info, finding.machine)
        self._signals(info, list(finding.signals), "finding signals")
        if self.manifest is not None and finding.type not in self.manifest.finding_type_ids:
            raise _bad(f"finding type {finding.type!r} is not declared in the manifest")
        if not self._findings_rate.take():
            raise _Refused(
                "rate_limited", f"over {self._findings_rate.n} findings per minute: refused"
            )
        fid = await self.sink.add_finding(self.grant, finding, self.clock())
        self._counts["findings"] += 1
        return {"finding_id": fid}, None

    async def _workorders_propose(
        self, conn: _Connection, params: dict[str, Any]
    ) -> tuple[Any, None]:
        try:
            order = WorkOrder.from_json(params)
        except ValueError as exc:
            raise _bad(str(exc)) from None
        info = await self._site({"site": order.site})
        self._machine(info, order.machine)
        if not self._orders_rate.take():
            raise _Refused(
                "rate_limited", f"over {self._orders_rate.n} work orders per minute: refused"
            )
        wid = await self.sink.add_work_order(self.grant, order, self.clock())
        self._counts["work_orders"] += 1
        return {"work_order_id": wid}, None

    async def _state_get(self, conn: _Connection, params: dict[str, Any]) -> tuple[Any, None]:
        key = _str(params, "key", MAX_KEY)
        text = await self.sink.get_state(self.grant.instance_id, key)
        if text is None:
            return {"found": False, "value": None}, None
        return {"found": True, "value": json.loads(text)}, None

    async def _state_set(self, conn: _Connection, params: dict[str, Any]) -> tuple[Any, None]:
        key = _str(params, "key", MAX_KEY)
        if "value" not in params:
            raise _bad("params.value: required (any JSON value)")
        text = json.dumps(params["value"], separators=(",", ":"), ensure_ascii=False)
        if len(text.encode()) > STATE_LIMIT_BYTES:
            raise _bad(f"state value of {len(text.encode()):,} bytes, over {STATE_LIMIT_BYTES:,}")
        try:
            await self.sink.set_state(self.grant.instance_id, key, text, STATE_LIMIT_BYTES)
        except StateLimitExceeded as exc:
            raise _bad(f"state limit: {exc}") from None
        return {}, None

    async def _settings_get(self, conn: _Connection, params: dict[str, Any]) -> tuple[Any, None]:
        return dict(self.grant.settings), None

    async def _feedback_list(self, conn: _Connection, params: dict[str, Any]) -> tuple[Any, None]:
        since = _int(params, "since_us")
        rows = await self.sink.feedback_since(self.grant.instance_id, since)
        return [fb.to_json() for fb in rows], None

    async def _log_line(self, conn: _Connection, params: dict[str, Any]) -> tuple[Any, None]:
        level = params.get("level")
        if level not in LOG_LEVELS:
            raise _bad(f"params.level: expected one of {', '.join(LOG_LEVELS)}")
        message = params.get("message")
        if not isinstance(message, str):
            raise _bad("params.message: expected a string")
        if len(message) > MAX_LOG_MESSAGE:
            raise _bad(f"params.message: {len(message):,} characters, at most {MAX_LOG_MESSAGE:,}")
        if len(self._logs) == self._logs.maxlen:
            self._counts["log_lines_dropped"] += 1
        self._logs.append(LogLine(self.clock(), str(level), message))
        self._counts["log_lines"] += 1
        self._app_log.log(LOG_LEVELS[str(level)], "%s: %s", self.grant.instance_id, message)
        return {}, None
