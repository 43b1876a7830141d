"""``andon demo`` with the web dashboard: the virtual factory runs live into a DuckDB store and
the platform app (API + dashboard) serves it, on loopback, with no outside service.

Set-up (``prepare``): a fresh DuckDB telemetry store and an embedded SQLite metadata database in
the data directory; the plant's tenant; the plant imported as a site; three users (``admin``,
``engineer``, ``operator``) with random passwords; and the shift so far simulated as fast as the
machine allows (``prefill_h`` plant hours from ``start``), so the board has history at once.

Then the factory runs *live* at ``speed`` plant seconds per wall second, and the API's clock is
the **plant** clock (``PlantClock``): "now" and "today" of every endpoint are plant time, so the
board, today's KPIs and the live feed match the simulated data. Because the clock runs ``speed``
times faster than the wall, token lifetimes are stretched by ``speed`` (docs/decisions/0701).

``serve_demo`` runs all of it on the caller's event loop until the server stops (the command);
``demo_server`` runs it in a background thread on a free port and yields a ``DemoHandle``
(tests, benchmarks).
"""

from __future__ import annotations

import asyncio
import math
import secrets
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import uvicorn
from fastapi import FastAPI
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from andon.api import create_app
from andon.api.gateway import PlatformKeys
from andon.bus import InProcessBus
from andon.demo.run import DemoRun, default_start
from andon.ingest import Ingestor
from andon.ingest.gateway import IngestGateway, StaticSites
from andon.ingest.live import LivePublisher
from andon.model.loader import parse_plant
from andon.model.plant import Plant
from andon.model.types import MachineState, Micros, from_micros
from andon.platform import Database, Platform, Role
from andon.platform.config import Settings
from andon.platform.permissions import KeyKind, Permission
from andon.platform.service import Principal
from andon.store import DuckDBStore
from andon.web import mount as mount_web

__all__ = [
    "USERS",
    "DemoError",
    "DemoHandle",
    "DemoOptions",
    "DemoSite",
    "PlantClock",
    "builtin_plant_yaml",
    "demo_server",
    "prepare",
    "run_cli",
    "run_factory",
    "serve_demo",
    "status_line",
]

T = TypeVar("T")

USERS: dict[str, Role] = {
    "admin": Role.TENANT_ADMIN,
    "engineer": Role.ENGINEER,
    "operator": Role.OPERATOR,
}
"""The demo's users (login ``<name>@demo.andon``) and their tenant-wide roles."""

STORE_FILE = "telemetry.duckdb"
META_FILE = "platform.db"


class PlantClock:
    """Plant time in µs since the epoch: ``anchor`` plant µs at wall instant ``wall0``, moving
    ``speed`` plant seconds per wall second. Reads ``time.monotonic`` (not an event loop's
    clock), so the API, the factory and a test thread all agree on it."""

    def __init__(self, anchor: Micros, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._lock = threading.Lock()
        self._anchor = anchor
        self._wall0 = time.monotonic()
        self._frozen = True

    def __call__(self) -> Micros:
        with self._lock:
            if self._frozen:
                return self._anchor
            return self._anchor + round((time.monotonic() - self._wall0) * self.speed * 1e6)

    def hold(self, instant: Micros) -> None:
        """Stand still at plant instant ``instant`` (a test that drives the plant clock in
        steps, advancing the factory to each instant before it samples the pages)."""
        with self._lock:
            self._anchor, self._frozen = instant, True

    def start(self, anchor: Micros) -> None:
        """Run from plant instant ``anchor`` now (it stands still until this is called, so
        the pre-fill does not eat into live time)."""
        with self._lock:
            self._anchor, self._wall0, self._frozen = anchor, time.monotonic(), False


@dataclass(frozen=True)
class DemoOptions:
    """How to run the demo. ``live=False`` stops the factory after the pre-fill while the
    clock runs on: the data then changes only when a caller writes it (browser tests)."""

    plant_yaml: str
    data_dir: Path
    seed: int = 7
    speed: float = 60.0
    start: Micros | None = None
    prefill_h: float = 2.0
    hours: float | None = None
    live: bool = True
    host: str = "127.0.0.1"
    port: int = 8000
    tick_s: float = 0.25
    settings: dict[str, Any] = field(default_factory=dict)
    """extra ``Settings`` fields (e.g. ``{"limits": {"api_rps": 0}}``)"""
    plant: Plant = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "plant", parse_plant(self.plant_yaml, "<demo plant>"))
        if self.speed <= 0:
            raise ValueError("speed must be positive")
        if self.prefill_h < 0:
            raise ValueError("prefill hours must be zero or more")
        if self.hours is not None and self.hours <= 0:
            raise ValueError("hours must be positive")


@dataclass
class DemoSite:
    """A prepared demo: the store, the pre-filled factory, the app and who may log in."""

    options: DemoOptions
    store: DuckDBStore
    run: DemoRun
    clock: PlantClock
    app: FastAPI
    tenant: str
    site_id: str
    passwords: dict[str, str]
    """login email → password"""
    db: Database | None = None
    """The metadata database the factory's edge key is checked against (closed with the
    store)."""

    @property
    def start(self) -> Micros:
        return self.run.factory.start

    def email(self, user: str) -> str:
        return f"{user}@demo.andon"


def _settings(d: Path, options: DemoOptions) -> Settings:
    # tokens expire on the plant clock: stretch them so a session lasts ~15 wall minutes
    access = min(86_400, max(900, math.ceil(900 * options.speed)))
    base: dict[str, Any] = {
        "host": options.host,
        "port": options.port,
        "database_url": f"sqlite:///{d / META_FILE}",
        "telemetry_url": f"duckdb://{d / STORE_FILE}",
        "access_token_ttl_s": access,
        "refresh_token_ttl_s": math.ceil(14 * 86_400 * max(1.0, options.speed)),
        # today's KPIs are cached per plant-clock step: keep the step about 5 wall seconds
        "kpi_cache_s": min(300, max(5, math.ceil(5 * options.speed))),
    }
    base.update(options.settings)
    return Settings(**base)


def builtin_plant_yaml() -> str:
    """The YAML of the built-in demo plant (what ``andon demo`` runs without ``--plant``)."""
    return (files("andon.sim") / "plants" / "demo.yaml").read_text(encoding="utf-8")


async def prepare(options: DemoOptions) -> DemoSite:
    """Create the store, the metadata, the users, pre-fill the shift so far and build the app.
    Refuses a data directory that already holds a demo (re-running the factory into it would
    store every state interval twice)."""
    d = options.data_dir
    d.mkdir(parents=True, exist_ok=True)
    for name in (STORE_FILE, META_FILE):
        if (d / name).exists():
            raise FileExistsError(
                f"{d / name} exists: the web demo needs an empty data directory "
                "(remove it or pick another --data-dir)"
            )
    plant = options.plant
    settings = _settings(d, options)
    start = default_start(plant) if options.start is None else options.start
    prefill_s = options.prefill_h * 3600.0
    clock = PlantClock(start + round(prefill_s * 1e6), options.speed)

    db = Database(settings.database_url)
    passwords: dict[str, str] = {}
    try:
        pf = Platform(db, clock)
        await pf.start()
        await pf.create_tenant(plant.tenant, f"{plant.site.name or plant.site.id} (demo)")
        site = await pf.create_site(plant.tenant, options.plant_yaml)
        for user, role in USERS.items():
            pw = secrets.token_urlsafe(12)
            await pf.create_user(plant.tenant, f"{user}@demo.andon", pw, [(role, None)])
            passwords[f"{user}@demo.andon"] = pw
        # the factory writes as an edge does: with a platform edge key for this site, which
        # the gateway checks against the metadata database (revoking it stops the factory)
        setup = Principal("user", "demo", plant.tenant, tenant_wide=frozenset(Permission))
        _, key = await pf.create_api_key(
            plant.tenant,
            setup,
            name="demo factory",
            kind=KeyKind.EDGE,
            permissions=[Permission.INGEST_WRITE],
            site_ids=[str(site["id"])],
            ttl_s=10 * 365 * 86_400,
        )
    except BaseException:
        await db.close()
        raise

    store = DuckDBStore.open(d / STORE_FILE)
    # Pre-fill in 10-minute windows (drawing a window costs the same whatever its length),
    # then go live in windows of about one wall second of plant time: the factory cuts each
    # window from where the last ended, so changing ``window_s`` between windows is safe.
    try:
        gateway = IngestGateway(
            Ingestor(store),
            PlatformKeys(db, clock),
            StaticSites({plant.tenant: {plant.site.id: str(site["id"])}}),
        )
        run = DemoRun.create(
            plant, store, options.seed, start, window_s=600.0, gateway=(gateway, key)
        )
        t = 0.0
        while t < prefill_s:
            t = min(prefill_s, t + 1800.0)
            await run.advance(t)
            await asyncio.sleep(0)  # let a server on this loop answer meanwhile
        run.factory.window_s = max(1.0, min(600.0, options.speed))
        # live from here on: what the factory's ingestor stores reaches the pages' live feeds
        bus = InProcessBus()
        run.ingestor.live = LivePublisher(bus)
        app = create_app(settings, store=store, clock=clock, clock_rate=options.speed, bus=bus)
        if settings.web:
            mount_web(app)
    except BaseException:
        await store.close()
        await db.close()
        raise
    return DemoSite(options, store, run, clock, app, plant.tenant, str(site["id"]), passwords, db)


async def run_factory(site: DemoSite, on_tick: Callable[[DemoSite], None] | None = None) -> None:
    """Start the plant clock at the end of the pre-fill and keep the factory at it until
    ``hours`` (or cancelled). The factory's window is about one wall second of plant time, so
    the store trails the plant clock by at most a window plus a tick."""
    o = site.options
    prefill_s = o.prefill_h * 3600.0
    site.clock.start(site.start + round(prefill_s * 1e6))
    if not o.live:
        return
    until = prefill_s + o.hours * 3600.0 if o.hours is not None else None
    while True:
        target = (site.clock() - site.start) / 1e6
        if until is not None:
            target = min(target, until)
        await site.run.advance(target)
        if on_tick is not None:
            on_tick(site)
        if until is not None and target >= until:
            return
        await asyncio.sleep(o.tick_s)


def _server(app: FastAPI) -> uvicorn.Server:
    config = uvicorn.Config(
        app, log_level="warning", ws="none", lifespan="on", server_header=False, access_log=False
    )
    return uvicorn.Server(config)


def _socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(256)
    return sock


async def serve_demo(
    site: DemoSite,
    sock: socket.socket,
    on_tick: Callable[[DemoSite], None] | None = None,
    server: uvicorn.Server | None = None,
) -> None:
    """Serve ``site.app`` on ``sock`` and run the factory live until the server stops (Ctrl-C
    or ``server.should_exit``); then stop the factory and close the store."""
    server = server or _server(site.app)
    factory = asyncio.create_task(run_factory(site, on_tick), name="andon-demo-factory")
    try:
        await server.serve(sockets=[sock])
    finally:
        factory.cancel()
        with suppress(asyncio.CancelledError):
            await factory
        await site.store.close()
        if site.db is not None:
            await site.db.close()


@dataclass
class DemoHandle:
    """A demo served from a background thread: ``url`` and the prepared ``site``; ``call``
    runs a coroutine on the server's loop (where the store lives) and returns its result."""

    url: str
    site: DemoSite
    loop: asyncio.AbstractEventLoop

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=timeout)


@contextmanager
def demo_server(options: DemoOptions) -> Iterator[DemoHandle]:
    """Prepare and serve a demo on a free loopback port (``options.port`` is ignored) in a
    thread with its own event loop; stop it and close the store on exit. The socket listens
    before the server starts, so the first request simply waits for start-up."""
    sock = _socket("127.0.0.1", 0)
    port = int(sock.getsockname()[1])
    loop = asyncio.new_event_loop()
    ready: asyncio.Future[DemoSite] = loop.create_future()
    holder: dict[str, uvicorn.Server] = {}

    async def main() -> None:
        try:
            site = await prepare(options)
        except BaseException as exc:
            ready.set_exception(exc)
            return
        server = _server(site.app)  # not the main thread: uvicorn leaves signals alone
        holder["server"] = server
        ready.set_result(site)
        await serve_demo(site, sock, server=server)

    def thread_main() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(main())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    thread = threading.Thread(target=thread_main, name="andon-demo-server", daemon=True)
    thread.start()
    try:
        site = asyncio.run_coroutine_threadsafe(_wait(ready), loop).result(timeout=300)
        yield DemoHandle(f"http://127.0.0.1:{port}", site, loop)
    finally:
        server = holder.get("server")
        if server is not None:
            server.should_exit = True
        thread.join(timeout=60)
        sock.close()


class DemoError(Exception):
    """A demo that cannot start; the message says why and what to change."""


_ICON = {
    MachineState.RUNNING: ("▶", "green"),
    MachineState.STARVED: ("◌", "yellow"),
    MachineState.BLOCKED: ("■", "yellow"),
    MachineState.DOWN: ("✖", "bold red"),
    MachineState.PLANNED_STOP: ("⏸", "blue"),
    MachineState.OFFLINE: ("○", "dim"),
}


def status_line(site: DemoSite, url: str) -> Text:
    """One line for the console: plant time, speed, machines per state (icon and word, not
    colour alone), stored intervals, the URL."""
    plant = site.options.plant
    local = from_micros(site.clock()).astimezone(ZoneInfo(plant.site.timezone))
    counts: dict[MachineState, int] = {}
    for rec in site.run.factory.recs:
        counts[rec.rt.state] = counts.get(rec.rt.state, 0) + 1
    parts: list[str | tuple[str, str]] = [
        ("● live ", "bold green"),
        f"plant {local:%a %Y-%m-%d %H:%M:%S} ({plant.site.timezone}) ×{site.clock.speed:g}  ",
    ]
    for state, (icon, style) in _ICON.items():
        if counts.get(state):
            parts.append((f"{icon} {state.label} {counts[state]}  ", style))
    stats = site.run.ingestor.stats
    parts.append(f"stored {stats.samples:,} samples, {stats.states:,} states  {url}")
    return Text.assemble(*parts)


def run_cli(options: DemoOptions, console: Console) -> None:
    """What ``andon demo`` does by default: prepare, print the URL and the users' passwords,
    then serve with a live status line until Ctrl-C."""
    try:
        sock = _socket(options.host, options.port)
    except OSError as exc:
        raise DemoError(
            f"cannot listen on {options.host}:{options.port}: {exc.strerror} "
            "(is another demo running? pick another --port)"
        ) from exc
    url = f"http://{options.host}:{options.port}"

    async def main() -> None:
        try:
            with console.status("simulating the shift so far…"):
                site = await prepare(options)
        except FileExistsError as exc:
            raise DemoError(str(exc)) from exc
        table = Table(title=f"andon dashboard: {url}", title_justify="left", box=None)
        for col in ("user", "password", "role"):
            table.add_column(col)
        for user, role in USERS.items():
            email = site.email(user)
            table.add_row(email, site.passwords[email], role.value)
        console.print(table)
        console.print(
            f"site {options.plant.site.id!r} (tenant {site.tenant!r}); the API's clock is the "
            "plant clock. Ctrl-C stops.",
            highlight=False,
        )
        with Live(status_line(site, url), console=console, refresh_per_second=2) as live:
            await serve_demo(site, sock, on_tick=lambda s: live.update(status_line(s, url)))

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass  # uvicorn handles Ctrl-C itself; a second one lands here
    finally:
        sock.close()
    console.print("stopped.")


async def _wait(fut: asyncio.Future[T]) -> T:
    return await fut
