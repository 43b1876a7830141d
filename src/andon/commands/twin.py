"""`andon twin ...` sub-commands: calibrate a twin from history, run it (with a scenario),
find the bottleneck of a line, allocate buffers.

The data directory is what ``andon demo --data-dir D`` (or a platform) leaves:
``D/telemetry.duckdb``. Times are ISO date-times in the site's time zone unless they carry
an offset. Thin: parsing, progress bars (stderr) and printing; the work is in ``andon.twin``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from andon.commands.common import DataOpt, FromOpt, JsonOpt, PlantOpt, ToOpt, err
from andon.commands.common import fail as _fail
from andon.commands.common import open_data_store as _store
from andon.commands.common import plant_or_exit as _plant
from andon.commands.common import site_time as _time
from andon.model.plant import Line, Plant

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, help="Simulation twin: calibrate, run, bottleneck.")
out = Console()

LineOpt = Annotated[str, typer.Option("--line", help="Line id")]


def _line(plant: Plant, line_id: str | None) -> Line:
    lines = [ln for _, ln in plant.lines()]
    if line_id is None:
        if len(lines) != 1:
            _fail("the plant has several lines; name one with --line")
        return lines[0]
    found = [ln for ln in lines if ln.id == line_id]
    if not found:
        _fail(f"no line {line_id!r}; lines: {', '.join(ln.id for ln in lines)}")
    return found[0]


@contextmanager
def _bar(total: int, what: str, quiet: bool = False) -> Iterator[Any]:
    cols = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*cols, console=err, transient=True, disable=quiet) as bar:
        task = bar.add_task(what, total=total)

        def step(done: int) -> None:
            bar.update(task, completed=done)

        yield step


@app.command()
def calibrate(
    line: LineOpt,
    data_dir: DataOpt,
    start: FromOpt,
    end: ToOpt,
    plant_file: PlantOpt = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write the twin YAML here (default: stdout)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fit the line's twin from its stored state timelines and part counters."""
    from andon.twin.calibrate import calibrate_line

    plant = _plant(plant_file)
    ln = _line(plant, line)
    a, b = _time(start, plant, "--from"), _time(end, plant, "--to")

    async def go() -> Any:
        store = _store(data_dir)
        try:
            return await calibrate_line(store, plant, ln.id, a, b)
        finally:
            await store.close()

    cal = asyncio.run(go())
    text = cal.to_yaml()
    if out_file is not None:
        out_file.write_text(text, encoding="utf-8")
        err.print(f"[green]wrote[/] {out_file}")
    if as_json:
        print(json.dumps(cal.report, indent=2, default=str))
    elif out_file is None:
        print(text, end="")


@app.command("run")
def run_twin(
    twin: Annotated[Path, typer.Argument(help="Twin (plant) YAML")],
    scenario: Annotated[
        Path | None, typer.Option("--scenario", help="Scenario YAML to compare with the twin")
    ] = None,
    line: Annotated[str | None, typer.Option("--line", help="Line id")] = None,
    reps: Annotated[int, typer.Option("--reps", min=1, help="Replications")] = 20,
    hours: Annotated[
        float, typer.Option("--hours", help="Simulated hours per replication")
    ] = 168.0,
    warmup_h: Annotated[float, typer.Option("--warmup-h", help="Hours not counted")] = 0.0,
    auto_warmup: Annotated[
        bool, typer.Option("--auto-warmup", help="Warm-up by MSER-5 on pilot runs")
    ] = False,
    seed: Annotated[int, typer.Option("--seed")] = 1,
    engine: Annotated[str, typer.Option("--engine", help="auto, fast or events")] = "auto",
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Processes for event-model replications")
    ] = 1,
    value_per_part: Annotated[
        float | None, typer.Option("--value-per-part", help="Contribution of a good part")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Replicate the twin; with --scenario, compare (common random numbers, priced)."""
    from andon.twin.experiment import apply_scenario, compare, load_scenario, warmup_hours
    from andon.twin.run import replicate

    if engine not in ("auto", "fast", "events"):
        _fail("--engine must be auto, fast or events")
    plant = _plant(twin)
    sc = load_scenario(scenario) if scenario is not None else None
    ln = _line(plant, line or (sc.line if sc else None))
    eng: Any = engine
    if auto_warmup:
        warmup_h = warmup_hours(plant, ln.id, hours, min(reps, 5), seed)
        err.print(f"warm-up (MSER-5): {warmup_h:g} h")
    if sc is None:
        with _bar(reps, f"twin {ln.id}", as_json) as step:
            res = replicate(plant, ln.id, hours, reps, seed, warmup_h, eng, step, workers=workers)
        doc: dict[str, Any] = res.as_dict()
        doc["ops_per_s"] = round(res.ops_per_s)
        if as_json:
            print(json.dumps(doc))
        else:
            tp = res.throughput()
            out.print(
                f"line {ln.id}: {tp.mean:.3f} ± {tp.half_width:.3f} parts/h "
                f"(95 %, {reps} reps × {hours:g} h, {doc['engine']})"
            )
        return
    other = apply_scenario(plant, ln.id, sc)
    with _bar(2 * reps, f"{sc.name} vs base", as_json) as step:
        done = [0]

        def tick(_: int) -> None:
            done[0] += 1
            step(done[0])

        c = compare(
            plant, other, ln.id, hours, reps, seed, warmup_h, value_per_part, eng, tick, workers
        )
    if as_json:
        print(json.dumps({"line": ln.id, "scenario": sc.name, "reps": reps, **c.as_dict()}))
        return
    d, r = c.difference, c.relative
    out.print(
        f"{sc.name}: throughput {d.mean:+.3f} ± {d.half_width:.3f} parts/h "
        f"({r.mean:+.2f} % ± {r.half_width:.2f} %)"
    )
    if c.value_per_month is not None:
        v = c.value_per_month
        out.print(f"worth {v.mean:,.0f} ± {v.half_width:,.0f} per month")


@app.command()
def bottleneck(
    line: LineOpt,
    data_dir: DataOpt,
    start: FromOpt,
    end: ToOpt,
    plant_file: PlantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Bottleneck of a line from stored state timelines: active-period (average and
    momentary), turning point, and utilisation for comparison."""
    from andon.twin.bottleneck import analyse

    plant = _plant(plant_file)
    ln = _line(plant, line)
    area = next(a for a, x in plant.lines() if x.id == ln.id)
    paths = [plant.machine_path(area, ln, m) for m in ln.machines]
    a, b = _time(start, plant, "--from"), _time(end, plant, "--to")

    async def go() -> Any:
        store = _store(data_dir)
        try:
            return await store.read_states(plant.tenant, paths, a, b)
        finally:
            await store.close()

    report = analyse(asyncio.run(go()), a, b, paths)
    doc = report.as_dict()
    if as_json:
        print(json.dumps(doc))
        return
    for method, name in doc["bottleneck"].items():  # type: ignore[attr-defined]
        out.print(f"{method:>24}: {name}")
    out.print("machine: active · sole · shifting · utilisation")
    for m, v in doc["per_machine"].items():  # type: ignore[attr-defined]
        out.print(
            f"  {m}: {v['active']:.3f} · {v['sole']:.3f} · {v['shifting']:.3f} · "
            f"{v['utilisation']:.3f}"
        )


@app.command("buffers")
def buffers(
    twin: Annotated[Path, typer.Argument(help="Twin (plant) YAML")],
    total: Annotated[int, typer.Option("--total", help="Buffer places to allocate")],
    line: Annotated[str | None, typer.Option("--line", help="Line id")] = None,
    reps: Annotated[int, typer.Option("--reps", min=1)] = 10,
    hours: Annotated[float, typer.Option("--hours")] = 500.0,
    seed: Annotated[int, typer.Option("--seed")] = 1,
    as_json: JsonOpt = False,
) -> None:
    """Allocate a total buffer budget over the line's buffers for the most throughput."""
    from andon.twin.experiment import optimise_buffers

    plant = _plant(twin)
    ln = _line(plant, line)
    with err.status("searching allocations"):
        alloc, est = optimise_buffers(plant, ln.id, total, hours, reps, seed)
    doc = {"line": ln.id, "total": total, "allocation": alloc, "throughput_per_h": est.as_dict()}
    if as_json:
        print(json.dumps(doc))
    else:
        out.print(f"{alloc}: {est.mean:.3f} ± {est.half_width:.3f} parts/h")
