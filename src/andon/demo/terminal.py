"""The live terminal view of a running demo (rich)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from andon.demo.run import DemoRun
from andon.kpi.oee import compute_oee
from andon.model.types import MachineState, from_micros

__all__ = ["render"]

# Colour is never the only carrier of state: each state has a symbol and a word too.
_STYLE = {
    MachineState.RUNNING: ("green", "▶"),
    MachineState.STARVED: ("yellow", "◌"),
    MachineState.BLOCKED: ("yellow", "■"),
    MachineState.DOWN: ("bold red", "✖"),
    MachineState.PLANNED_STOP: ("blue", "⏸"),
    MachineState.OFFLINE: ("dim", "○"),
}


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:5.1f}%"


def _dur(s: float) -> str:
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def render(run: DemoRun, speed: float | None = None) -> Group:
    f = run.factory
    now = f.now
    zone = ZoneInfo(run.plant.site.timezone)
    local = from_micros(f.ts(now)).astimezone(zone)
    head = Text.assemble(
        (f"{run.plant.site.name or run.plant.site.id}", "bold"),
        f"   plant time {local:%a %Y-%m-%d %H:%M:%S} ({run.plant.site.timezone})",
        f"   elapsed {_dur(now)}",
        f"   speed ×{speed:g}" if speed else "",
    )
    t = Table(expand=True, header_style="bold")
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
        ("kW", "right"),
        ("kWh", "right"),
    ]:
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    total_kw = 0.0
    for rec in f.recs:
        m = rec.rt
        durations = {s.label: v for s, v in m.durations.items()}
        durations[m.state.label] += now - m.since
        oee = compute_oee(durations, m.good, m.scrap, m.ideal_s)
        style, icon = _STYLE[m.state]
        state = f"{icon} {m.state.label}" + (f" ({m.reason})" if m.reason else "")
        pw = m.sim.power
        kw = {
            MachineState.RUNNING: pw.running_kw,
            MachineState.DOWN: pw.down_kw,
            MachineState.OFFLINE: pw.offline_kw,
        }.get(m.state, pw.idle_kw)
        total_kw += kw
        t.add_row(
            m.path.split("/", 1)[1],
            Text(state, style=style),
            _dur(now - m.since),
            str(m.good),
            str(m.scrap),
            _pct(oee.availability),
            _pct(oee.performance),
            _pct(oee.quality),
            Text(_pct(oee.oee), style="bold"),
            f"{kw:.1f}",
            f"{rec.energy_kwh:.1f}",
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
        f"plant load ≈ {total_kw:.0f} kW (machines)"
    )
    return Group(
        head,
        t,
        Panel(buffers, title="buffers", expand=False),
        Panel(fault_lines, title="latest faults (ground truth)", expand=False),
        ingest,
    )
