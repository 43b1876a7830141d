"""`andon demo`: the virtual factory run into the store and shown on the web dashboard
(default), in the terminal, headless, or read through its protocols by an edge agent. Parses
options and calls ``andon.demo``."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from andon.commands.common import err, site_time
from andon.commands.common import fail as _fail
from andon.commands.common import plant_or_exit as _load
from andon.model.plant import Plant
from andon.model.types import Micros

if TYPE_CHECKING:  # the demo is imported when it runs: ``andon --help`` stays fast
    from andon.demo.run import HeadlessSummary

__all__ = ["demo", "register"]

out = Console()


def _parse_start(text: str | None, plant: Plant) -> Micros | None:
    if text is None:
        return None
    return site_time(text, plant, "--start")


@contextmanager
def _data_dir(path: Path | None) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    tmp = Path(tempfile.mkdtemp(prefix="andon-demo-"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def demo(
    plant_file: Annotated[
        Path | None, typer.Option("--plant", help="Plant YAML (default: the built-in demo plant)")
    ] = None,
    headless: Annotated[
        bool, typer.Option(help="Simulate as fast as possible and print a summary")
    ] = False,
    terminal: Annotated[
        bool, typer.Option(help="Live view in the terminal instead of the web dashboard")
    ] = False,
    port: Annotated[
        int, typer.Option(min=1, max=65535, help="Web dashboard port on 127.0.0.1")
    ] = 8000,
    prefill: Annotated[
        float,
        typer.Option(min=0, help="Web: plant hours simulated at once before going live"),
    ] = 2.0,
    hours: Annotated[
        float | None,
        typer.Option(
            help="Plant hours to simulate (headless default 24; live default: until Ctrl-C)"
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same run")] = 7,
    speed: Annotated[
        float | None,
        typer.Option(
            help="Live: plant seconds per wall second (default 60; 1 with --via protocols)"
        ),
    ] = None,
    via: Annotated[
        str,
        typer.Option(
            help="direct: the factory's batches go straight to ingest; protocols: read "
            "through its OPC UA, Modbus, Sparkplug B and MTConnect servers by an edge agent "
            "(with --terminal, or --headless for --hours of wall time)"
        ),
    ] = "direct",
    start: Annotated[
        str | None,
        typer.Option(
            help="Plant start time, ISO (site-local if no offset); default Mon 2026-01-05 06:00"
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Keep the store and ground truth here (default: a temporary directory)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Headless: print JSON")] = False,
) -> None:
    """Run the virtual factory into the store and serve the web dashboard on it (default), or
    show a live terminal view (--terminal), or simulate headless."""
    from andon.store.duckdb_store import DuckDBStore

    plant = _load(plant_file)
    t0 = _parse_start(start, plant)
    if hours is not None and hours <= 0:
        _fail("--hours must be positive")
    if speed is not None and speed <= 0:
        _fail("--speed must be positive")
    if headless and terminal:
        _fail("--headless and --terminal exclude each other")
    if via not in ("direct", "protocols"):
        _fail(f"--via must be direct or protocols, not {via!r}")
    if via == "protocols":
        if not (headless or terminal):
            _fail(
                "--via protocols runs with --terminal (live view) or --headless --hours H; "
                "the web dashboard demo reads the factory in process"
            )
        if headless and hours is None:
            _fail("--via protocols --headless needs --hours (wall-clock hours to run)")
        if start is not None:
            _fail("--via protocols runs from now: protocols stamp values with their read time")
        with _data_dir(data_dir) as d:
            _protocol_demo(plant, d, seed, speed or 1.0, hours, headless, as_json)
        return
    speed = 60.0 if speed is None else speed
    with _data_dir(data_dir) as d:
        if not headless and not terminal:
            _web_demo(plant_file, d, seed, speed, t0, prefill, hours, port)
            return
        if headless:
            summary = asyncio.run(
                _headless(
                    plant, d, seed, hours or 24.0, t0, not as_json, keep_truth=data_dir is not None
                )
            )
            if as_json:
                sys.stdout.write(json.dumps(summary.as_dict(), indent=2, ensure_ascii=False) + "\n")
            else:
                _print_summary(summary)
            return
        from rich.live import Live

        from andon.demo.run import DemoRun, run_live
        from andon.demo.terminal import KpiView, render

        async def live() -> None:
            store = DuckDBStore.open(d / "telemetry.duckdb")
            kpis = KpiView(store)
            try:
                with Live(console=out, refresh_per_second=4, screen=False) as view:

                    async def tick(run: DemoRun) -> None:
                        view.update(render(run, await kpis.refresh(run), speed))

                    await run_live(
                        plant,
                        store,
                        seed,
                        speed,
                        tick,
                        start=t0,
                        until_s=hours * 3600.0 if hours else None,
                    )
            finally:
                await store.close()

        try:
            asyncio.run(live())
        except KeyboardInterrupt:
            out.print("stopped.")


def _protocol_demo(
    plant: Plant,
    d: Path,
    seed: int,
    speed: float,
    hours: float | None,
    headless: bool,
    as_json: bool,
) -> None:
    """The factory read end to end through its protocol servers by a real edge agent."""
    from rich.live import Live

    from andon.demo.protocols import ProtocolDemo, run_via_protocols
    from andon.demo.terminal import KpiView, render
    from andon.store.duckdb_store import DuckDBStore

    async def go(view: Live | None) -> dict[str, Any]:
        store = DuckDBStore.open(d / "telemetry.duckdb")
        kpis = KpiView(store)

        async def tick(demo: ProtocolDemo) -> None:
            if view is not None:
                view.update(render(demo.run, await kpis.refresh(demo.run), speed))

        try:
            return await run_via_protocols(
                plant,
                store,
                seed,
                d,
                duration_s=hours * 3600.0 if hours else None,
                speed=speed,
                on_tick=tick,
            )
        finally:
            await store.close()

    try:
        if headless:
            with err.status("reading the factory through its protocols"):
                summary = asyncio.run(go(None))
        else:
            with Live(console=out, refresh_per_second=4, screen=False) as view:
                summary = asyncio.run(go(view))
    except KeyboardInterrupt:
        out.print("stopped.")
        return
    except OSError as exc:
        _fail(f"protocol demo: {exc} (is Mosquitto running on 127.0.0.1:1883?)")
        return
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n")
        return
    from rich.table import Table

    t = Table(title=f"{summary['site']}: read through protocols by edge {summary['edge']}")
    for c in ("protocol", "signals", "points read"):
        t.add_column(c, justify="right" if c != "protocol" else "left")
    for name, n in summary["signals"].items():
        t.add_row(name, str(n), str(summary["points_read"].get(name, 0)))
    out.print(t)
    svc = summary["service"]
    out.print(
        f"stored {svc['points_stored']} points in {svc['frames_stored']} frames "
        f"({svc['points_duplicate']} duplicate points); drained: {summary['drained']}"
    )


def _web_demo(
    plant_file: Path | None,
    d: Path,
    seed: int,
    speed: float,
    start: Micros | None,
    prefill: float,
    hours: float | None,
    port: int,
) -> None:
    from andon.demo.web import DemoError, DemoOptions, builtin_plant_yaml, run_cli

    text = builtin_plant_yaml() if plant_file is None else plant_file.read_text(encoding="utf-8")
    options = DemoOptions(
        text, d, seed=seed, speed=speed, start=start, prefill_h=prefill, hours=hours, port=port
    )
    try:
        run_cli(options, out)
    except DemoError as exc:
        _fail(str(exc))


async def _headless(
    plant: Plant,
    d: Path,
    seed: int,
    hours: float,
    start: Micros | None,
    show_progress: bool,
    keep_truth: bool,
) -> HeadlessSummary:
    from rich.progress import Progress

    from andon.demo.run import run_headless
    from andon.store.duckdb_store import DuckDBStore

    store = DuckDBStore.open(d / "telemetry.duckdb")
    truth = d / "ground_truth.jsonl" if keep_truth else None
    try:
        with Progress(console=err, transient=True, disable=not err.is_terminal) as bar:
            task = bar.add_task("simulating", total=1.0)
            return await run_headless(
                plant,
                store,
                seed,
                hours,
                start,
                progress=lambda x: bar.update(task, completed=x),
                ground_truth_file=truth,
            )
    finally:
        await store.close()


def _print_summary(run: HeadlessSummary) -> None:
    from rich.table import Table

    t = Table(title=f"{run.site}: {run.start_iso} → {run.end_iso}")
    for c in (
        "machine",
        "running h",
        "down h",
        "good",
        "scrap",
        "A",
        "P",
        "Q",
        "OEE",
        "kWh",
        "kWh/part",
    ):
        t.add_column(c, justify="left" if c == "machine" else "right")

    def pct(x: float | None) -> str:
        return "–" if x is None else f"{100 * x:.1f}%"

    for m in run.summary.machines:
        s = m.states_s
        t.add_row(
            m.machine,
            f"{s['running'] / 3600:.2f}",
            f"{s['down'] / 3600:.2f}",
            str(m.parts.good),
            str(m.parts.scrap),
            pct(m.availability),
            pct(m.performance),
            pct(m.quality),
            pct(m.oee),
            f"{m.kwh or 0:.1f}",
            f"{m.kwh_per_good_part or 0:.3f}",
        )
    out.print(t)
    for ln in run.summary.lines:
        rate = ln.throughput_per_h
        per_h = "–" if rate is None else f"{rate:.1f}"
        out.print(f"{ln.line}: {ln.good_out} good parts out, {per_h}/planned h")
    out.print(f"{len(run.faults)} faults injected (ground truth); ingest: {run.ingest.as_dict()}")


def register(app: typer.Typer) -> None:
    """Add ``andon demo`` to the top-level ``andon`` app."""
    app.command("demo")(demo)
