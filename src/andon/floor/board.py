"""The andon board's content: every machine's current state, today's KPIs per machine and
line, each line's bottleneck over the last hour, and the open alerts per machine.

The API (``GET /sites/{site}/board``) only maps HTTP onto these functions: it picks the KPI
range, caches ``today_kpis`` and ``line_bottlenecks`` per step (``Services.kpi_cache``) and
shapes ``Board`` into its response model. See ``docs/decisions/0606-floor-state-and-alerts.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from andon.floor.alerts import FloorRecords, FloorSnapshot
from andon.kpi.summary import PlantSummary, plant_summary
from andon.model.plant import Plant
from andon.model.types import Micros, StateBatch
from andon.store.base import TelemetryStore
from andon.twin.bottleneck import analyse

__all__ = [
    "BOTTLENECK_WINDOW_US",
    "Board",
    "BoardLine",
    "BoardMachine",
    "RangeKpis",
    "assemble_board",
    "clip_states",
    "line_bottlenecks",
    "today_kpis",
]

BOTTLENECK_WINDOW_US: Micros = 3600 * 1_000_000
"""The board's bottleneck is the active-period bottleneck of the last hour."""


@dataclass(frozen=True, slots=True)
class BoardMachine:
    """One machine on the board."""

    machine: str
    name: str
    name_i18n: dict[str, str]
    area: str
    line: str
    state: str
    since: Micros | None
    oee: float | None
    good: int
    scrap: int
    alerts: int
    """Open alerts of this machine, less the shelved ones."""


@dataclass(frozen=True, slots=True)
class BoardLine:
    """One line on the board."""

    line: str
    name: str
    name_i18n: dict[str, str]
    throughput_per_h: float | None
    bottleneck: str | None


@dataclass(frozen=True, slots=True)
class Board:
    """The board of one site at ``now``; the KPIs cover ``[kpi_start, kpi_end)``."""

    now: Micros
    kpi_start: Micros
    kpi_end: Micros
    machines: list[BoardMachine]
    lines: list[BoardLine]
    alerts: list[dict[str, Any]] = field(default_factory=list)
    """Open alert rows of the site (``FloorRecords.alerts``), newest first, less the shelved."""
    shelved_alerts: int = 0


def clip_states(b: StateBatch, start: Micros, end: Micros) -> StateBatch:
    """The state intervals of ``b`` cut to ``[start, end)``; those outside are dropped."""
    a = np.maximum(b.start, start)
    e = np.minimum(b.end, end)
    keep = e > a
    return StateBatch(
        b.names,
        b.index[keep],
        a[keep],
        e[keep],
        b.state[keep],
        tuple(r for r, k in zip(b.reason, keep.tolist(), strict=True) if k),
    )


def line_bottlenecks(plant: Plant, snap: FloorSnapshot, end: Micros) -> dict[str, str | None]:
    """Each line's active-period bottleneck over ``BOTTLENECK_WINDOW_US`` before ``end``
    (None when the line was not active), by line path."""
    start = end - BOTTLENECK_WINDOW_US
    window = clip_states(snap.states, start, end)
    out: dict[str, str | None] = {}
    for a, ln in plant.lines():
        path = f"{plant.site.id}/{a.id}/{ln.id}"
        order = [plant.machine_path(a, ln, m) for m in ln.machines]
        rep = analyse(window, start, end, order) if len(window) else None
        best = None if rep is None else rep.average_bottleneck
        out[path] = best if rep is not None and best is not None and rep.active[best] > 0 else None
    return out


@dataclass(frozen=True, slots=True)
class RangeKpis:
    """The figures of ``plant_summary`` over ``[start, end)``."""

    start: Micros
    end: Micros
    summary: PlantSummary


async def today_kpis(store: TelemetryStore, plant: Plant, start: Micros, end: Micros) -> RangeKpis:
    """The figures of ``plant_summary`` over ``[start, end)`` with the range itself (no rows
    when the range is empty)."""
    if end <= start:
        return RangeKpis(start, end, PlantSummary((), (), ()))
    return RangeKpis(start, end, await plant_summary(store, plant, start, end))


async def assemble_board(
    records: FloorRecords,
    tenant: str,
    site_id: str,
    plant: Plant,
    snap: FloorSnapshot,
    kpis: RangeKpis,
    bottlenecks: Mapping[str, str | None],
    now: Micros,
) -> Board:
    """The board of ``plant``'s site: ``snap``'s states, ``kpis`` (``today_kpis``),
    ``bottlenecks`` (``line_bottlenecks``) and the site's open alerts from ``records``."""
    open_alerts = await records.alerts(tenant, site_id, open_only=True, shelved=False)
    shelved = await records.count_shelved(tenant, site_id)
    per_machine: dict[str | None, int] = {}
    for al in open_alerts:
        per_machine[al["machine"]] = per_machine.get(al["machine"], 0) + 1
    kpi = {r.machine: r for r in kpis.summary.machines}
    thr = {r.line: r.throughput_per_h for r in kpis.summary.lines}
    machines: list[BoardMachine] = []
    lines: list[BoardLine] = []
    for a, ln in plant.lines():
        lpath = f"{plant.site.id}/{a.id}/{ln.id}"
        lines.append(
            BoardLine(
                line=lpath,
                name=ln.name or ln.id,
                name_i18n=dict(ln.name_i18n),
                throughput_per_h=thr.get(lpath),
                bottleneck=bottlenecks.get(lpath),
            )
        )
        for m in ln.machines:
            path = plant.machine_path(a, ln, m)
            st = snap.status[path]
            k = kpi.get(path)
            machines.append(
                BoardMachine(
                    machine=path,
                    name=m.name or m.id,
                    name_i18n=dict(m.name_i18n),
                    area=a.id,
                    line=lpath,
                    state=st.state,
                    since=st.since,
                    oee=None if k is None else k.oee,
                    good=0 if k is None else k.parts.good,
                    scrap=0 if k is None else k.parts.scrap,
                    alerts=per_machine.get(path, 0),
                )
            )
    return Board(
        now=now,
        kpi_start=kpis.start,
        kpi_end=kpis.end,
        machines=machines,
        lines=lines,
        alerts=list(open_alerts),
        shelved_alerts=shelved,
    )
