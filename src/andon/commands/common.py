"""What every command shares: consoles, the one-line error exit, the plant file, site-local
times and the data directory's store."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.resources import as_file, files
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn
from zoneinfo import ZoneInfo

import typer
from rich.console import Console

from andon.model.loader import ModelError, load_plant
from andon.model.plant import Plant
from andon.model.types import Micros, to_micros

if TYPE_CHECKING:
    from andon.store.duckdb_store import DuckDBStore

__all__ = [
    "DataOpt",
    "FromOpt",
    "JsonOpt",
    "PlantOpt",
    "ToOpt",
    "err",
    "fail",
    "open_data_store",
    "plant_or_exit",
    "site_time",
]

err = Console(stderr=True)

PlantOpt = Annotated[
    Path | None, typer.Option("--plant", help="Plant YAML (default: the built-in demo plant)")
]
DataOpt = Annotated[Path, typer.Option("--data-dir", help="Directory holding telemetry.duckdb")]
FromOpt = Annotated[str, typer.Option("--from", help="Start, ISO (site-local if no offset)")]
ToOpt = Annotated[str, typer.Option("--to", help="End (exclusive), ISO")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON")]


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one error line on stderr and exit (2: bad input)."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def plant_or_exit(path: Path | None) -> Plant:
    """The plant file (or the built-in demo plant); a bad file exits 2 with one line."""
    try:
        if path is None:
            with as_file(files("andon.sim") / "plants" / "demo.yaml") as p:
                return load_plant(p)
        return load_plant(path)
    except ModelError as exc:
        fail(str(exc))


def site_time(text: str, plant: Plant, option: str) -> Micros:
    """An ISO date-time; without an offset it is the site's local time. A local time that
    the clocks skip (spring forward) or pass twice (fall back) is refused, not shifted."""
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        fail(f"{option}: {text!r} is not an ISO date-time such as 2026-01-05T06:00")
    if dt.tzinfo is None:
        zone = ZoneInfo(plant.site.timezone)
        early, late = dt.replace(tzinfo=zone, fold=0), dt.replace(tzinfo=zone, fold=1)
        if early.utcoffset() != late.utcoffset():
            # a gap gives back another wall time on the round trip; a fold the same one twice
            back = early.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
            if back != dt.replace(fold=0):
                fail(
                    f"{option}: {text!r} does not exist in {zone.key} (the clocks skip it); "
                    "give a time outside the gap, or one with an offset"
                )
            offsets = " or ".join(x.isoformat(timespec="minutes") for x in (early, late))
            fail(
                f"{option}: {text!r} is ambiguous in {zone.key} (the clocks pass it twice); "
                f"give the time with an offset: {offsets}"
            )
        dt = early
    return to_micros(dt)


def open_data_store(data_dir: Path) -> DuckDBStore:
    """The store a run left in ``data_dir``; a missing one exits 2 and says how to make it."""
    import duckdb

    from andon.store.duckdb_store import DuckDBStore

    db = data_dir / "telemetry.duckdb"
    if not db.exists():
        fail(f"no telemetry store at {db} (run `andon demo --headless --data-dir {data_dir}`)")
    try:
        return DuckDBStore.open(db)
    except (duckdb.Error, OSError) as exc:
        fail(f"{db} cannot be opened as a telemetry store: {str(exc).splitlines()[0]}")
