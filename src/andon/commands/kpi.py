"""`andon kpi ...` sub-commands: OEE, downtime, energy and losses over a data directory.

The data directory is what ``andon demo --data-dir D`` (or a platform) leaves: ``D/telemetry.
duckdb`` and, for operator reason entries, ``D/reasons.duckdb``. Times are ISO date-times in
the site's time zone unless they carry an offset; a local time that a DST change skips or
repeats is refused. Thin: parsing and printing only; the figures come from ``andon.kpi``.

Exit codes: 0 figures printed or written; 1 the store holds no data for the selection in
the range (said on stderr); 2 bad input (an option, the plant file, the store file or
``--out``), one ``error:`` line on stderr naming it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast
from zoneinfo import ZoneInfo

import typer
from rich.console import Console

from andon.model.plant import Plant
from andon.model.types import Micros, from_micros, to_micros

if TYPE_CHECKING:
    from andon.kpi.periods import Period
from andon.commands.common import DataOpt, FromOpt, JsonOpt, PlantOpt, ToOpt, open_data_store
from andon.commands.common import fail as _fail
from andon.commands.common import plant_or_exit as _plant
from andon.commands.common import site_time as _time

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, help="KPIs: OEE, downtime, energy, cost of losses.")
out = Console()
_T = TypeVar("_T")

LineOpt = Annotated[str | None, typer.Option("--line", help="Line id or path")]
MachineOpt = Annotated[str | None, typer.Option("--machine", help="Machine id or path")]
CsvOpt = Annotated[bool, typer.Option("--csv", help="Print CSV")]


def _period(text: str) -> Period:
    if text not in ("all", "day", "week", "shift"):
        _fail("--period must be all, day, week or shift")
    return cast("Period", text)


def _range(plant: Plant, start: str, end: str) -> tuple[Micros, Micros]:
    a, b = _time(start, plant, "--from"), _time(end, plant, "--to")
    if b <= a:
        _fail("--to must be after --from")
    return a, b


@contextmanager
def _store(data_dir: Path) -> Iterator[Any]:
    store = open_data_store(data_dir)
    try:
        yield store
    finally:
        asyncio.run(store.close())


def _run(make: Callable[[], Awaitable[_T]]) -> _T:
    return asyncio.run(make())  # type: ignore[arg-type]


def _model(micro_stop_s: float) -> Any:
    from andon.kpi.timeline import TimeModel

    if not micro_stop_s >= 0:
        _fail(f"--micro-stop-s must be a number of seconds, 0 or more (got {micro_stop_s:g})")
    return TimeModel(micro_stop_s=micro_stop_s)


def _require_data(
    store: Any, plant: Plant, sel: Any, start: Micros, end: Micros, data_dir: Path
) -> None:
    """Exit 1 with one line on stderr when the store holds nothing for the selection in
    ``[start, end)``: no state interval (closed or still open) and no part."""
    from andon.kpi.api import read_states_live

    async def probe() -> bool:
        parts = await store.read_parts(plant.tenant, sel.machines, start, end)
        if len(parts):
            return True
        return bool(len(await read_states_live(store, plant.tenant, sel.machines, start, end)))

    if not _run(probe):
        zone = ZoneInfo(plant.site.timezone)
        a, b = (from_micros(t).astimezone(zone).isoformat(timespec="minutes") for t in (start, end))
        what = (
            "the plant" if len(sel.machines) == len(plant.machines()) else ", ".join(sel.machines)
        )
        _fail(f"no data for {what} from {a} to {b} in {data_dir / 'telemetry.duckdb'}", 1)


def _selection(plant: Plant, line: str | None, machine: str | None) -> Any:
    from andon.kpi.api import select

    try:
        return select(plant, line, machine)
    except KeyError as exc:
        _fail(str(exc.args[0]))


def _emit(
    rows: list[dict[str, Any]], as_json: bool, as_csv: bool, title: str, cols: list[str]
) -> None:
    from andon.kpi.report import to_csv

    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
        return
    if as_csv:
        sys.stdout.write(to_csv(rows))
        return
    from rich.table import Table

    t = Table(title=title)
    for c in cols:
        t.add_column(c, justify="left" if c in ("machine", "bucket", "loss", "line") else "right")
    for r in rows:
        t.add_row(*[_fmt(r.get(c)) for c in cols])
    out.print(t)


def _yaml(path: Path, option: str) -> dict[str, Any]:
    from andon.model.loader import ModelError, safe_load

    try:
        doc = safe_load(path.read_text(encoding="utf-8"), str(path))
    except (OSError, ModelError) as exc:
        _fail(f"{option} {path}: {exc}")
    if not isinstance(doc, dict):
        _fail(f"{option} {path}: expected a mapping")
    return doc


def _tree(plant: Plant, path: Path | None) -> Any:
    """The reason tree: the file's, or the default; the plant's failure modes are added."""
    from andon.kpi.reasons import ReasonTree

    if path is None:
        return ReasonTree.default().with_failure_modes(plant)
    try:
        return ReasonTree.from_dict(_yaml(path, "--reasons")).with_failure_modes(plant)
    except (AttributeError, ValueError) as exc:
        _fail(f"--reasons {path}: {exc}")


def _fmt(v: object) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 10 else f"{v:,.1f}"
    return str(v)


@app.command("oee")
def oee_cmd(
    start: FromOpt,
    end: ToOpt,
    data_dir: DataOpt = Path("."),
    plant_file: PlantOpt = None,
    line: LineOpt = None,
    machine: MachineOpt = None,
    period: Annotated[str, typer.Option(help="all, day, week or shift")] = "all",
    by_product: Annotated[bool, typer.Option("--by-product", help="Split by product")] = False,
    micro_stop_s: Annotated[float, typer.Option(help="Micro-stop threshold, seconds")] = 300.0,
    lines: Annotated[bool, typer.Option("--lines", help="Line OEE instead of machines")] = False,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
) -> None:
    """OEE (ISO 22400) and the loss waterfall per machine and period, or per line."""
    from andon.kpi import api

    plant = _plant(plant_file)
    a, b = _range(plant, start, end)
    per = _period(period)
    sel = _selection(plant, line, machine)
    model = _model(micro_stop_s)
    with _store(data_dir) as store:
        _require_data(store, plant, sel, a, b, data_dir)
        table = _run(
            lambda: api.oee(
                store,
                plant,
                a,
                b,
                period=per,
                by_product=by_product or lines,
                model=model,
                selection=sel,
            )
        )
    if lines:
        rows = [x.as_dict() for x in api.line_oee(table, plant)]
        cols = ["line", "bucket", "oee_average", "oee_bottleneck", "good_out"]
    else:
        rows = table.rows()
        cols = ["machine", "bucket", "availability", "performance", "quality", "oee"]
        cols += ["planned_busy_s", "breakdown_s", "setup_s", "minor_stop_s", "idle_s"]
        cols += ["no_data_s", "speed_loss_s", "production_reject_s"]
        cols += ["outside_plan_running_s", "outside_plan_produced"]
        if by_product:
            cols.insert(2, "product")
    _emit(rows, as_json, as_csv, "OEE", cols)


@app.command("downtime")
def downtime_cmd(
    start: FromOpt,
    end: ToOpt,
    data_dir: DataOpt = Path("."),
    plant_file: PlantOpt = None,
    line: LineOpt = None,
    machine: MachineOpt = None,
    reliability: Annotated[
        bool, typer.Option("--reliability", help="MTBF/MTTR/MTTA instead of the Pareto")
    ] = False,
    reasons_file: Annotated[
        Path | None,
        typer.Option("--reasons", help="Reason tree YAML: categories › reasons, codes → reasons"),
    ] = None,
    planned: Annotated[bool, typer.Option("--planned", help="Include planned stops")] = False,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
) -> None:
    """Downtime Pareto by category › reason (with unexplained downtime), or reliability."""
    from andon.kpi import api
    from andon.kpi.reasons import ReasonLog

    plant = _plant(plant_file)
    a, b = _range(plant, start, end)
    sel = _selection(plant, line, machine)
    log = ReasonLog(data_dir / "reasons.duckdb") if (data_dir / "reasons.duckdb").exists() else None
    try:
        with _store(data_dir) as store:
            _require_data(store, plant, sel, a, b, data_dir)
            if reliability:
                rel = _run(
                    lambda: api.reliability_report(
                        store, plant, a, b, selection=sel, reason_log=log
                    )
                )
                rows = [r.as_dict() for r in rel]
                cols = ["machine", "reason", "failures", "mtbf_s", "mttr_s", "mtta_s"]
                _emit(rows, as_json, as_csv, "Reliability", cols)
                return
            tree = _tree(plant, reasons_file)
            rep = _run(
                lambda: api.downtime_report(
                    store,
                    plant,
                    a,
                    b,
                    tree=tree,
                    selection=sel,
                    reason_log=log,
                    include_planned=planned,
                )
            )
    finally:
        if log is not None:
            log.close()
    if as_json:
        sys.stdout.write(json.dumps(rep.as_dict(), indent=2, ensure_ascii=False) + "\n")
        return
    _emit(
        [r.as_dict() for r in rep.pareto],
        False,
        as_csv,
        "Downtime",
        ["category", "reason", "stops", "duration_s", "share"],
    )
    if not as_csv:
        out.print(
            f"downtime {rep.downtime_s / 3600:.2f} h, unexplained {rep.unexplained_s / 3600:.2f} h"
        )


@app.command("energy")
def energy_cmd(
    start: FromOpt,
    end: ToOpt,
    data_dir: DataOpt = Path("."),
    plant_file: PlantOpt = None,
    line: LineOpt = None,
    machine: MachineOpt = None,
    tariff_file: Annotated[
        Path | None, typer.Option("--tariff", help="Time-of-use tariff YAML (meters' cost)")
    ] = None,
    grid_factor: Annotated[
        float | None, typer.Option(help="Override the grid emission factor, kg CO2e/kWh")
    ] = None,
    baseline_from: Annotated[
        str | None, typer.Option(help="Energy baseline: start of the baseline period")
    ] = None,
    baseline_to: Annotated[str | None, typer.Option(help="Energy baseline: its end")] = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
) -> None:
    """Energy per machine and state, energy per good part, 15-min peak demand, cost and CO2e;
    with --baseline-from/--baseline-to, the savings against a regression baseline (by day)."""
    from andon.kpi import api
    from andon.kpi.carbon import GridFactor
    from andon.kpi.carbon import grid_factor as default_factor
    from andon.kpi.energy import Tariff

    plant = _plant(plant_file)
    a, b = _range(plant, start, end)
    sel = _selection(plant, line, machine)
    tariff = None
    if tariff_file is not None:
        try:
            tariff = Tariff.from_dict(
                {"timezone": plant.site.timezone, **_yaml(tariff_file, "--tariff")}
            )
        except (KeyError, TypeError, ValueError) as exc:
            _fail(f"--tariff {tariff_file}: {exc}")
    factor = None
    if grid_factor is not None:
        try:
            country = default_factor(plant.site.timezone).country
        except KeyError:
            country = plant.site.timezone
        factor = GridFactor(country, grid_factor, datetime.now().year, "command line")
    if (baseline_from is None) != (baseline_to is None):
        _fail("give both --baseline-from and --baseline-to")
    with _store(data_dir) as store:
        _require_data(store, plant, sel, a, b, data_dir)
        if baseline_from is not None and baseline_to is not None:
            base = _range(plant, baseline_from, baseline_to)
            try:
                rep = _run(lambda: api.energy_baseline(store, plant, base, (a, b), selection=sel))
            except ValueError as exc:
                _fail(str(exc))
            if as_json:
                sys.stdout.write(json.dumps(rep.as_dict(), indent=2, ensure_ascii=False) + "\n")
                return
            cols = ["bucket", "kwh", "production", "predicted_kwh", "savings_kwh"]
            periods = [p.as_dict() for p in rep.periods]
            _emit(periods, False, as_csv, "Energy against the baseline", cols)
            if not as_csv:
                bl = rep.baseline
                out.print(
                    f"baseline: {bl.intercept_kwh:.1f} kWh + {bl.kwh_per_unit:.3f} kWh/part"
                    f" (R² {bl.r2:.3f}, {bl.periods} periods); "
                    f"savings {rep.savings_kwh:.1f} kWh"
                )
            return
        energy = _run(
            lambda: api.energy_report(
                store, plant, a, b, selection=sel, tariff=tariff, factor=factor
            )
        )
    if as_json:
        sys.stdout.write(json.dumps(energy.as_dict(), indent=2, ensure_ascii=False) + "\n")
        return
    cols = ["machine", "kwh", "idle_kwh", "nonproductive_kwh", "kwh_per_good_part"]
    cols += ["peak_kw_15min", "co2e_kg"]
    _emit([r.as_dict() for r in energy.machines], False, as_csv, "Energy", cols)
    if not as_csv and energy.meters:
        meters = [r.as_dict() for r in energy.meters]
        _emit(meters, False, False, "Meters", ["meter", "kwh", "peak_kw_15min", "cost"])


@app.command("losses")
def losses_cmd(
    start: FromOpt,
    end: ToOpt,
    data_dir: DataOpt = Path("."),
    plant_file: PlantOpt = None,
    line: LineOpt = None,
    machine: MachineOpt = None,
    per_hour: Annotated[float, typer.Option(help="Price of an hour of lost capacity")] = 3000.0,
    per_scrap_part: Annotated[float, typer.Option(help="Price of a scrapped part")] = 500.0,
    per_kwh: Annotated[float, typer.Option(help="Price of a kWh")] = 4.0,
    currency: Annotated[str, typer.Option(help="Currency code")] = "TWD",
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
) -> None:
    """Every loss in money, ranked."""
    from andon.kpi import api
    from andon.kpi.cost import LossPrices

    plant = _plant(plant_file)
    a, b = _range(plant, start, end)
    sel = _selection(plant, line, machine)
    prices = LossPrices(per_hour, per_scrap_part, per_kwh, currency)
    with _store(data_dir) as store:
        _require_data(store, plant, sel, a, b, data_dir)
        losses = _run(lambda: api.loss_report(store, plant, a, b, prices, selection=sel))
    rows = [r.as_dict() for r in losses]
    _emit(rows, as_json, as_csv, "Cost of losses", ["machine", "loss", "quantity", "unit", "cost"])


@app.command("reason")
def reason_cmd(
    machine: Annotated[str, typer.Option("--machine", help="Machine path")],
    stop_start: Annotated[str, typer.Option("--stop", help="Start of the stop, ISO")],
    reason: Annotated[str, typer.Option("--reason", help="Reason from the reason tree")],
    who: Annotated[str, typer.Option("--who", help="Who enters it")],
    data_dir: DataOpt = Path("."),
    plant_file: PlantOpt = None,
    comment: Annotated[str, typer.Option(help="Free text")] = "",
    reasons_file: Annotated[Path | None, typer.Option("--reasons", help="Reason tree YAML")] = None,
) -> None:
    """Record the reason of a stop the machine could not explain (who and when are kept)."""
    from andon.kpi.reasons import ReasonEntry, ReasonLog

    plant = _plant(plant_file)
    at = _time(stop_start, plant, "--stop")
    tree = _tree(plant, reasons_file)
    now = to_micros(datetime.now().astimezone())
    data_dir.mkdir(parents=True, exist_ok=True)
    with ReasonLog(data_dir / "reasons.duckdb") as log:
        try:
            log.record(plant.tenant, ReasonEntry(machine, at, reason, who, now, comment), tree)
        except ValueError as exc:
            _fail(str(exc))
    out.print(f"recorded {reason!r} for {machine} at {stop_start} by {who}", highlight=False)


@app.command("report")
def report_cmd(
    out_path: Annotated[Path, typer.Option("--out", help="report.xlsx, or a folder for CSV")],
    data_dir: DataOpt = Path("."),
    plant_file: PlantOpt = None,
    start: Annotated[str | None, typer.Option("--from", help="Start, ISO")] = None,
    end: Annotated[str | None, typer.Option("--to", help="End, ISO")] = None,
    last_days: Annotated[
        int | None, typer.Option(help="The last N whole local days before today (for cron)")
    ] = None,
    period: Annotated[str, typer.Option(help="all, day, week or shift")] = "day",
) -> None:
    """Write the standard report (OEE, lines, reliability, downtime, energy) to xlsx or CSV."""
    from andon.kpi.reasons import ReasonLog
    from andon.kpi.report import build_report, write_report

    plant = _plant(plant_file)
    if last_days is not None:
        if last_days < 1:
            _fail(f"--last-days must be 1 or more (got {last_days})")
        zone = ZoneInfo(plant.site.timezone)
        today = datetime.now(zone).date()
        a = to_micros(datetime.combine(today - timedelta(days=last_days), time(0), tzinfo=zone))
        b = to_micros(datetime.combine(today, time(0), tzinfo=zone))
    elif start is not None and end is not None:
        a, b = _range(plant, start, end)
    else:
        _fail("give --from and --to, or --last-days")
    per = _period(period)
    log = ReasonLog(data_dir / "reasons.duckdb") if (data_dir / "reasons.duckdb").exists() else None
    try:
        with _store(data_dir) as store:
            _require_data(store, plant, _selection(plant, None, None), a, b, data_dir)
            sheets = _run(
                lambda: build_report(
                    store,
                    plant,
                    a,
                    b,
                    period=per,
                    reason_log=log,
                )
            )
    finally:
        if log is not None:
            log.close()
    try:
        written = write_report(sheets, out_path)
    except OSError as exc:
        _fail(f"--out {out_path}: cannot write the report ({exc.strerror or exc})")
    for f in written:
        out.print(f"wrote {f}", highlight=False)
