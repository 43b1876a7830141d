"""The ``andon`` command line. Thin: parses options, calls the packages, prints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from andon.commands import app as app_commands
from andon.commands import demo as demo_commands
from andon.commands import edge as edge_commands
from andon.commands import kpi as kpi_commands
from andon.commands import pdm as pdm_commands
from andon.commands import platform as platform_commands
from andon.commands import twin as twin_commands
from andon.commands.common import plant_or_exit as _load

__all__ = ["app", "main"]

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="andon: the open smart-manufacturing platform."
)
model_app = typer.Typer(no_args_is_help=True, help="Asset model files.")
app.add_typer(model_app, name="model")
app.add_typer(kpi_commands.app, name="kpi")
app.add_typer(twin_commands.app, name="twin")
app.add_typer(edge_commands.app, name="edge")
app.add_typer(app_commands.app, name="app")
app.add_typer(pdm_commands.app, name="pdm")
platform_commands.register(app)
demo_commands.register(app)

out = Console()


@model_app.command("check")
def model_check(file: Annotated[Path, typer.Argument(help="Plant YAML file")]) -> None:
    """Validate a plant file; print what it holds, or one error with file, line and field."""
    plant = _load(file)
    n_sig = len(plant.signal_paths())
    out.print(
        f"[green]ok[/] {file}: site {plant.site.id!r}, {len(plant.site.areas)} areas, "
        f"{len(plant.lines())} lines, {len(plant.machines())} machines, "
        f"{n_sig} signals",
        highlight=False,
        soft_wrap=True,
    )


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
