"""``andon app test PATH [--json out.json] [--html out.html]``: the app test harness.

This module is the composition root of a test run: it makes the standard datasets from the
virtual factory (through ``andon.demo``'s wiring: factory → ingest → an in-memory store,
with the factory's ground truth) and hands them to ``andon.apps.testing.run_app_test``,
which runs the app sandboxed on each and writes the report.

The standard datasets (``standard_datasets``): the built-in demo plant, seed 7, 8 hours
(the first: also the determinism, restart and probe runs); the demo plant, seed 19, 4 hours;
and a small two-machine line with frequent failures, seed 3, 8 hours. The harness adds the
damaged variants (a gap and NaN values) itself.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from andon.model.types import Micros, to_micros

if TYPE_CHECKING:  # the harness, the demo and the store load when a command runs, not with the CLI
    from andon.apps.testing import AppTestReport, Dataset
    from andon.model.plant import Plant

__all__ = ["SMALL_LINE", "register", "run_test", "standard_datasets"]

out = Console()

SMALL_LINE = """\
tenant: harness
site:
  id: small
  name: Small line
  timezone: UTC
  calendar:
    shifts: [{name: all, start: "00:00", end: "00:00"}]
  areas:
    - id: a
      lines:
        - id: l1
          products: [{id: p, lot_size: 50}]
          buffers: [{id: b1, capacity: 5, from: [press], to: [weld]}]
          machines:
            - id: press
              type: generic
              ideal_cycle_s: {p: 40}
              signals:
                - {id: power, type: power, sample_period_s: 5}
                - {id: energy, type: energy, sample_period_s: 30}
                - {id: vibration, type: vibration, nominal: 2.0, sample_period_s: 5}
              sim:
                failure_modes:
                  - {code: BEARING, description: Bearing failure, mtbf_h: 3, mttr_min: 20}
                  - {code: JAM, description: Jam, mtbf_h: 1, mttr_min: 3}
                power: {offline_kw: 0.2, idle_kw: 3.0, running_kw: 9.0, down_kw: 0.8}
            - id: weld
              type: generic
              ideal_cycle_s: {p: 50}
              signals:
                - {id: power, type: power, sample_period_s: 5}
                - {id: energy, type: energy, sample_period_s: 30}
              sim:
                failure_modes:
                  - {code: TIP_WEAR, description: Electrode tip worn out, mtbf_h: 4, mttr_min: 15}
                power: {offline_kw: 0.2, idle_kw: 2.0, running_kw: 12.0, down_kw: 0.5}
"""
"""A second plant: two machines, a buffer, failures every few hours, power and energy."""


def _us(iso: str) -> Micros:
    return to_micros(datetime.fromisoformat(iso.replace("Z", "+00:00")))


async def _simulate(name: str, plant: Plant, seed: int, hours: float) -> Dataset:
    from andon.apps.testing import Dataset, GroundTruthFault, GroundTruthState
    from andon.demo.run import DemoRun, default_start
    from andon.store import open_store

    store = open_store(None)
    start = default_start(plant)
    run = DemoRun.create(plant, store, seed, start)
    await run.advance(hours * 3600.0)
    await run.finish()
    faults = tuple(
        GroundTruthFault(str(g["machine"]), _us(g["t"]), _us(g["end"]), str(g.get("code", "")))
        for g in run.factory.ground_truth
        if g.get("kind") == "fault" and "machine" in g and "end" in g
    )
    states = tuple(
        GroundTruthState(str(g["machine"]), _us(g["t"]), str(g["state"]))
        for g in run.factory.ground_truth
        if g.get("kind") == "state"
    )
    return Dataset(name, plant, store, start, start + round(hours * 3600e6), faults, states)


async def standard_datasets(scale: float = 1.0) -> list[Dataset]:
    """The standard datasets (see the module); ``scale`` shortens them (tests)."""
    from andon.demo.web import builtin_plant_yaml
    from andon.model.loader import parse_plant

    demo = parse_plant(builtin_plant_yaml(), "<demo>")
    small = parse_plant(SMALL_LINE, "<small line>")
    return [
        await _simulate(f"demo plant, seed 7, {8 * scale:g} h", demo, 7, 8 * scale),
        await _simulate(f"demo plant, seed 19, {4 * scale:g} h", demo, 19, 4 * scale),
        await _simulate(f"small line, seed 3, {8 * scale:g} h", small, 3, 8 * scale),
    ]


async def run_test(
    path: Path, *, scale: float = 1.0, timeout_s: float = 60.0, quiet: bool = False
) -> AppTestReport:
    """Make the standard datasets and test the app at ``path`` on them."""
    from andon.apps.testing import run_app_test

    def say(what: str) -> None:
        if not quiet:
            out.print(f"[dim]· {what}[/]", highlight=False)

    say("simulating the standard datasets")
    datasets = await standard_datasets(scale)
    try:
        return await run_app_test(path, datasets, timeout_s=timeout_s, progress=say)
    finally:
        for d in datasets:
            await d.store.close()


def register(app: typer.Typer) -> None:
    """Add ``test`` to ``andon app``."""
    app.command("test")(_command)


def _command(
    path: Annotated[Path, typer.Argument(help="The app's directory (holding andon-app.yaml)")],
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the report as JSON here")
    ] = None,
    html_out: Annotated[
        Path | None, typer.Option("--html", help="Write the report as an HTML page here")
    ] = None,
    scale: Annotated[
        float, typer.Option("--scale", help="Shorten (<1) or lengthen the datasets", min=0.05)
    ] = 1.0,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds one run of the app may take", min=1)
    ] = 60.0,
) -> None:
    """Test an app: manifest, sandbox, replays with ground truth, claims measured."""
    from andon.apps.testing import render_html

    report = asyncio.run(run_test(path, scale=scale, timeout_s=timeout))
    if json_out is not None:
        json_out.write_text(json.dumps(report.as_dict(), indent=2, sort_keys=True) + "\n")
    if html_out is not None:
        html_out.write_text(render_html(report), encoding="utf-8")
    for c in report.checks:
        mark = "[green]pass[/]" if c.ok else "[bold red]FAIL[/]"
        out.print(f"{mark} {c.name}: {c.detail}", highlight=False, soft_wrap=True)
    for cl in report.claims:
        mark = "[green]holds[/]" if cl["ok"] else "[bold red]does not hold[/]"
        out.print(f"claim {cl['metric']} ({cl['finding_type']}): {mark}; {cl['verdict']}")
    verdict = "[green]passed[/]" if report.ok else "[bold red]failed[/]"
    out.print(f"{report.app_id or path}: {verdict} in {report.duration_s:.1f} s", highlight=False)
    if not report.ok:
        raise typer.Exit(1)
