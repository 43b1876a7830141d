"""``andon app ...``: make an app (``new``) and run it on the virtual factory (``run``).

``andon app run PATH --hours H`` simulates ``H`` hours of a plant (the demo's wiring: the
virtual factory → ingest → a DuckDB store in a temporary directory), serves the app's
gateway over that store with a ``MemorySink``, starts the app as the platform would
(``python -m andon.sdk ENTRY``, but not sandboxed: it is the vendor's own code on the
vendor's machine), waits until it returns and prints its findings. The app's clock is the
end of the simulated span and ``once`` is set: it analyses what is there and returns.
``andon app test`` (the harness) is ``andon.commands.app_test``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table

from andon.commands import app_test
from andon.commands.common import JsonOpt, PlantOpt, err, fail, plant_or_exit
from andon.model.loader import ModelError
from andon.model.types import Micros, from_micros

if TYPE_CHECKING:  # the app platform is imported when a command runs, not with the CLI
    from andon.apps.gateway import LogLine
    from andon.apps.manifest import AppManifest
    from andon.apps.sinks import MemorySink
    from andon.model.plant import Plant

__all__ = ["LocalRun", "app", "parse_settings", "run_local", "scaffold"]

app = typer.Typer(no_args_is_help=True, help="Apps: scaffold one, run it on the virtual factory.")
out = Console()

_NAME = re.compile(r"^[a-z][a-z0-9_]{1,39}$")


# --- andon app new ------------------------------------------------------------------------------
_MANIFEST = """\
# The manifest of {id}: docs/apps.md explains every field.
id: {id}
name: {{en: {title}, zh-TW: {title}}}
vendor: {vendor}
version: 0.1.0
licence: Apache-2.0
category: production
losses: [breakdown, minor_stop]
inputs: {{signals: [], machines: [any]}}
permissions:
  - states:read
  - findings:write
limits: {{cpu_s: 60, memory_mb: 256, files: 64, processes: 4, findings_per_min: 60}}
settings:
  type: object
  properties:
    min_stop_min:
      type: number
      default: 5
      minimum: 0.5
      description: A stop at least this long is a finding (minutes).
    window_h:
      type: number
      default: 24
      minimum: 1
      maximum: 720
      description: How far back the first analysis looks (hours).
    interval_min:
      type: number
      default: 15
      minimum: 1
      description: How often an installed app analyses the newest data (minutes).
finding_types:
  - id: long_stop
    name: {{en: Long stop, zh-TW: 長時間停機}}
    description: A machine was down longer than the setting allows.
price: {{model: free}}
entry: {id}.app:main
"""

_INIT = '"""{title}: an andon app (see README.md)."""\n'

_APP = '''\
"""{title}: one finding for every breakdown (a machine down) longer than the
``min_stop_min`` setting, on every machine of every site the app is installed on.

``long_stops`` holds the logic and is tested without a platform (tests/test_app.py);
``main`` reads and writes through the SDK only.
"""

from __future__ import annotations

import asyncio

from andon.sdk import Context, Finding, State

STOPPED = ("down",)
US_PER_MIN = 60_000_000


def long_stops(states: list[State], min_stop_us: int) -> list[State]:
    """The stops of at least ``min_stop_us``, in the order given."""
    return [s for s in states if s.state in STOPPED and s.end_us - s.start_us >= min_stop_us]


def finding_for(site: str, stop: State, min_stop_us: int) -> Finding:
    minutes = (stop.end_us - stop.start_us) / US_PER_MIN
    name = stop.machine.rsplit("/", 1)[-1]
    return Finding(
        type="long_stop",
        site=site,
        machine=stop.machine,
        start_us=stop.start_us,
        end_us=stop.end_us,
        score=min(1.0, (stop.end_us - stop.start_us) / (4 * min_stop_us)),
        title=f"{{name}} {{stop.state.replace('_', ' ')}} for {{minutes:.0f}} min",
        explanation=(
            f"{{name}} was {{stop.state.replace('_', ' ')}} for {{minutes:.1f}} minutes"
            + (f" (reason {{stop.reason}})" if stop.reason else "")
            + f", longer than the {{min_stop_us / US_PER_MIN:g}} minutes allowed."
        ),
        evidence={{"state": stop.state, "reason": stop.reason, "minutes": round(minutes, 2)}},
    )


async def analyse(ctx: Context) -> None:
    """Findings for what came since the last analysis (or the last ``window_h`` hours)."""
    min_stop_us = round(float(ctx.settings["min_stop_min"]) * US_PER_MIN)
    now = await ctx.now()
    since = await ctx.get_state("analysed_until")
    start = since if isinstance(since, int) else now - round(ctx.settings["window_h"] * 3.6e9)
    if start >= now:  # restarted with nothing new to read
        return
    for site in ctx.sites:
        states = await ctx.states(site, start, now)
        for stop in long_stops(states, min_stop_us):
            if stop.end_us < now:  # a stop still going on is reported once it ended
                await ctx.emit(finding_for(site, stop, min_stop_us))
    await ctx.set_state("analysed_until", now)
    await ctx.log("info", f"analysed {{start}}..{{now}} on {{len(ctx.sites)}} site(s)")


async def main(ctx: Context) -> None:
    """Analyse; a test or local run (``ctx.once``) stops there, an installation keeps
    analysing every ``interval_min`` minutes."""
    while True:
        await analyse(ctx)
        if ctx.once:
            return
        await asyncio.sleep(60 * float(ctx.settings["interval_min"]))
'''

_TEST = '''\
"""The logic of {id}, without a platform: ``pytest tests``."""

from __future__ import annotations

from andon.sdk import State
from {id}.app import finding_for, long_stops

MIN = 60_000_000


def test_only_stops_at_least_the_limit_are_found() -> None:
    states = [
        State("s/a/l/m1", 0, 5 * MIN, "down", "JAM"),
        State("s/a/l/m1", 5 * MIN, 30 * MIN, "running", ""),
        State("s/a/l/m1", 30 * MIN, 45 * MIN, "down", "SPINDLE"),
        State("s/a/l/m2", 0, 60 * MIN, "planned_stop", "break"),
    ]
    found = long_stops(states, 10 * MIN)
    assert [(s.machine, s.start_us) for s in found] == [("s/a/l/m1", 30 * MIN)]


def test_a_finding_says_what_and_how_long() -> None:
    stop = State("s/a/l/m1", 0, 40 * MIN, "down", "JAM")
    f = finding_for("s", stop, 10 * MIN)
    assert (f.type, f.machine, f.score) == ("long_stop", "s/a/l/m1", 1.0)
    assert "40 min" in f.title and "JAM" in f.explanation
'''

_README = """\
# {title}

An app for [andon](https://github.com/) made with `andon app new {id}`: it reports every stop
longer than `min_stop_min` minutes (a machine down). Change `{id}/app.py` to make it yours.

    andon app run .  --hours 24     # run it on the virtual factory, print its findings
    andon app test .                # the test run a catalog publishes
    pytest tests                    # your own tests of its logic

The manifest (`andon-app.yaml`), the SDK and the rules an app runs under are explained in
andon's `docs/apps.md`.
"""


_CONFTEST = '''"""Makes the app's package importable by its tests (pytest puts this directory on
sys.path)."""
'''


def scaffold(name: str, parent: Path, vendor: str = "me") -> Path:
    """Write a new app called ``name`` in ``parent/name``; ``ValueError`` when the name is
    not an app id or the directory exists."""
    app_id = name.replace("-", "_")
    if not _NAME.match(app_id):
        raise ValueError(
            f"app name {name!r}: 2-40 lowercase letters, digits, '_' or '-', starting with a letter"
        )
    from andon.apps.manifest import MANIFEST_FILE

    root = parent / app_id
    if root.exists():
        raise ValueError(f"{root} already exists")
    title = app_id.replace("_", " ").capitalize()
    fill = {"id": app_id, "title": title, "vendor": vendor}
    files = {
        MANIFEST_FILE: _MANIFEST,
        f"{app_id}/__init__.py": _INIT,
        f"{app_id}/app.py": _APP,
        "tests/test_app.py": _TEST,
        "README.md": _README,
        "conftest.py": _CONFTEST,
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.format(**fill), encoding="utf-8")
    from andon.apps.manifest import load_manifest

    load_manifest(root)  # what was written must be a valid app
    return root


@app.command("new")
def new(
    name: Annotated[str, typer.Argument(help="The app's id: lowercase letters, digits, _ or -")],
    directory: Annotated[
        Path, typer.Option("--dir", help="Where to create the app's directory")
    ] = Path("."),
    vendor: Annotated[str, typer.Option("--vendor", help="Who makes it")] = "me",
) -> None:
    """Scaffold an app (manifest, package, README, a test) that runs and passes as made."""
    try:
        root = scaffold(name, directory, vendor)
    except (ValueError, OSError, ModelError) as exc:
        fail(str(exc))
    out.print(f"[green]created[/] {root}", highlight=False, soft_wrap=True)
    out.print(f"  andon app run {root} --hours 24", highlight=False, soft_wrap=True)


# --- andon app run ------------------------------------------------------------------------------
def parse_settings(manifest: AppManifest, pairs: list[str]) -> dict[str, Any]:
    """The manifest's defaults with ``key=value`` pairs over them (the text of a string
    setting, else JSON when it parses as JSON, else text), checked against the settings
    schema; ``ValueError``."""
    values = manifest.settings_defaults()
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {pair!r}: expected key=value")
        kind = manifest.settings.get("properties", {}).get(key, {}).get("type")
        try:
            values[key] = raw if kind == "string" else json.loads(raw)
        except ValueError:
            values[key] = raw
    return manifest.validate_settings(values)


@dataclass
class LocalRun:
    """What a local run did: the app's exit, its findings and proposals (``sink``), the
    gateway's counts and the app's log and output."""

    manifest: AppManifest
    plant: Plant
    start_us: Micros
    end_us: Micros
    exit_code: int | None
    """``None`` when the app was stopped at the timeout."""
    seconds: float
    sink: MemorySink
    stats: dict[str, Any]
    logs: list[LogLine]
    output: str
    """The tail of the app's stdout and stderr."""
    sim_seconds: float = 0.0
    ingest: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "app": self.manifest.id,
            "version": self.manifest.version,
            "site": self.plant.site.id,
            "start_us": self.start_us,
            "end_us": self.end_us,
            "exit_code": self.exit_code,
            "seconds": round(self.seconds, 3),
            "sim_seconds": round(self.sim_seconds, 3),
            **self.sink.as_json(),
            "gateway": self.stats,
            "log": [{"at_us": x.at_us, "level": x.level, "message": x.message} for x in self.logs],
        }


async def run_local(
    app_dir: Path,
    plant: Plant,
    *,
    hours: float,
    seed: int = 1,
    settings: dict[str, Any] | None = None,
    timeout_s: float = 600.0,
    progress: Callable[[float], None] | None = None,
    work_dir: Path | None = None,
) -> LocalRun:
    """Simulate ``hours`` of ``plant``, then run the app at ``app_dir`` on it (see the
    module). ``ModelError`` for a bad manifest; ``ValueError`` for bad settings."""
    from andon.apps.manifest import load_manifest
    from andon.demo.run import DemoRun, default_start
    from andon.store.duckdb_store import DuckDBStore

    if hours <= 0:
        raise ValueError("hours must be positive")
    manifest = load_manifest(app_dir)
    checked = manifest.validate_settings(
        manifest.settings_defaults() if settings is None else settings
    )
    with contextlib.ExitStack() as stack:
        tmp = work_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="andon-")))
        store = DuckDBStore.open(tmp / "telemetry.duckdb")
        try:
            t0 = time.perf_counter()
            start = default_start(plant)
            run = DemoRun.create(plant, store, seed, start)
            total = hours * 3600.0
            t = 0.0
            while t < total:
                t = min(total, t + 3600.0)
                await run.advance(t)
                if progress is not None:
                    progress(t / total)
            await run.finish()
            sim_s = time.perf_counter() - t0
            end = start + round(total * 1e6)
            result = await _run_app(
                app_dir, manifest, plant, store, checked, start, end, timeout_s, tmp
            )
            result.sim_seconds = sim_s
            result.ingest = run.ingestor.stats.as_dict()
            return result
        finally:
            await store.close()


async def _run_app(
    app_dir: Path,
    manifest: AppManifest,
    plant: Plant,
    store: Any,
    settings: dict[str, Any],
    start: Micros,
    end: Micros,
    timeout_s: float,
    tmp: Path,
) -> LocalRun:
    from andon.apps.gateway import AppGateway, plant_sites
    from andon.apps.grant import AppGrant
    from andon.apps.sinks import MemorySink
    from andon.bus import InProcessBus

    grant = AppGrant(
        tenant_id=plant.tenant,
        instance_id=f"local-{manifest.id}",
        app_id=manifest.id,
        app_version=manifest.version,
        site_ids=frozenset({plant.site.id}),
        permissions=frozenset(manifest.permissions),
        settings=settings,
    )
    sink = MemorySink()
    bus = InProcessBus()
    gateway = AppGateway(
        grant, store, bus, sink, lambda: end, manifest=manifest, sites=plant_sites([plant]),
        once=True,
    )  # fmt: skip
    socket = tmp / "app.sock"
    await gateway.serve(socket)
    root = app_dir.resolve()
    env = {
        **os.environ,
        "ANDON_APP_SOCKET": str(socket),
        "ANDON_APP_ID": manifest.id,
        "ANDON_APP_VERSION": manifest.version,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        ),
    }
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "andon.sdk", manifest.entry,
        cwd=root, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    code: int | None
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
        code = proc.returncode
    except TimeoutError:
        proc.kill()
        output, _ = await proc.communicate()
        code = None
    finally:
        await gateway.close()
        await bus.close()
    text = output.decode("utf-8", "replace")
    return LocalRun(
        manifest, plant, start, end, code, time.perf_counter() - t0, sink,
        gateway.stats(), gateway.logs(), text[-4000:],
    )  # fmt: skip


def _local(us: Micros, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(us / 1e6, zone).strftime("%a %H:%M")


def _window(start: Micros, end: Micros, zone: ZoneInfo) -> str:
    """``Mon 06:00-07:30``, or ``Mon 22:00-Tue 06:00`` across midnight."""
    a, b = _local(start, zone), _local(end, zone)
    return f"{a}-{b[4:] if a[:3] == b[:3] else b}"


def _print_run(result: LocalRun) -> None:
    zone = ZoneInfo(result.plant.site.timezone)
    hours = (result.end_us - result.start_us) / 3.6e9
    span = f"{from_micros(result.start_us):%Y-%m-%d %H:%M}Z + {hours:g} h"
    findings = result.sink.findings
    m = result.manifest
    title = f"{m.id} {m.version}: {len(findings)} findings on {result.plant.site.id}, {span}"
    table = Table(title=title)
    table.add_column("machine", no_wrap=True)
    table.add_column("window (site time)", no_wrap=True)
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("finding", overflow="fold")
    for f in findings:
        x = f.finding
        table.add_row(
            (x.machine or x.site).rsplit("/", 1)[-1],
            _window(x.start_us, x.end_us, zone),
            f"{x.score:.2f}",
            f"[dim]{x.type}[/] {x.title}",
        )
    out.print(table)
    for w in result.sink.work_orders:
        out.print(
            f"work order proposed: {w.order.machine}: {w.order.title}",
            highlight=False,
            soft_wrap=True,
        )
    s = result.stats
    refused = {
        k: s[k]
        for k in (
            "forbidden",
            "not_found",
            "bad_request",
            "rate_limited",
            "internal",
            "protocol_errors",
        )
        if s.get(k)
    }
    out.print(
        f"requests {s['requests']}, findings {s['findings']}, work orders {s['work_orders']}"
        + (f", refused {refused}" if refused else ", none refused")
        + f"; app ran {result.seconds:.1f} s after {result.sim_seconds:.1f} s of simulation",
        highlight=False,
        soft_wrap=True,
    )


@app.command("run")
def run(
    path: Annotated[Path, typer.Argument(help="The app's directory (holding andon-app.yaml)")],
    hours: Annotated[
        float, typer.Option("--hours", help="Plant hours to simulate", min=0.01)
    ] = 24.0,
    seed: Annotated[int, typer.Option("--seed", help="The factory's random seed")] = 1,
    plant_file: PlantOpt = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="A setting, key=value (repeatable)")
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds the app may run", min=1)
    ] = 600.0,
    as_json: JsonOpt = False,
) -> None:
    """Run an app on the virtual factory with a local gateway and print its findings."""
    from andon.apps.manifest import load_manifest

    try:
        manifest = load_manifest(path)
    except ModelError as exc:
        fail(str(exc))
    try:
        settings = parse_settings(manifest, set_ or [])
    except ValueError as exc:
        fail(str(exc))
    plant = plant_or_exit(plant_file)
    result = asyncio.run(
        run_local(path, plant, hours=hours, seed=seed, settings=settings, timeout_s=timeout)
    )
    if as_json:
        out.print_json(json.dumps(result.as_json()))
    else:
        _print_run(result)
        for line in result.logs[-10:]:
            out.print(f"[dim]app {line.level}:[/] {line.message}", highlight=False, soft_wrap=True)
    if result.exit_code != 0:
        why = "timed out" if result.exit_code is None else f"exited {result.exit_code}"
        err.print(
            f"[bold red]the app {why}[/]; its last output:\n{result.output[-2000:]}",
            highlight=False,
        )
        raise typer.Exit(1)


@app.command("publish")
def publish(
    path: Annotated[Path, typer.Argument(help="The app's directory (holding andon-app.yaml)")],
    report: Annotated[
        Path, typer.Option("--report", help="The passing report of `andon app test PATH`")
    ],
    config: Annotated[
        Path | None,
        typer.Option("--config", help="andon serve's settings (YAML; ANDON_* override)"),
    ] = None,
) -> None:
    """Publish a tested app to the catalog of the platform database that `andon serve`
    (same settings) uses; the platform runs it from PATH, so keep PATH where it is."""
    from andon.api.deps import wall_clock
    from andon.apps.catalog import Catalog, Who
    from andon.apps.repository import SqlAppRepository
    from andon.platform import Conflict, Database, Invalid, Platform
    from andon.platform.config import ConfigError, load_settings

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        fail(str(exc))
    try:
        rep = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        fail(f"{report}: {exc}")
    if not isinstance(rep, dict):
        fail(f"{report}: a test report is a JSON object, not {type(rep).__name__}")

    async def go() -> dict[str, Any]:
        db = Database(settings.database_url)
        try:
            pf = Platform(
                db,
                wall_clock,
                secret_key=settings.secret_key,
                secrets_dir=settings.security.secrets_dir,
            )
            await pf.start()
            cat = Catalog(db, pf.audit, SqlAppRepository(db, wall_clock), wall_clock)
            return await cat.publish(path, rep, Who(f"cli:{os.environ.get('USER', '?')}"))
        finally:
            await db.close()

    try:
        got = asyncio.run(go())
    except (Conflict, Invalid) as exc:
        fail(f"{path}: {exc}")
    out.print(
        f"[green]ok[/] published {got['app_id']} {got['version']} ({got['source_dir']})",
        highlight=False,
        soft_wrap=True,
    )


# --- andon app test: the harness (andon.commands.app_test) ---------------------------------------
app_test.register(app)
