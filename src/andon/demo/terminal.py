"""The live terminal view of a running demo (rich).

The machine table shows what every page shows: figures read back from the store through the
KPI facade (``andon.kpi.api``: ``oee`` for A, P, Q, OEE and parts, ``energy_report`` for
kWh) over the production day so far (from the run's start if it began later), and each
machine's current state as the store holds it (its open state). ``KpiView.refresh`` reads them
at most once per ``every_s`` wall seconds. Only the panels marked so (buffers, injected
faults, the ingest counters) come from the simulator: they are ground truth no store holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from andon.demo.run import DemoRun
from andon.kpi.api import energy_report, oee
from andon.kpi.ranges import today
from andon.kpi.summary import parts_of
from andon.model.plant import Plant
from andon.model.types import MachineState, Micros, from_micros
from andon.store.base import TelemetryStore

__all__ = ["KpiView", "MachineKpis", "Snapshot", "read_snapshot", "render"]

# Colour is never the only carrier of state: each state has a symbol and a word too.
_STYLE = {
    MachineState.RUNNING: ("green", "▶"),
    MachineState.STARVED: ("yellow", "◌"),
    MachineState.BLOCKED: ("yellow", "■"),
    MachineState.DOWN: ("bold red", "✖"),
    MachineState.PLANNED_STOP: ("blue", "⏸"),
    MachineState.OFFLINE: ("dim", "○"),
}


@dataclass(frozen=True, slots=True)
class MachineKpis:
    """One machine's row, as read from the store."""

    machine: str
    state: MachineState | None
    reason: str
    since: Micros | None
    good: int
    scrap: int
    availability: float | None
    performance: float | None
    quality: float | None
    oee: float | None
    kwh: float | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The machine table's figures for ``[start, end)``."""

    start: Micros
    end: Micros
    machines: tuple[MachineKpis, ...]


def view_range(plant: Plant, run_start: Micros, now: Micros) -> tuple[Micros, Micros]:
    """The production day that contains ``now`` so far, from ``run_start`` if later."""
    return max(today(plant, now).start, run_start), now


async def read_snapshot(
    store: TelemetryStore, plant: Plant, start: Micros, end: Micros
) -> Snapshot:
    """Every machine's figures over ``[start, end)`` from the store (``andon.kpi.api``);
    ``end`` is the newest data's time, so nothing after it counts. An empty range gives
    rows with no figures."""
    machines = [plant.machine_path(a, ln, m) for a, ln, m in plant.machines()]
    rows: dict[str, dict[str, Any]] = {}
    kwh: dict[str, float | None] = {}
    if end > start:
        rows = {str(r["machine"]): r for r in (await oee(store, plant, start, end, now=end)).rows()}
        energy = await energy_report(store, plant, start, end, factor=None)
        kwh = {r.machine: r.kwh for r in energy.machines}
    open_ = await store.open_states(plant.tenant, machines)
    current = {
        open_.names[int(i)]: (MachineState(int(s)), r, int(a))
        for i, s, r, a in zip(open_.index, open_.state, open_.reason, open_.start, strict=True)
    }
    out = []
    for path in machines:
        row = rows.get(path, {})
        good, scrap = parts_of(row)
        state, reason, since = current.get(path, (None, "", None))

        def ratio(key: str, row: dict[str, Any] = row) -> float | None:
            v = row.get(key)
            return None if v is None else float(v)

        out.append(
            MachineKpis(
                path,
                state,
                reason or "",
                since,
                good,
                scrap,
                ratio("availability"),
                ratio("performance"),
                ratio("quality"),
                ratio("oee"),
                kwh.get(path),
            )
        )
    return Snapshot(start, end, tuple(out))


class KpiView:
    """The latest snapshot of a run, read again at most every ``every_s`` seconds of
    ``monotonic`` (wall time), since each read asks the store."""

    def __init__(
        self,
        store: TelemetryStore,
        every_s: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.every_s = every_s
        self.monotonic = monotonic
        self.snapshot: Snapshot | None = None
        self._read_at: float | None = None

    async def refresh(self, run: DemoRun, force: bool = False) -> Snapshot:
        t = self.monotonic()
        due = self._read_at is None or t - self._read_at >= self.every_s
        if self.snapshot is None or due or force:
            f = run.factory
            start, end = view_range(run.plant, f.start, f.ts(f.now))
            self.snapshot = await read_snapshot(self.store, run.plant, start, end)
            self._read_at = t
        return self.snapshot


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:5.1f}%"


def _dur(s: float) -> str:
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def render(run: DemoRun, snap: Snapshot, speed: float | None = None) -> Group:
    """The view: the machine table from ``snap`` (the store), then the simulator's ground
    truth (buffers, latest injected faults) and the ingest counters."""
    f = run.factory
    now = f.now
    zone = ZoneInfo(run.plant.site.timezone)
    local = from_micros(f.ts(now)).astimezone(zone)
    since = from_micros(snap.start).astimezone(zone)
    head = Text.assemble(
        (f"{run.plant.site.name or run.plant.site.id}", "bold"),
        f"   plant time {local:%a %Y-%m-%d %H:%M:%S} ({run.plant.site.timezone})",
        f"   elapsed {_dur(now)}",
        f"   speed ×{speed:g}" if speed else "",
    )
    t = Table(
        expand=True,
        header_style="bold",
        caption=f"from the store, since {since:%a %H:%M} (the production day so far)",
    )
    for col, just in [
        ("machine", "left"),
        ("state", "left"),
        ("for", "right"),
        ("good", "right"),
        ("scrap", "right"),
        ("A", "right"),
        ("P", "right"),
        ("Q", "right"),
        ("OEE", "right"),
        ("kWh", "right"),
    ]:
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    total_kwh = 0.0
    for m in snap.machines:
        if m.state is None:
            state, style, held = "– no state yet", "dim", "–"
        else:
            style, icon = _STYLE[m.state]
            state = f"{icon} {m.state.label}" + (f" ({m.reason})" if m.reason else "")
            held = "–" if m.since is None else _dur(max(0, snap.end - m.since) / 1e6)
        total_kwh += m.kwh or 0.0
        t.add_row(
            m.machine.split("/", 1)[1],
            Text(state, style=style),
            held,
            str(m.good),
            str(m.scrap),
            _pct(m.availability),
            _pct(m.performance),
            _pct(m.quality),
            Text(_pct(m.oee), style="bold"),
            "–" if m.kwh is None else f"{m.kwh:.1f}",
        )
    buffers = Table.grid(padding=(0, 2))
    for path, b in f.model.buffers.items():
        fill = len(b.items)
        bar = "█" * fill + "·" * (b.capacity - fill)
        buffers.add_row(path.split("/", 1)[1], f"{fill:>2}/{b.capacity:<2}", bar)
    faults = [g for g in f.ground_truth if g["kind"] == "fault"][-5:]
    fault_lines = Text(
        "\n".join(
            f"{g['t'][11:19]}Z  {g.get('machine', g.get('area', ''))}  {g['code']}  "
            f"{g['duration_s'] / 60:.1f} min"
            for g in faults
        )
        or "none yet"
    )
    stats = run.ingestor.stats
    ingest = Text(
        f"stored: {stats.samples:,} samples · {stats.states:,} state intervals · "
        f"{stats.parts:,} part events · rejected {sum(stats.rejected.values()):,} · "
        f"machines {total_kwh:,.1f} kWh"
    )
    return Group(
        head,
        t,
        Panel(buffers, title="buffers (simulator)", expand=False),
        Panel(fault_lines, title="latest faults (ground truth)", expand=False),
        ingest,
    )
