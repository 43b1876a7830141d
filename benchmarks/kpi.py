"""OEE and the six-big-losses waterfall for ``--machines`` machines over ``--days`` days,
computed from a DuckDB telemetry store.

    .venv/bin/python benchmarks/kpi.py [--machines 100] [--days 30] [--cycle-s 60] [--runs 3]

The store is filled first (not timed) with a synthetic plant month at 1 s resolution: every
machine's state timeline has its changes on whole seconds (a shift pattern of two 8-hour
shifts with two breaks, running spells with a mean of 20 min between unplanned stops, micro
stops, breakdowns, starving, blocking and changeovers), and a part event for every cycle of
about ``--cycle-s`` seconds while it runs, with 1 % scrap. The per-second signal samples are
not loaded: OEE is computed from the state timeline and the part counters, which is what the
store keeps of them.

Timed (best of ``--runs``), on a freshly opened store: ``read_states`` + ``read_parts`` for
every machine and the whole range, then the shift calendar expanded per machine (``Plan``:
planned busy time follows it) and ``oee_table`` per machine and day (time model,
micro-stop split, start-up rejects, parts' ideal time spread over their cycles, the
waterfall) and its sum per machine for the whole range (``OEETable.group``: time columns
are additive).

Prints one JSON object per figure; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import Progress

from andon.kpi.oee import LOSSES, oee_table
from andon.kpi.periods import days
from andon.kpi.timeline import Plan
from andon.model.plant import Calendar
from andon.model.types import US_PER_S, MachineState, PartBatch, StateBatch
from andon.store.duckdb_store import DuckDBStore

__all__ = ["main", "synthetic_month"]

T0 = 1_767_571_200 * US_PER_S  # 2026-01-05 00:00 UTC, a Monday
TENANT = "bench"
DAY_S = 86_400
CALENDAR = Calendar.model_validate(
    {
        "shifts": [
            {"name": "early", "start": "06:00", "end": "14:00"},
            {"name": "late", "start": "14:00", "end": "22:00"},
        ],
        "breaks": [
            {"name": "tea", "start": "10:00", "end": "10:15"},
            {"name": "dinner", "start": "18:00", "end": "18:30"},
        ],
    }
)
"""The calendar of ``_day_plan``."""


def machine() -> str:
    return f"{os.cpu_count()} cpu, {platform.machine()}, {platform.system()}"


def emit(figure: str, value: float, unit: str) -> None:
    print(
        json.dumps(
            {"figure": figure, "value": round(value, 4), "unit": unit, "machine": machine()}
        ),
        flush=True,
    )


_STOPS = np.array(
    [
        (MachineState.DOWN, "JAM", 90.0),
        (MachineState.DOWN, "SPINDLE", 1800.0),
        (MachineState.STARVED, "", 240.0),
        (MachineState.BLOCKED, "", 420.0),
        (MachineState.PLANNED_STOP, "changeover", 1200.0),
    ],
    dtype=object,
)
_P_STOPS = np.array([0.45, 0.1, 0.2, 0.15, 0.1])


def _day_plan(day: int) -> list[tuple[int, int, int, str]]:
    """(start s, end s, state, reason) of the calendar: off 22-06, breaks 10:00 and 18:00."""
    b = day * DAY_S
    h = 3600
    return [
        (b, b + 6 * h, MachineState.OFFLINE, "not_scheduled"),
        (b + 6 * h, b + 10 * h, -1, ""),
        (b + 10 * h, b + 10 * h + 900, MachineState.PLANNED_STOP, "break"),
        (b + 10 * h + 900, b + 18 * h, -1, ""),
        (b + 18 * h, b + 18 * h + 1800, MachineState.PLANNED_STOP, "break"),
        (b + 18 * h + 1800, b + 22 * h, -1, ""),
        (b + 22 * h, b + 24 * h, MachineState.OFFLINE, "not_scheduled"),
    ]


def synthetic_month(
    n_machines: int, n_days: int, cycle_s: float, seed: int = 1
) -> tuple[StateBatch, PartBatch]:
    """State timelines on whole seconds and part events for every machine."""
    rng = np.random.default_rng(seed)
    names = [f"s/a/l{m // 10}/m{m:03d}" for m in range(n_machines)]
    plan = [p for d in range(n_days) for p in _day_plan(d)]
    idx: list[np.ndarray] = []
    sts_l: list[np.ndarray] = []
    en: list[np.ndarray] = []
    ss: list[np.ndarray] = []
    rr: list[str] = []
    p_idx: list[np.ndarray] = []
    p_ts: list[np.ndarray] = []
    for m in range(n_machines):
        starts: list[np.ndarray] = []
        ends: list[np.ndarray] = []
        m_states: list[np.ndarray] = []
        for a, b, s, r in plan:
            if s >= 0:
                starts.append(np.array([a]))
                ends.append(np.array([b]))
                m_states.append(np.array([s]))
                rr.append(r)
                continue
            # a scheduled window: running spells separated by stops, on whole seconds
            n = int((b - a) / 600) + 4
            run = np.maximum(1, rng.exponential(1200.0, n).astype(np.int64))
            kind = rng.choice(len(_STOPS), n, p=_P_STOPS)
            stop = np.maximum(1, rng.exponential(_STOPS[kind, 2].astype(float)).astype(np.int64))
            seq = np.empty(2 * n, dtype=np.int64)
            seq[0::2], seq[1::2] = run, stop
            edges = a + np.concatenate(([0], np.cumsum(seq)))
            k = int(np.searchsorted(edges, b, side="left"))
            edges = np.concatenate((edges[:k], [b]))
            cnt = len(edges) - 1
            sts = np.empty(cnt, dtype=np.int64)
            sts[0::2] = MachineState.RUNNING
            sts[1::2] = _STOPS[kind[: cnt // 2], 0].astype(np.int64)
            starts.append(edges[:-1])
            ends.append(edges[1:])
            m_states.append(sts)
            rr += ["" if i % 2 == 0 else str(_STOPS[kind[i // 2], 1]) for i in range(cnt)]
        s_arr = np.concatenate(starts)
        e_arr = np.concatenate(ends)
        x_arr = np.concatenate(m_states)
        idx.append(np.full(len(s_arr), m, dtype=np.int32))
        sts_l.append(s_arr)
        en.append(e_arr)
        ss.append(x_arr)
        # parts: one every cycle of running time
        runm = x_arr == MachineState.RUNNING
        rs, re_ = s_arr[runm], e_arr[runm]
        cum = np.concatenate(([0], np.cumsum(re_ - rs)))
        n_parts = int(cum[-1] / cycle_s)
        t_run = (np.arange(1, n_parts + 1) * cycle_s).astype(np.int64)
        kk = np.searchsorted(cum, t_run, side="left") - 1
        p_idx.append(np.full(n_parts, m, dtype=np.int32))
        p_ts.append(rs[kk] + (t_run - cum[kk]))
    pi = np.concatenate(p_idx)
    pts = np.concatenate(p_ts)
    scrap = (rng.random(len(pi)) < 0.01).astype(np.int32)
    states = StateBatch.build(
        names,
        np.concatenate(idx),
        T0 + np.concatenate(sts_l) * US_PER_S,
        T0 + np.concatenate(en) * US_PER_S,
        np.concatenate(ss),
        rr,
    )
    parts = PartBatch.build(names, pi, T0 + pts * US_PER_S, ["A"] * len(pi), 1 - scrap, scrap)
    return states, parts


async def run(args: argparse.Namespace, path: Path, err: Console) -> None:
    end = T0 + args.days * DAY_S * US_PER_S
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task("generate and load", total=2)
        states, parts = synthetic_month(args.machines, args.days, args.cycle_s)
        bar.advance(task)
        store = DuckDBStore.open(path)
        for i in range(0, len(states), 500_000):
            sl = slice(i, i + 500_000)
            await store.append_states(
                TENANT,
                StateBatch(
                    states.names,
                    states.index[sl],
                    states.start[sl],
                    states.end[sl],
                    states.state[sl],
                    states.reason[sl],
                ),
            )
        for i in range(0, len(parts), 1_000_000):
            sl = slice(i, i + 1_000_000)
            await store.append_parts(
                TENANT,
                PartBatch(
                    parts.names,
                    parts.index[sl],
                    parts.ts[sl],
                    parts.product[sl],
                    parts.good[sl],
                    parts.scrap[sl],
                ),
            )
        await store.close()
        bar.advance(task)
    ideal = {n: {"A": args.cycle_s * 0.95} for n in states.names}
    machines = list(states.names)
    best = float("inf")
    best_read = 0.0
    for r in range(args.runs):
        store = DuckDBStore.open(path)
        t = time.perf_counter()
        st = await store.read_states(TENANT, machines, T0, end)
        pt = await store.read_parts(TENANT, machines, T0, end)
        t_read = time.perf_counter() - t
        plan = Plan.from_calendar(CALENDAR, "UTC", {m: m for m in machines}, T0, end)
        by_day = oee_table(st, pt, ideal, days(T0, end, "UTC"), machines=machines, plan=plan)
        whole = by_day.group(lambda m, b, p: (m, "all", p))
        took = time.perf_counter() - t
        await store.close()
        c = whole.columns
        gap = np.max(
            np.abs(sum(c[k] for k in LOSSES) + c["fully_productive_s"] - c["planned_busy_s"])
        )
        err.print(f"run {r + 1}: {took:.3f} s (read {t_read:.3f} s), waterfall gap {gap:.2e} s")
        assert len(by_day) == args.machines * args.days and gap < 1e-3
        if took < best:
            best, best_read = took, t_read
    label = f"{args.machines} machines x {args.days} days"
    emit(f"kpi OEE + loss waterfall from the store, {label}, wall time", best, "s")
    emit(f"kpi store read (states + parts), {label}", best_read, "s")
    emit(f"kpi state intervals, {label}", float(len(states)), "rows")
    emit(f"kpi part events, {label}", float(len(parts)), "rows")
    emit(f"kpi OEE + loss waterfall throughput, {label}", len(states) / best, "intervals/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--machines", type=int, default=100)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--cycle-s", type=float, default=60.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--path", type=Path, default=None)
    args = ap.parse_args()
    err = Console(stderr=True)
    with tempfile.TemporaryDirectory() as d:
        asyncio.run(run(args, args.path or Path(d) / "kpi.duckdb", err))


if __name__ == "__main__":
    main()
