"""The virtual factory: the twin's line model run over a plant, with physical signals,
environment disturbances, energy meters and a ground-truth log.

Time is engine seconds from ``start`` (UTC µs). ``advance(until)`` runs the model and returns
the data of every *window* of ``window_s`` seconds that is complete by then: samples of every
signal on its own sample grid (aligned to the epoch), state intervals that ended in the window
and part events. Windows are cut at fixed multiples of ``window_s`` whatever the caller's steps,
and every signal draws its noise from its own generator, so a run depends only on the plant,
the seed, the start and the window length: same inputs, same bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from andon.model.degradation import DegradationProcess
from andon.model.plant import Area, Machine, Meter, Plant, Signal
from andon.model.types import (
    F64,
    MachineState,
    Micros,
    PartBatch,
    Quality,
    SampleBatch,
    StateBatch,
    TextBatch,
    from_micros,
)
from andon.sim.physics import (
    AMBIENT_C,
    HEALTH_EFFECTS,
    LAG_TYPES,
    LEVEL_TYPES,
    TEXT_TYPES,
    lag_filter,
    state_share,
    text_value,
)
from andon.twin.line import FactoryModel, MachineRuntime

__all__ = ["HEALTH_SAMPLE_S", "Flush", "VirtualFactory"]

HEALTH_SAMPLE_S = 60.0
"""How often the ground truth samples each degrading mode's health (engine seconds)."""


@dataclass(frozen=True, slots=True)
class Flush:
    """One window's data, ready for ingest."""

    start: Micros
    end: Micros
    samples: SampleBatch
    states: StateBatch
    parts: PartBatch
    open_states: StateBatch = field(default_factory=StateBatch.empty)
    """Each machine's state going on at the window's end (``end`` = the window's end): what
    a live board shows before the interval closes and arrives in ``states``."""


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def _grid(w0: float, w1: float, period: float) -> F64:
    k0 = math.ceil(w0 / period - 1e-9)
    k1 = math.ceil(w1 / period - 1e-9)
    return np.arange(k0, k1, dtype=np.float64) * period


@dataclass(eq=False)
class _SignalState:
    path: str
    spec: Signal
    rng: np.random.Generator
    last: float | None = None  # lag filters carry their value across windows
    last_text: str | None = None  # text signals emit on change only


@dataclass(eq=False)
class _MachineRec:
    """What the sim remembers of one machine to draw its signals."""

    rt: MachineRuntime
    index: int
    signals: list[_SignalState]
    # state change points (engine s, state code, reason)
    st_t: list[float] = field(default_factory=list)
    st_s: list[int] = field(default_factory=list)
    st_r: list[str] = field(default_factory=list)
    st_p: list[str | None] = field(default_factory=list)  # product made or last made
    # condition points: after each part or consumable event
    c_t: list[float] = field(default_factory=list)
    c_v: list[tuple[float, float, int, float, float, int, float]] = field(default_factory=list)
    # (condition, wear, parts_total, cycle_s, ra, dressings, reject_rate)
    recent: list[int] = field(default_factory=list)  # last 50 parts: 1 = scrap
    parts: list[tuple[float, str, bool]] = field(default_factory=list)
    closed: list[tuple[float, float, int, str]] = field(default_factory=list)
    energy_kwh: float = 0.0
    ra: float = 0.0
    cycle_s: float = 0.0
    degr: list[tuple[str, DegradationProcess]] = field(default_factory=list)
    """The machine's degrading modes (code, process), recorded for signals and truth."""
    health_cache: dict[float, tuple[F64, F64]] = field(default_factory=dict)
    """This window's (lowest health, regime factor) per sample period."""

    def condition_row(self) -> tuple[float, float, int, float, float, int, float]:
        rt = self.rt
        rej = 100.0 * sum(self.recent) / len(self.recent) if self.recent else 0.0
        return (rt.condition, rt.wear, rt.good + rt.scrap, self.cycle_s, self.ra, rt.dressings, rej)


class VirtualFactory:
    """Runs a plant. Listener of the line model; see the module docstring."""

    def __init__(
        self,
        plant: Plant,
        seed: int,
        start: Micros,
        window_s: float = 600.0,
        ground_truth: list[dict[str, Any]] | None = None,
    ) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self.plant = plant
        self.seed = seed
        self.start = start
        self.window_s = window_s
        self.ground_truth: list[dict[str, Any]] = ground_truth if ground_truth is not None else []
        self._emitted_until = 0.0
        self._zone = ZoneInfo(plant.site.timezone)
        self._recs: dict[int, _MachineRec] = {}
        self.model = FactoryModel(plant, seed, start, listeners=[self])
        self.machines = self.model.machines
        names: list[str] = []
        for i, rt in enumerate(self.model.machines):
            sigs = []
            for j, s in enumerate(rt.spec.signals):
                sigs.append(_SignalState(f"{rt.path}/{s.id}", s, _rng(seed, 100, i, j)))
                names.append(f"{rt.path}/{s.id}")
            rec = self._recs.get(id(rt))
            if rec is None:  # pragma: no cover - every machine reported its initial state
                raise RuntimeError("machine did not report its initial state")
            rec.signals = sigs
            for fm, proc in zip(rt.modes, rt.degr, strict=True):
                if proc is not None:
                    proc.start_recording()
                    rec.degr.append((fm.code, proc))
            rec.c_t.append(0.0)
            rec.c_v.append(rec.condition_row())
        self.recs = [self._recs[id(rt)] for rt in self.model.machines]
        self._marks_rng = [_rng(seed, 200, i) for i in range(len(self.recs))]
        self._env: list[tuple[Area, list[_SignalState], list[tuple[float, float, str]]]] = []
        for ai, area in enumerate(plant.site.areas):
            if not area.sensors:
                continue
            sigs = [
                _SignalState(f"{plant.site.id}/{area.id}/{s.id}", s, _rng(seed, 300, ai, j))
                for j, s in enumerate(area.sensors)
            ]
            names += [s.path for s in sigs]
            self._env.append((area, sigs, []))
            self._schedule_disturbance(len(self._env) - 1, _rng(seed, 301, ai))
        self._meters: list[tuple[Meter, list[_SignalState], list[_MachineRec], list[float]]] = []
        for mi, mt in enumerate(plant.site.meters):
            sigs = [
                _SignalState(f"{plant.site.id}/{mt.id}/{s.id}", s, _rng(seed, 400, mi, j))
                for j, s in enumerate(mt.signals)
            ]
            names += [s.path for s in sigs]
            covered = [r for r in self.recs if not mt.covers or r.rt.spec.id in mt.covers]
            self._meters.append((mt, sigs, covered, [mt.initial_kwh]))
        self.signal_names = tuple(names)
        self._name_index = {n: i for i, n in enumerate(names)}
        self._machine_names = tuple(r.rt.path for r in self.recs)
        self._silent = [
            {fm.code for fm in r.rt.spec.sim.failure_modes if not fm.reported} for r in self.recs
        ]
        """Per machine, the failure codes it does not report (stored without a reason)."""
        self._degrading_plant = any(r.degr for r in self.recs)
        """Whether fault records say each mode's kind (absent for plants without degrading
        modes, whose ground truth stays byte for byte what it was)."""

    # --- time ----------------------------------------------------------------------------
    @property
    def now(self) -> float:
        return self.model.engine.now

    def ts(self, t: float) -> Micros:
        return self.start + round(t * 1e6)

    def _iso(self, t: float) -> str:
        return from_micros(self.ts(t)).isoformat().replace("+00:00", "Z")

    # --- listener -------------------------------------------------------------------------
    def on_state(self, m: MachineRuntime, t: float, state: MachineState, reason: str) -> None:
        rec = self._recs.get(id(m))
        if rec is None:
            rec = _MachineRec(m, len(self._recs), [])
            self._recs[id(m)] = rec
        previous = None
        if rec.st_t:
            t_prev, s_prev, r_prev = rec.st_t[-1], rec.st_s[-1], rec.st_r[-1]
            if t > t_prev:
                rec.closed.append((t_prev, t, s_prev, r_prev))
            previous = MachineState(s_prev).label
        self.ground_truth.append(
            {
                "t": self._iso(t),
                "kind": "state",
                "machine": m.path,
                "state": state.label,
                "reason": reason,
                "previous": previous,
            }
        )
        rec.st_t.append(t)
        rec.st_s.append(int(state))
        rec.st_r.append(reason)
        rec.st_p.append(m.part if m.part is not None else m.last_product)

    def on_part(
        self, m: MachineRuntime, t: float, product: str, good: bool, cycle_s: float
    ) -> None:
        rec = self._recs[id(m)]
        rec.parts.append((t, product, good))
        rec.recent.append(0 if good else 1)
        if len(rec.recent) > 50:
            del rec.recent[0]
        rec.cycle_s = cycle_s
        ra_spec = next((s for s in m.spec.signals if s.type == "surface_roughness"), None)
        if ra_spec is not None:
            nominal = ra_spec.nominal if ra_spec.nominal is not None else 0.3
            rng = self._marks_rng[rec.index]
            rec.ra = nominal * (1.0 + 1.5 * m.condition) * float(rng.lognormal(0.0, 0.05))
        rec.c_t.append(t)
        rec.c_v.append(rec.condition_row())

    def on_condition(self, m: MachineRuntime, t: float, event: str) -> None:
        rec = self._recs[id(m)]
        rec.c_t.append(t)
        rec.c_v.append(rec.condition_row())
        self.ground_truth.append(
            {"t": self._iso(t), "kind": "maintenance", "machine": m.path, "event": event}
        )

    def on_fault(self, m: MachineRuntime, t: float, code: str, repair_s: float) -> None:
        record: dict[str, Any] = {
            "t": self._iso(t),
            "kind": "fault",
            "machine": m.path,
            "code": code,
            "end": self._iso(t + repair_s),
            "duration_s": round(repair_s, 3),
            "wear": round(m.wear, 4),
        }
        if self._degrading_plant:
            i = next(i for i, fm in enumerate(m.modes) if fm.code == code)
            proc = m.degr[i]
            record["mode"] = m.modes[i].kind
            if proc is not None:
                record["warnings"] = {f"{lv:g}": self._iso(at) for at, lv in proc.life_crossings}
        self.ground_truth.append(record)

    # --- environment disturbances ----------------------------------------------------------
    def _schedule_disturbance(self, k: int, rng: np.random.Generator) -> None:
        area, _, events = self._env[k]
        env = area.environment
        if env.disturbances_per_day <= 0:
            return
        eng = self.model.engine

        def fire() -> None:
            kind = "door_open" if rng.random() < 0.6 else "hvac_fault"
            dur = env.disturbance_min * 60.0 * float(rng.lognormal(0.0, 0.3))
            events.append((eng.now, eng.now + dur, kind))
            self.ground_truth.append(
                {
                    "t": self._iso(eng.now),
                    "kind": "fault",
                    "area": f"{self.plant.site.id}/{area.id}",
                    "code": kind.upper(),
                    "end": self._iso(eng.now + dur),
                    "duration_s": round(dur, 3),
                }
            )
            eng.after(float(rng.exponential(86_400.0 / env.disturbances_per_day)), fire)

        eng.after(float(rng.exponential(86_400.0 / env.disturbances_per_day)), fire)

    # --- running ---------------------------------------------------------------------------
    def advance(self, until: float) -> list[Flush]:
        """Run to ``until`` (engine s); return every window completed by then."""
        self.model.run(until)
        out = []
        while self._emitted_until + self.window_s <= until + 1e-9:
            w0 = self._emitted_until
            w1 = w0 + self.window_s
            out.append(self._window(w0, w1))
            self._emitted_until = w1
        return out

    def finish(self) -> Flush:
        """Close the open state intervals at ``now`` and return the last partial window."""
        w0, w1 = self._emitted_until, self.now
        flush = self._window(w0, w1, final=True)
        self._emitted_until = w1
        self.model.close()
        return flush

    # --- drawing a window --------------------------------------------------------------------
    def _window(self, w0: float, w1: float, final: bool = False) -> Flush:
        idx_parts: list[np.ndarray] = []
        ts_parts: list[np.ndarray] = []
        val_parts: list[np.ndarray] = []
        text_rows: list[tuple[int, float, str]] = []
        machine_power: dict[int, tuple[F64, F64]] = {}
        for rec in self.recs:
            if rec.degr:
                self._health_truth(rec, w0, w1)
            st_t = np.asarray(rec.st_t)
            st_s = np.asarray(rec.st_s, dtype=np.int64)
            c_t = np.asarray(rec.c_t)
            c_v = np.asarray(rec.c_v, dtype=np.float64)
            bp_t, bp_p = self._power_breakpoints(rec, st_t, st_s, c_t, c_v, w0, w1)
            machine_power[rec.index] = (bp_t, bp_p)
            e0 = rec.energy_kwh
            for sig in rec.signals:
                if sig.spec.type in TEXT_TYPES:
                    text_rows += self._text_changes(rec, sig, w0, w1)
                    continue
                grid = _grid(w0, w1, sig.spec.sample_period_s)
                if len(grid) == 0:
                    continue
                vals = self._machine_signal(rec, sig, grid, st_t, st_s, c_t, c_v, bp_t, bp_p, e0)
                idx_parts.append(np.full(len(grid), self._name_index[sig.path], dtype=np.int32))
                ts_parts.append(grid)
                val_parts.append(vals)
            rec.energy_kwh = e0 + _integral(bp_t, bp_p, np.array([w1]))[0] / 3600.0
        for _area, sigs, events in self._env:
            for sig in sigs:
                grid = _grid(w0, w1, sig.spec.sample_period_s)
                if len(grid):
                    idx_parts.append(np.full(len(grid), self._name_index[sig.path], np.int32))
                    ts_parts.append(grid)
                    val_parts.append(self._env_signal(sig, grid, events))
            events[:] = [e for e in events if e[1] > w1]
        for mt, sigs, covered, energy in self._meters:
            for sig in sigs:
                grid = _grid(w0, w1, sig.spec.sample_period_s)
                if len(grid) == 0:
                    continue
                idx_parts.append(np.full(len(grid), self._name_index[sig.path], np.int32))
                ts_parts.append(grid)
                if sig.spec.type == "power":
                    p = np.full(len(grid), mt.base_load_kw)
                    for r in covered:
                        bt, bpv = machine_power[r.index]
                        p += bpv[np.searchsorted(bt, grid, side="right") - 1]
                    val_parts.append(p * (1.0 + sig.rng.normal(0.0, 0.01, len(grid))))
                else:
                    e = energy[0] + mt.base_load_kw * (grid - w0) / 3600.0
                    for r in covered:
                        bt, bpv = machine_power[r.index]
                        e += _integral(bt, bpv, grid) / 3600.0
                    if mt.rollover_kwh:
                        e = np.mod(e, mt.rollover_kwh)
                    val_parts.append(e)
            total = energy[0] + mt.base_load_kw * (w1 - w0) / 3600.0
            for r in covered:
                bt, bpv = machine_power[r.index]
                total += _integral(bt, bpv, np.array([w1]))[0] / 3600.0
            energy[0] = total
        text = None
        if text_rows:
            text = TextBatch.build(
                self.signal_names,
                [r[0] for r in text_rows],
                [self.ts(r[1]) for r in text_rows],
                [r[2] for r in text_rows],
                np.full(len(text_rows), Quality.GOOD, dtype=np.uint8),
            )
        samples = (
            SampleBatch.empty() if text is None else SampleBatch.build((), [], [], [], text=text)
        )
        if ts_parts:
            t = np.concatenate(ts_parts)
            samples = SampleBatch(
                self.signal_names,
                np.concatenate(idx_parts),
                self.start + np.round(t * 1e6).astype(np.int64),
                np.concatenate(val_parts),
                np.full(len(t), Quality.GOOD, dtype=np.uint8),
                text,
            )
        for rec in self.recs:
            rec.health_cache.clear()
            for _code, proc in rec.degr:
                proc.prune(w1)
        states = self._closed_states(w1, final)
        current = StateBatch.empty() if final else self._open_states(w1)
        parts = self._parts(w1)
        self._prune(w1)
        return Flush(self.ts(w0), self.ts(w1), samples, states, parts, current)

    def _text_changes(
        self, rec: _MachineRec, sig: _SignalState, w0: float, w1: float
    ) -> list[tuple[int, float, str]]:
        """A text signal's changes in ``[w0, w1)`` as ``(name index, engine s, value)``: the
        value in force at ``w0`` when the signal has emitted nothing yet, then each state
        change that changes it. Several state changes at one instant count as their last."""
        out: list[tuple[int, float, str]] = []
        k = self._name_index[sig.path]
        typ = sig.spec.type
        n = len(rec.st_t)
        for j in range(n):
            t = rec.st_t[j]
            if t >= w1:
                break
            if j + 1 < n and rec.st_t[j + 1] <= max(t, w0):
                continue  # superseded at the same instant, or before the window
            v = text_value(typ, rec.st_s[j], rec.st_r[j], rec.st_p[j])
            if v != sig.last_text:
                out.append((k, max(t, w0), v))
                sig.last_text = v
        return out

    def _health_truth(self, rec: _MachineRec, w0: float, w1: float) -> None:
        """Ground truth of a degrading machine's window: each mode's health every
        ``HEALTH_SAMPLE_S`` and the warning levels its health fell through."""
        grid = _grid(w0, w1, HEALTH_SAMPLE_S)
        path = rec.rt.path
        for code, proc in rec.degr:
            done = [c for c in proc.crossings if c[0] < w1]
            proc.crossings = [c for c in proc.crossings if c[0] >= w1]
            for at, level in done:
                self.ground_truth.append(
                    {
                        "t": self._iso(at),
                        "kind": "health_warning",
                        "machine": path,
                        "code": code,
                        "level": level,
                    }
                )
            if len(grid):
                h, _ = proc.health_at(grid)
                for t, v in zip(grid.tolist(), np.round(h, 4).tolist(), strict=True):
                    self.ground_truth.append(
                        {
                            "t": self._iso(t),
                            "kind": "health",
                            "machine": path,
                            "code": code,
                            "health": v,
                        }
                    )

    def _health(self, rec: _MachineRec, grid: F64, period: float) -> tuple[F64, F64]:
        """``(d, ρ)`` at the samples: ``1 -`` the lowest health of the machine's degrading
        modes, and the regime factor while a cycle runs (1 otherwise)."""
        got = rec.health_cache.get(period)
        if got is not None and len(got[0]) == len(grid):
            return got
        low = np.ones(len(grid))
        rho = np.zeros(len(grid))
        for _code, proc in rec.degr:
            h, r = proc.health_at(grid)
            low = np.minimum(low, h)
            rho += r
        rho /= len(rec.degr)
        out = (1.0 - low, np.where(rho > 0, rho, 1.0))
        rec.health_cache[period] = out
        return out

    def _power_breakpoints(
        self,
        rec: _MachineRec,
        st_t: F64,
        st_s: np.ndarray,
        c_t: F64,
        c_v: F64,
        w0: float,
        w1: float,
    ) -> tuple[F64, F64]:
        """Noise-free power as a step function over [w0, w1): (times, kW)."""
        pw = rec.rt.sim.power
        wear = rec.rt.sim.wear
        gain = wear.power_gain if wear else 0.0
        inside = np.concatenate(
            ([w0], st_t[(st_t > w0) & (st_t < w1)], c_t[(c_t > w0) & (c_t < w1)])
        )
        bp = np.unique(inside)
        s = st_s[np.searchsorted(st_t, bp, side="right") - 1]
        cond = c_v[np.searchsorted(c_t, bp, side="right") - 1, 0]
        by_state = np.array(
            [pw.running_kw, pw.idle_kw, pw.idle_kw, pw.down_kw, pw.idle_kw, pw.offline_kw]
        )
        p = by_state[s]
        run = s == MachineState.RUNNING
        p[run] *= 1.0 + gain * cond[run]
        return bp, p

    def _machine_signal(
        self,
        rec: _MachineRec,
        sig: _SignalState,
        grid: F64,
        st_t: F64,
        st_s: np.ndarray,
        c_t: F64,
        c_v: F64,
        bp_t: F64,
        bp_p: F64,
        e0: float,
    ) -> F64:
        spec = sig.spec
        typ = spec.type
        n = len(grid)
        states = st_s[np.searchsorted(st_t, grid, side="right") - 1]
        cv = c_v[np.searchsorted(c_t, grid, side="right") - 1]
        wear_model = rec.rt.sim.wear
        if typ == "power":
            p = bp_p[np.searchsorted(bp_t, grid, side="right") - 1]
            return p * (1.0 + sig.rng.normal(0.0, 0.02, n))
        if typ == "energy":
            return e0 + _integral(bp_t, bp_p, grid) / 3600.0
        if typ in ("tool_wear", "wheel_wear"):
            return cv[:, 1] * 100.0
        if typ == "part_count":
            return cv[:, 2].copy()
        if typ == "cycle_time":
            return cv[:, 3].copy()
        if typ == "surface_roughness":
            return cv[:, 4].copy()
        if typ == "dressing_count":
            return cv[:, 5].copy()
        if typ == "reject_rate":
            return cv[:, 6].copy()
        if typ in LAG_TYPES:
            default_nominal, tau = LAG_TYPES[typ]
            nominal = spec.nominal if spec.nominal is not None else default_nominal
            run_target = nominal * (1.0 + (0.15 * cv[:, 0] if typ == "tool_temperature" else 0))
            if typ == "bearing_temperature" and rec.degr:
                d, rho = self._health(rec, grid, spec.sample_period_s)
                run_target = run_target + 25.0 * d**1.5 + 5.0 * (rho - 1.0)
            idle_target = AMBIENT_C + 0.35 * (nominal - AMBIENT_C)
            target = np.where(states == MachineState.RUNNING, run_target, idle_target)
            stopped = (states == MachineState.DOWN) | (states == MachineState.OFFLINE)
            target = np.where(stopped, AMBIENT_C + 0.1 * (nominal - AMBIENT_C), target)
            x0 = sig.last if sig.last is not None else float(target[0])
            out = lag_filter(target, spec.sample_period_s, tau, x0)
            sig.last = float(out[-1])
            return out + sig.rng.normal(0.0, 0.05 + 0.002 * abs(nominal), n)
        level = LEVEL_TYPES.get(typ)
        if level is None:  # pragma: no cover - the model rejects unknown types
            raise ValueError(f"no physical model for signal type {typ!r}")
        nominal = spec.nominal if spec.nominal is not None else level.nominal
        share = state_share(states, level)
        running = states == MachineState.RUNNING
        if level.cyclic:
            ideal = min(rec.rt.spec.ideal_cycle_s.values())
            phase = 2.0 * np.pi * grid / max(ideal / 4.0, 1.0)
            share = np.where(running, 0.75 + 0.25 * np.sin(phase), share)
        if wear_model is not None and level.wear is not None:
            gain = wear_model.power_gain if level.wear == "power" else wear_model.vibration_gain
            share = np.where(running, share * (1.0 + gain * cv[:, 0]), share)
        value = nominal * share
        effect = HEALTH_EFFECTS.get(typ)
        if effect is not None and rec.degr:
            gain_k, power_p, gamma = effect
            d, rho = self._health(rec, grid, spec.sample_period_s)
            value = value * (1.0 + gain_k * d**power_p) * rho**gamma
        noise = sig.rng.normal(0.0, level.noise * abs(nominal), n)
        return value + np.where(share > 0, noise, noise * 0.05)

    def _env_signal(
        self, sig: _SignalState, grid: F64, events: list[tuple[float, float, str]]
    ) -> F64:
        spec = sig.spec
        n = len(grid)
        t0 = from_micros(self.ts(float(grid[0])))
        offset = (t0.astimezone(self._zone).utcoffset() or timedelta(0)).total_seconds()
        local_h = ((self.start / 1e6 + grid + offset) % 86_400.0) / 3600.0
        day = np.sin(2.0 * np.pi * (local_h - 9.0) / 24.0)  # warmest mid-afternoon
        typ = spec.type
        nominal = spec.nominal
        base: F64 | float
        if typ == "temperature":
            base = (nominal if nominal is not None else 21.0) + 0.4 * day
            value = base + sig.rng.normal(0.0, 0.05, n)
        elif typ == "humidity":
            base = (nominal if nominal is not None else 45.0) + 2.5 * day
            value = base + sig.rng.normal(0.0, 0.3, n)
        elif typ == "particle_count":
            base = nominal if nominal is not None else 100_000.0
            value = base * sig.rng.lognormal(0.0, 0.15, n) * (1.0 + 0.2 * day)
        else:
            base = nominal if nominal is not None else 0.0
            value = base + sig.rng.normal(0.0, 0.01 * abs(base) + 1e-3, n)
        for a, b, kind in events:
            on = (grid >= a) & (grid < b)
            if not on.any():
                continue
            ramp = 1.0 - np.exp(-(grid[on] - a) / 120.0)
            if typ == "particle_count":
                value[on] *= 1.0 + (8.0 if kind == "door_open" else 2.0) * ramp
            elif typ == "temperature":
                value[on] += (0.3 if kind == "door_open" else 2.0) * ramp
            elif typ == "humidity":
                value[on] += (6.0 if kind == "door_open" else 10.0) * ramp
        return value

    def _closed_states(self, w1: float, final: bool) -> StateBatch:
        idx, st, en, ss, rr = [], [], [], [], []
        for rec in self.recs:
            if final and rec.st_t and w1 > rec.st_t[-1]:
                rec.closed.append((rec.st_t[-1], w1, rec.st_s[-1], rec.st_r[-1]))
                rec.st_t[-1] = w1  # the open interval now starts at the end of the run
            later = []
            for a, b, s, r in rec.closed:
                if b > w1:  # closed after this window (the engine ran ahead): next window
                    later.append((a, b, s, r))
                    continue
                idx.append(rec.index)
                st.append(self.ts(a))
                en.append(self.ts(b))
                ss.append(s)
                rr.append("" if r in self._silent[rec.index] else r)
            rec.closed = later
        return StateBatch.build(self._machine_names, idx, st, en, ss, rr)

    def _open_states(self, w1: float) -> StateBatch:
        """The interval each machine is in at ``w1``, cut at ``w1``. The engine may have run
        ahead: then it is one of the intervals held back for the next window."""
        idx, st, en, ss, rr = [], [], [], [], []
        for rec in self.recs:
            cover = [c for c in rec.closed if c[0] <= w1 < c[1]]
            if cover:
                a, _, s, r = cover[0]
            elif rec.st_t and rec.st_t[-1] <= w1:
                a, s, r = rec.st_t[-1], rec.st_s[-1], rec.st_r[-1]
            else:
                continue
            idx.append(rec.index)
            st.append(self.ts(a))
            en.append(self.ts(w1))
            ss.append(s)
            rr.append("" if r in self._silent[rec.index] else r)
        return StateBatch.build(self._machine_names, idx, st, en, ss, rr)

    def _parts(self, w1: float) -> PartBatch:
        idx, ts, prod, good, scrap = [], [], [], [], []
        for rec in self.recs:
            keep = []
            for t, p, g in rec.parts:
                if t < w1:
                    idx.append(rec.index)
                    ts.append(self.ts(t))
                    prod.append(p)
                    good.append(1 if g else 0)
                    scrap.append(0 if g else 1)
                else:
                    keep.append((t, p, g))
            rec.parts = keep
        return PartBatch.build(self._machine_names, idx, ts, prod, good, scrap)

    def _prune(self, w1: float) -> None:
        """Forget points before ``w1`` except the last one (the value in force at w1)."""
        for rec in self.recs:
            k = int(np.searchsorted(np.asarray(rec.st_t), w1, side="right")) - 1
            if k > 0:
                del rec.st_t[:k], rec.st_s[:k], rec.st_r[:k], rec.st_p[:k]
            k = int(np.searchsorted(np.asarray(rec.c_t), w1, side="right")) - 1
            if k > 0:
                del rec.c_t[:k], rec.c_v[:k]

    # --- live view helpers ------------------------------------------------------------------
    def machine_specs(self) -> list[Machine]:
        return [r.rt.spec for r in self.recs]


def _integral(bp_t: F64, bp_p: F64, at: F64) -> F64:
    """∫ power dt from bp_t[0] to each time in ``at`` for a step function (kW·s)."""
    seg = np.diff(np.append(bp_t, np.inf))
    cum = np.concatenate(([0.0], np.cumsum(bp_p[:-1] * seg[:-1])))
    k = np.searchsorted(bp_t, at, side="right") - 1
    return np.asarray(cum[k] + bp_p[k] * (at - bp_t[k]), dtype=np.float64)
