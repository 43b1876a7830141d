"""Reports: several tables of KPI rows written as CSV files or one Excel workbook.

``build_report`` gathers the standard tables for a range (OEE per machine and period, line
OEE, reliability, downtime Pareto, energy, cost of losses); ``write_report`` writes them.
A scheduled report is this run by cron or a systemd timer through ``andon kpi report
--last-days 1 --out …``: the engine takes explicit ranges and keeps no schedule of its own.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from andon.kpi import api
from andon.kpi.cost import LossPrices
from andon.kpi.periods import Period
from andon.kpi.reasons import ReasonLog, ReasonTree
from andon.model.plant import Plant
from andon.model.types import Micros
from andon.store.base import TelemetryStore

__all__ = ["build_report", "flatten", "to_csv", "write_report"]

Rows = list[dict[str, Any]]


def flatten(row: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts become ``a.b`` columns; lists become JSON text.

    >>> flatten({"a": 1, "b": {"c": 2}, "d": [1, 2]})
    {'a': 1, 'b.c': 2, 'd': '[1, 2]'}
    """
    out: dict[str, Any] = {}
    for k, v in row.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, f"{key}."))
        elif isinstance(v, list | tuple):
            out[key] = json.dumps(v)
        else:
            out[key] = v
    return out


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    cols: dict[str, None] = {}
    for r in rows:
        cols.update(dict.fromkeys(r))
    return list(cols)


def to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows as CSV text (header from the union of the keys, in first-seen order)."""
    flat = [flatten(r) for r in rows]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=_columns(flat), lineterminator="\n")
    w.writeheader()
    w.writerows(flat)
    return buf.getvalue()


def write_report(sheets: Mapping[str, Rows], path: Path) -> list[Path]:
    """Write ``sheets`` to ``path``: an ``.xlsx`` workbook (one sheet per table) or, for any
    other path, a folder of ``<sheet>.csv`` files. Returns the files written."""
    if path.suffix.lower() == ".xlsx":
        from openpyxl import Workbook  # type: ignore[import-untyped]

        wb = Workbook()
        wb.remove(wb.active)
        for name, rows in sheets.items():
            ws = wb.create_sheet(title=name[:31])
            flat = [flatten(r) for r in rows]
            cols = _columns(flat)
            ws.append(cols)
            for r in flat:
                ws.append([r.get(c) for c in cols])
        path.parent.mkdir(parents=True, exist_ok=True)
        wb.save(path)
        return [path]
    path.mkdir(parents=True, exist_ok=True)
    written = []
    for name, rows in sheets.items():
        f = path / f"{name}.csv"
        f.write_text(to_csv(rows), encoding="utf-8")
        written.append(f)
    return written


async def build_report(
    store: TelemetryStore,
    plant: Plant,
    start: Micros,
    end: Micros,
    *,
    period: Period = "day",
    prices: LossPrices | None = None,
    reason_log: ReasonLog | None = None,
    tree: ReasonTree | None = None,
) -> dict[str, Rows]:
    """The standard report tables for ``[start, end)``."""
    table = await api.oee(store, plant, start, end, period=period)
    by_product = await api.oee(store, plant, start, end, period=period, by_product=True)
    tree = tree or ReasonTree.default().with_failure_modes(plant)
    down = await api.downtime_report(store, plant, start, end, tree=tree, reason_log=reason_log)
    energy = await api.energy_report(store, plant, start, end)
    sheets: dict[str, Rows] = {
        "oee": table.rows(),
        "lines": [x.as_dict() for x in api.line_oee(by_product, plant)],
        "reliability": [
            r.as_dict()
            for r in await api.reliability_report(store, plant, start, end, reason_log=reason_log)
        ],
        "downtime": [r.as_dict() for r in down.pareto],
        "energy": [r.as_dict() for r in energy.machines] + [r.as_dict() for r in energy.meters],
    }
    if prices is not None:
        sheets["losses"] = [
            r.as_dict() for r in await api.loss_report(store, plant, start, end, prices)
        ]
    return sheets
