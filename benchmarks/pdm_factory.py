"""Predictive maintenance on the virtual factory (issue 15): does pdm_anomaly warn of the
degrading failures at least 12 h ahead, and how often does it cry wolf?

    .venv/bin/python benchmarks/pdm_factory.py [--days 28] [--seeds 3] [--horizon-h 48]
        [--jobs 2] [--set name=value ...]

Per seed, the demo plant (``examples/plants/demo.yaml``) runs headless for ``--days`` days
(the virtual factory alone: its flushes are read directly, no ingest or store). Each machine
with condition signals (the app's ``signal_types``) gets its samples averaged onto the app's
grid, its running steps and product at each step, and then the app's own detector
(``pdm_anomaly.detect.score_machine`` and ``reports``, the functions the app calls, with the
app's default settings from ``apps/pdm_anomaly/andon-app.yaml``; ``--set`` overrides one for
every seed alike). Each report (a finding the app would raise: an episode's alarm and its
re-reports every ``report_h`` hours) is an alarm at the time it is raised.

Against the factory's ground-truth faults, per failure mode:

- ``recall_12h``: the share of failures with an alarm on their machine raised in
  ``[failure - horizon, failure - 12 h]`` (the window starts no earlier than the end of the
  previous failure of the same mode on that machine; a failure with no such window left
  after learning is not counted: ``failures`` says how many were);
- ``lead_time_median_h``: over the warned failures, failure time minus the earliest alarm in
  the window;
- ``false_alarms_per_machine_week``: alarms not followed by a degrading failure of their
  machine within the horizon, per week of healthy time (scored time outside every
  ``[failure - horizon, failure]`` of a degrading mode), all machines with condition signals.

Memoryless modes are scored the same way: their recall is what alarms at this rate get by
chance. One JSON object per figure on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from multiprocessing import Manager
from pathlib import Path
from queue import Empty
from typing import Any

import numpy as np
import yaml
from rich.console import Console
from rich.progress import Progress

from andon.demo.run import default_start
from andon.model.loader import load_plant
from andon.model.types import MachineState
from andon.sdk import Part, State
from andon.sim.factory import HEALTH_SAMPLE_S, VirtualFactory

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "apps" / "pdm_anomaly"
sys.path.insert(0, str(APP))
from pdm_anomaly.detect import (  # type: ignore[import-not-found]  # noqa: E402  (the app's package, on its own path)
    grid_mean,
    product_at,
    reports,
    running_mask,
    score_machine,
)

DEMO = ROOT / "examples" / "plants" / "demo.yaml"
US = 1_000_000
H = 3600.0
WARN_H = 12.0
HEALTHY = 0.9
"""A machine is healthy while the true health of each of its degrading modes is at least
this (1 = new; damage starts at a random onset)."""


def machine() -> str:
    return f"{os.cpu_count()} cpu, {platform.machine()}, {platform.system()}"


def app_settings(overrides: list[str]) -> dict[str, Any]:
    """The app's default settings (its manifest), with ``name=value`` overrides."""
    manifest = yaml.safe_load((APP / "andon-app.yaml").read_text())
    props = manifest["settings"]["properties"]
    s: dict[str, Any] = {k: v["default"] for k, v in props.items()}
    for o in overrides:
        name, sep, value = o.partition("=")
        if not sep or name not in props:
            raise SystemExit(f"--set {o!r}: expected name=value with name one of {sorted(props)}")
        s[name] = type(s[name])(value) if not isinstance(s[name], str) else value
    return s


def _us(iso: str) -> int:
    return round(datetime.fromisoformat(iso).timestamp() * US)


def simulate(seed: int, days: float, settings: dict[str, Any], queue: Any = None) -> dict[str, Any]:
    """One seed: per machine with condition signals its grid (signals, steps), running
    steps and product at each step; the ground-truth faults."""
    plant = load_plant(DEMO)
    start = default_start(plant)
    fac = VirtualFactory(plant, seed, start)
    step_s = float(settings["step_s"])
    step = round(step_s * US)
    if round(fac.window_s * US) % step:
        raise SystemExit(f"step_s {step_s} must divide the factory's window {fac.window_s} s")
    per_win = round(fac.window_s * US) // step
    n = int(days * 86_400 * US) // step
    types = {t.strip() for t in str(settings["signal_types"]).split(",") if t.strip()}
    cond: dict[str, list[str]] = {}  # machine → its condition signal paths
    for m in fac.machines:
        paths = sorted(f"{m.path}/{s.id}" for s in m.spec.signals if s.type in types)
        if paths:
            cond[m.path] = paths
    col = {p: j for j, p in enumerate(p for ps in cond.values() for p in ps)}
    x = np.full((len(col), n), np.nan)
    states: dict[str, list[State]] = {m: [] for m in cond}
    parts: dict[str, list[Part]] = {m: [] for m in cond}
    t0 = time.perf_counter()
    for hour in range(1, int(days * 24) + 1):
        flushes = fac.advance(hour * H)
        if hour == int(days * 24):
            flushes.append(fac.finish())
        for f in flushes:
            k0 = (f.start - start) // step
            b = f.samples
            if len(b) and k0 < n:
                order = np.argsort(b.index, kind="stable")
                idx = b.index[order]
                cuts = np.flatnonzero(np.diff(idx)) + 1
                for seg in np.split(order, cuts):
                    j = col.get(b.names[int(b.index[seg[0]])])
                    if j is not None:
                        w = min(per_win, n - k0)
                        x[j, k0 : k0 + w] = grid_mean(
                            b.ts[seg], b.value[seg], start + k0 * step, step, w
                        )
            sb = f.states
            for i in range(len(sb.index)):
                mp = sb.names[int(sb.index[i])]
                if mp in states:
                    label = MachineState(int(sb.state[i])).label
                    states[mp].append(
                        State(mp, int(sb.start[i]), int(sb.end[i]), label, sb.reason[i])
                    )
            pb = f.parts
            for i in range(len(pb.index)):
                mp = pb.names[int(pb.index[i])]
                if mp in parts:
                    parts[mp].append(
                        Part(mp, int(pb.ts[i]), pb.product[i], int(pb.good[i]), int(pb.scrap[i]))
                    )
        if queue is not None:
            queue.put((seed, 1))
    data = {
        "seed": seed,
        "days": days,
        "step_s": step_s,
        "start": start,
        "end": start + n * step,
        "sim_s": time.perf_counter() - t0,
        "machines": {
            mp: (
                paths,
                np.column_stack([x[col[p]] for p in paths]),
                running_mask(states[mp], start, step, n),
                product_at(parts[mp], start, step, n),
            )
            for mp, paths in cond.items()
        },
        "health": _health(fac.ground_truth),
        "faults": [
            (str(g["machine"]), _us(g["t"]), _us(g["end"]), str(g["code"]),
             str(g.get("mode") or "memoryless"))
            for g in fac.ground_truth
            if g.get("kind") == "fault" and "machine" in g
        ],
    }  # fmt: skip
    return data


def _health(truth: list[dict[str, Any]]) -> dict[str, tuple[Any, Any]]:
    """Per machine with degrading modes, its true health (the lowest of its modes) at the
    ground truth's samples: (µs, health)."""
    low: dict[str, dict[int, float]] = {}
    for g in truth:
        if g.get("kind") == "health":
            row = low.setdefault(str(g["machine"]), {})
            t = _us(g["t"])
            row[t] = min(row.get(t, 1.0), float(g["health"]))
    return {
        m: (np.array(sorted(r), dtype=np.int64), np.array([r[t] for t in sorted(r)]))
        for m, r in low.items()
    }


def detect(data: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """The app's detector on each machine of one simulated seed: its alarms."""
    if float(settings["step_s"]) != data["step_s"]:
        raise SystemExit(
            f"step_s {settings['step_s']}: the simulation was gridded at {data['step_s']}"
        )
    start = int(data["start"])
    step = round(float(data["step_s"]) * US)
    t1 = time.perf_counter()
    out: dict[str, Any] = {k: data[k] for k in ("seed", "end", "faults", "sim_s", "health")}
    out["machines"] = {}
    for mp, (paths, xm, run, regime) in data["machines"].items():
        sc = score_machine(xm, run, regime, paths, settings)
        if isinstance(sc, str):
            out["machines"][mp] = {"skipped": sc}
            continue
        reps = reports(sc, settings)
        out["machines"][mp] = {
            "alarms": [start + (int(sc.scored[int(r.sel[-1])]) + 1) * step for r in reps],
            "episodes": sum(1 for r in reps if r.k == 0),
            "scored_from": start + sc.learn_steps * step,
        }
    out["score_s"] = time.perf_counter() - t1
    return out


def seed_run(
    seed: int, days: float, settings: dict[str, Any], cache: Path | None, queue: Any = None
) -> dict[str, Any]:
    """Simulate one seed (or read it from ``cache``), then detect."""
    f = (
        cache / f"demo-seed{seed}-{days:g}d-step{float(settings['step_s']):g}-v2.pkl"
        if cache
        else None
    )
    if f is not None and f.exists():
        data = pickle.loads(f.read_bytes())
        data["sim_s"] = 0.0
    else:
        data = simulate(seed, days, settings, queue)
        if f is not None:
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(pickle.dumps(data))
    out = detect(data, settings)
    if queue is not None:
        queue.put((seed, 0))
    return out


def evaluate(runs: list[dict[str, Any]], horizon_h: float) -> dict[str, Any]:
    """Recall ≥ 12 h ahead and lead time per mode, false alarms per machine-week."""
    hz = round(horizon_h * H * US)
    warn = round(WARN_H * H * US)
    per_mode: dict[str, dict[str, Any]] = {}
    false_alarms = 0
    alarms_total = 0
    healthy_us = 0
    per_seed_far: list[float] = []
    per_machine: dict[str, list[float]] = {}  # machine → [false alarms, healthy µs]
    worn_false = 0  # not followed by a failure, but raised while the true health was low
    truly_false = 0
    truly_healthy_us = 0
    for r in runs:
        seed_false, seed_healthy = 0, 0
        for mp, m in r["machines"].items():
            if "skipped" in m:
                continue
            lo, hi = int(m["scored_from"]), int(r["end"])
            alarms = np.array(sorted(m["alarms"]), dtype=np.int64)
            alarms_total += len(alarms)
            mine = sorted((f for f in r["faults"] if f[0] == mp), key=lambda f: f[1])
            prev_end: dict[str, int] = {}
            for _, t, end, code, kind in mine:
                w0 = max(t - hz, prev_end.get(code, lo), lo)
                w1 = t - warn
                prev_end[code] = end
                if w1 <= w0 or t > hi:
                    continue
                row = per_mode.setdefault(
                    code, {"kind": kind, "failures": 0, "warned": 0, "leads_h": []}
                )
                row["failures"] += 1
                got = alarms[(alarms >= w0) & (alarms <= w1)]
                if got.size:
                    row["warned"] += 1
                    row["leads_h"].append((t - int(got.min())) / (H * US))
            degr = [f[1] for f in mine if f[4] == "degrading"]
            # healthy: scored time outside every [failure - horizon, failure] of a degrading mode
            ill = 0
            spans = sorted((max(lo, t - hz), min(hi, t)) for t in degr if t > lo)
            cur_a, cur_b = None, None
            for a, b in spans:
                if cur_b is None or a > cur_b:
                    if cur_b is not None:
                        ill += cur_b - cur_a
                    cur_a, cur_b = a, b
                else:
                    cur_b = max(cur_b, b)
            if cur_b is not None:
                ill += cur_b - cur_a
            seed_healthy += (hi - lo) - ill
            d = np.array(degr, dtype=np.int64)
            unfollowed = [a for a in alarms.tolist() if not ((d > a) & (d <= a + hz)).any()]
            fa = len(unfollowed)
            ht, hv = r["health"].get(mp, (np.zeros(0, dtype=np.int64), np.zeros(0)))
            if len(ht):
                at = np.clip(np.searchsorted(ht, np.array(unfollowed, dtype=np.int64)) - 1, 0, None)
                worn = int((hv[at] < HEALTHY).sum()) if unfollowed else 0
                g = (ht >= lo) & (ht < hi) & (hv >= HEALTHY)
                for t in degr:
                    g &= ~((ht >= t - hz) & (ht <= t))
                truly_healthy_us += int(g.sum()) * round(HEALTH_SAMPLE_S * US)
            else:
                worn = 0
                truly_healthy_us += (hi - lo) - ill
            worn_false += worn
            truly_false += fa - worn
            seed_false += fa
            row_m = per_machine.setdefault(mp.rsplit("/", 1)[-1], [0.0, 0.0])
            row_m[0] += fa
            row_m[1] += (hi - lo) - ill
        false_alarms += seed_false
        healthy_us += seed_healthy
        per_seed_far.append(seed_false / max(1e-9, seed_healthy / (7 * 86_400 * US)))
    weeks = healthy_us / (7 * 86_400 * US)
    return {
        "modes": per_mode,
        "false_alarms": false_alarms,
        "alarms": alarms_total,
        "healthy_machine_weeks": weeks,
        "far": false_alarms / weeks if weeks else float("nan"),
        "far_per_seed": per_seed_far,
        "worn_false": worn_false,
        "truly_false": truly_false,
        "truly_healthy_weeks": truly_healthy_us / (7 * 86_400 * US),
        "far_per_machine": {
            k: v[0] / (v[1] / (7 * 86_400 * US)) if v[1] else float("nan")
            for k, v in sorted(per_machine.items())
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=float, default=28.0)
    ap.add_argument("--seeds", type=int, default=3, help="seeds 1..N")
    ap.add_argument("--horizon-h", type=float, default=48.0)
    ap.add_argument("--jobs", type=int, default=2, help="seeds simulated at once")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument(
        "--cache", type=Path, default=None,
        help="keep each seed's simulated grid here and reuse it (to compare settings)",
    )  # fmt: skip
    args = ap.parse_args()
    settings = app_settings(args.set)
    seeds = list(range(1, args.seeds + 1))
    err = Console(stderr=True)
    t = time.perf_counter()
    runs: list[dict[str, Any]] = []
    with Manager() as mgr, ProcessPoolExecutor(max(1, min(args.jobs, len(seeds)))) as pool:
        q = mgr.Queue()
        futs = [pool.submit(seed_run, s, args.days, settings, args.cache, q) for s in seeds]
        with Progress(console=err, transient=True) as prog:
            bars = {
                s: prog.add_task(f"seed {s}: {args.days:g} days", total=int(args.days * 24) + 1)
                for s in seeds
            }
            while not all(f.done() for f in futs):
                try:
                    s, k = q.get(timeout=0.5)
                except Empty:
                    continue
                prog.advance(bars[s], k or 1)
        runs = [f.result() for f in futs]
    wall = time.perf_counter() - t
    ev = evaluate(runs, args.horizon_h)
    common = {
        "days": args.days,
        "seeds": seeds,
        "horizon_h": args.horizon_h,
        "warned_at_least_h": WARN_H,
        "machine": machine(),
    }

    def emit(figure: str, value: float | None, unit: str, **extra: Any) -> None:
        v = None if value is None or value != value else round(value, 4)
        print(
            json.dumps({"figure": figure, "value": v, "unit": unit, **extra, **common}), flush=True
        )

    for code, row in sorted(
        ev["modes"].items(), key=lambda kv: (kv[1]["kind"] != "degrading", kv[0])
    ):
        rec = row["warned"] / row["failures"] if row["failures"] else float("nan")
        emit(
            f"pdm.factory.{code}.recall_12h",
            rec,
            "share",
            kind=row["kind"],
            failures=row["failures"],
            warned=row["warned"],
        )
        lead = statistics.median(row["leads_h"]) if row["leads_h"] else None
        emit(
            f"pdm.factory.{code}.lead_time_median_h",
            lead,
            "h",
            kind=row["kind"],
            warned=row["warned"],
        )
    emit(
        "pdm.factory.false_alarms_per_machine_week",
        ev["far"],
        "alarms/machine-week",
        false_alarms=ev["false_alarms"],
        alarms=ev["alarms"],
        healthy_machine_weeks=round(ev["healthy_machine_weeks"], 3),
        per_seed=[round(v, 3) for v in ev["far_per_seed"]],
        per_machine={k: round(v, 3) for k, v in ev["far_per_machine"].items()},
    )
    tw = ev["truly_healthy_weeks"]
    emit(
        "pdm.factory.false_alarms_per_healthy_machine_week",
        ev["truly_false"] / tw if tw else None,
        "alarms/machine-week",
        false_alarms=ev["truly_false"],
        healthy_machine_weeks=round(tw, 3),
        raised_while_worn=ev["worn_false"],
        healthy_if_health_at_least=HEALTHY,
    )
    emit(
        "pdm.factory.wall_time_s",
        wall,
        "s",
        jobs=args.jobs,
        sim_s=[round(r["sim_s"], 1) for r in runs],
        score_s=[round(r["score_s"], 1) for r in runs],
    )
    err.print(f"settings: {json.dumps({k: v for k, v in settings.items() if k != 'signal_types'})}")


if __name__ == "__main__":
    main()
