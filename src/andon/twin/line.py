"""The line model: machines and finite buffers run by the discrete-event engine.

This one model is what the virtual factory runs (with physical signals on top, in
``andon.sim``) and what the simulation twin runs for what-if experiments; nothing is
implemented twice.

Behaviour, per machine:

* A machine takes a part from its input buffer (or from the line's raw-material supply,
  which follows the line's lot plan), processes it for a random cycle time with mean
  ``ideal × (1 + speed_loss)``, then puts it into its output buffer (or ships it). A full
  output buffer blocks it (*blocked after service*); an empty input starves it. Several
  machines may share a buffer (parallel stations). A machine fed by several buffers
  assembles: it starts only when each holds a part and takes one from each (the first
  buffer in the line file brings the product). A machine with several output buffers
  splits: it puts each part into the first of them, in file order, that has space.
* Cycle times follow the machine's ``cycle_dist``: lognormal (default), gamma,
  exponential, deterministic or empirical (observed ratios to the mean). The ideal cycle
  time is the minimum (ISO 22400): a lognormal or gamma cycle of a machine with a speed
  loss is ``ideal + excess``, the excess from the same family with mean ``ideal ×
  speed_loss`` and the spread that keeps the cycle's mean and standard deviation what the
  plant file says (:func:`cycle_law`, decision 0506), so no cycle beats the ideal and no
  period's performance exceeds 100 %. Without a speed loss (and for exponential,
  deterministic and empirical cycles) the cycle is drawn around its mean and may be
  shorter than the ideal.
* Failures: each failure mode has an exponential time to failure counted in **operating
  time** (only while a cycle runs) by default, or in **calendar time** (every instant the
  machine is not failed: it may fail while starved, blocked or stopped) when
  ``failure_basis: calendar``. A failure interrupts the cycle; after the repair (lognormal by
  default, ``ttr_dist``) the cycle resumes where it stopped. A failed machine loads no new
  part, but a finished part it holds still leaves when space opens downstream. Repairs go
  on during breaks and off shift. With ``repair_crew: k`` on the line at most ``k``
  repairs run at once; failed machines wait first come, first served. A mode with a
  ``degradation`` block fails instead when its hidden health reaches its threshold: the
  health falls in operating time times the product's regime factor, the repair or a
  maintenance window starts a new life (``andon.model.degradation``, decision 0507).
* Planned stops: breaks and maintenance windows from the shift calendar, product
  changeovers, tool changes and wheel dressing. A calendar stop that comes while a cycle
  runs takes effect when the cycle ends (an operator finishes the part first).
* Wear: each part adds ``1 / life_parts`` to the consumable's wear; at 100 % it is
  replaced (planned stop ``tool_change``). Wheels also glaze between dressings. The
  scrap probability is ``scrap_base + scrap_wear_gain × condition²``; a share ``rework``
  of the bad parts is processed again on the same machine instead of being scrapped.

Every random stream (cycle times, failures, repairs, quality) has its own generator derived
from the seed and the machine's position, so the same seed gives the same run bit for bit,
and changing one parameter leaves the other streams untouched (common random numbers).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

import numpy as np

from andon.model.calendar import BREAK, MAINTENANCE, SCHEDULED, expand_calendar
from andon.model.degradation import DegradationProcess
from andon.model.plant import Area, Distribution, FailureMode, Line, Machine, Plant
from andon.model.types import MachineState, Micros
from andon.twin.engine import Engine, Event

__all__ = [
    "BufferRuntime",
    "FactoryModel",
    "LineListener",
    "MachineRuntime",
    "cycle_law",
    "draw_cycle",
    "draw_duration",
]

_WEEK_S = 7 * 86_400.0


class LineListener(Protocol):
    """What the line model reports. Times are engine seconds."""

    def on_state(self, m: MachineRuntime, t: float, state: MachineState, reason: str) -> None: ...

    def on_part(
        self, m: MachineRuntime, t: float, product: str, good: bool, cycle_s: float
    ) -> None: ...

    def on_condition(self, m: MachineRuntime, t: float, event: str) -> None:
        """The consumable's condition changed (``tool_change``, ``wheel_change``,
        ``dressing``), or a maintenance window restored the health of the machine's
        degrading modes (``preventive_maintenance``, decision 0507)."""

    def on_fault(self, m: MachineRuntime, t: float, code: str, repair_s: float) -> None: ...


def _lognormal(rng: np.random.Generator, mean: float, cv: float) -> float:
    if cv <= 0:
        return mean
    s2 = math.log1p(cv * cv)
    return float(rng.lognormal(math.log(mean) - s2 / 2, math.sqrt(s2)))


def draw_duration(
    rng: np.random.Generator,
    dist: Distribution,
    mean: float,
    cv: float,
    empirical: tuple[float, ...] = (),
) -> float:
    """One random duration with the given mean.

    ``cv`` is the coefficient of variation for ``lognormal`` and ``gamma``; ``empirical``
    draws one of the observed ratios (rescaled to mean 1) uniformly.

    >>> rng = np.random.default_rng(1)
    >>> draw_duration(rng, "deterministic", 5.0, 0.3)
    5.0
    >>> draw_duration(rng, "empirical", 10.0, 0.0, (1.0, 1.0))
    10.0
    """
    if dist == "lognormal":
        return _lognormal(rng, mean, cv)
    if dist == "deterministic":
        return mean
    if dist == "exponential":
        return float(rng.exponential(mean))
    if dist == "gamma":
        if cv <= 0:
            return mean
        shape = 1.0 / (cv * cv)
        return float(rng.gamma(shape, mean / shape))
    if not empirical:
        raise ValueError("an empirical distribution needs observed values")
    scale = mean * len(empirical) / math.fsum(empirical)
    return empirical[int(rng.integers(len(empirical)))] * scale


def cycle_law(dist: Distribution, speed_loss: float, cv: float) -> tuple[float, float, float]:
    """How a machine's cycle is drawn, per second of ideal cycle time: ``cycle = ideal ×
    (floor + X)`` with ``X`` from ``dist`` with mean ``scale`` and coefficient of
    variation ``cv_x``; returns ``(floor, scale, cv_x)``.

    For ``lognormal`` and ``gamma`` with ``speed_loss > 0`` and ``cv > 0`` the ideal is the
    floor (ISO 22400: a machine's cycle is its ideal plus non-negative delays) and the excess
    keeps the cycle's mean ``ideal × (1 + speed_loss)`` and standard deviation ``cv × mean``:
    ``cv_x = cv × (1 + speed_loss) / speed_loss``. Otherwise there is no floor and the
    cycle is drawn around its mean with ``cv`` as configured (decision 0506). The event
    engine (:func:`draw_cycle`) and the serial fast path
    (:func:`andon.twin.fast.draw_cycles`) both draw through this.

    >>> cycle_law("lognormal", 0.02, 0.08)
    (1.0, 0.02, 4.08)
    >>> cycle_law("lognormal", 0.0, 0.08), cycle_law("exponential", 0.02, 1.0)
    ((0.0, 1.0, 0.08), (0.0, 1.02, 1.0))
    """
    if dist in ("lognormal", "gamma") and speed_loss > 0 and cv > 0:
        return 1.0, speed_loss, cv * (1.0 + speed_loss) / speed_loss
    return 0.0, 1.0 + speed_loss, cv


def draw_cycle(
    rng: np.random.Generator,
    dist: Distribution,
    ideal: float,
    speed_loss: float,
    cv: float,
    empirical: tuple[float, ...] = (),
) -> float:
    """One cycle time of a machine with this ideal cycle time (:func:`cycle_law`).

    >>> rng = np.random.default_rng(2)
    >>> cycles = [draw_cycle(rng, "lognormal", 40.0, 0.02, 0.08) for _ in range(1000)]
    >>> min(cycles) >= 40.0
    True
    >>> draw_cycle(rng, "deterministic", 40.0, 0.02, 0.08)
    40.8
    """
    floor, scale, cv_x = cycle_law(dist, speed_loss, cv)
    return ideal * floor + draw_duration(rng, dist, ideal * scale, cv_x, empirical)


class _Crew:
    """A line's repair crew: ``size`` repairers (``None`` = unlimited), FIFO queue."""

    def __init__(self, size: int | None) -> None:
        self.free = size
        self.queue: deque[tuple[MachineRuntime, FailureMode, float, float]] = deque()


@dataclass(eq=False)
class BufferRuntime:
    id: str
    capacity: int
    items: deque[str] = field(default_factory=deque)
    consumers: list[MachineRuntime] = field(default_factory=list)
    producers: list[MachineRuntime] = field(default_factory=list)


class _LinePlan:
    """The raw-material supply of a line: products in lots, in plan order, repeated."""

    def __init__(self, line: Line) -> None:
        self.products = [(p.id, p.lot_size) for p in line.products]
        self.i = 0
        self.left = self.products[0][1]

    def next(self) -> str:
        if self.left == 0:
            self.i = (self.i + 1) % len(self.products)
            self.left = self.products[self.i][1]
        self.left -= 1
        return self.products[self.i][0]


class MachineRuntime:
    """One machine's live state inside the model."""

    def __init__(
        self,
        model: FactoryModel,
        path: str,
        area: Area,
        line: Line,
        machine: Machine,
        plan: _LinePlan,
        seed_key: tuple[int, ...],
        crew: _Crew | None = None,
    ) -> None:
        self.model = model
        self.path = path
        self.area, self.line, self.spec = area, line, machine
        self.plan = plan
        sim = machine.sim
        self.sim = sim
        ss = np.random.SeedSequence(model.seed, spawn_key=seed_key)
        rc, rf, rr, rq = ss.spawn(4)
        self.rng_cycle = np.random.Generator(np.random.PCG64(rc))
        self.rng_fail = np.random.Generator(np.random.PCG64(rf))
        self.rng_repair = np.random.Generator(np.random.PCG64(rr))
        self.rng_quality = np.random.Generator(np.random.PCG64(rq))
        self.modes: tuple[FailureMode, ...] = sim.failure_modes
        # degrading modes (decision 0507): their own streams, spawned after the four above
        # so that every other stream draws exactly as before; their ttf entry stays inf
        self.degr: list[DegradationProcess | None] = [None] * len(self.modes)
        self.degrading = sim.degrading
        if self.degrading:
            for i, (fm, sd) in enumerate(zip(self.modes, ss.spawn(len(self.modes)), strict=True)):
                if fm.degradation is not None:
                    gen = np.random.Generator(np.random.PCG64(sd))
                    self.degr[i] = DegradationProcess(fm.degradation, gen)
        self.failed_mode = -1
        self.ttf = [self._draw_ttf(fm) for fm in self.modes]
        self.calendar_failures = sim.failure_basis == "calendar"
        self.crew = crew
        self.fail_event: Event | None = None  # calendar basis: the next failure
        self.up_since = 0.0  # calendar basis: when the failure clocks last started
        self.down_since = 0.0
        self.inbufs: list[BufferRuntime] = []  # several: assembly (one part from each)
        self.outbufs: list[BufferRuntime] = []  # several: split (first with space)
        # dynamic state
        self.state = MachineState.OFFLINE
        self.reason = "not_scheduled"
        self.since = 0.0
        self.sched = "not_scheduled"
        self.failed = False
        self.activity: Event | None = None  # cycle end, failure or planned activity
        self.part: str | None = None  # product being processed
        self.remaining = 0.0  # seconds of processing left on the current part
        self.cycle_total = 0.0  # drawn cycle time of the current part
        self.run_started = 0.0
        self.held: str | None = None  # finished good part waiting for output space
        self.last_product: str | None = None
        self.setup_done_for: str | None = None
        self.wake_pending = False
        # wear
        self.parts_on_tool = 0
        self.parts_since_dress = 0
        self.glaze = 0.0
        self.dressings = 0
        # counters
        self.good = 0
        self.scrap = 0
        self.reworked = 0
        self.ideal_s = 0.0  # Σ ideal cycle time of produced parts
        self.durations = {s: 0.0 for s in MachineState}

    @property
    def inbuf(self) -> BufferRuntime | None:
        """The first input buffer (``None``: fed by the line's raw-material supply)."""
        return self.inbufs[0] if self.inbufs else None

    @property
    def outbuf(self) -> BufferRuntime | None:
        """The first output buffer (``None``: the machine ships its parts)."""
        return self.outbufs[0] if self.outbufs else None

    # --- condition ---------------------------------------------------------------------
    @property
    def wear(self) -> float:
        w = self.sim.wear
        return min(1.0, self.parts_on_tool / w.life_parts) if w else 0.0

    @property
    def condition(self) -> float:
        """0 = new consumable, 1 = worn out. Wheels: half wear, half glazing."""
        w = self.sim.wear
        if w is None:
            return 0.0
        if w.kind == "wheel":
            return 0.5 * self.wear + 0.5 * min(1.0, self.glaze)
        return self.wear

    def _draw_ttf(self, fm: FailureMode) -> float:
        if fm.degradation is not None:
            return math.inf  # fails when its health reaches the threshold
        return float(self.rng_fail.exponential(fm.mtbf_h * 3600.0))

    def _set_wear_rate(self, running: bool) -> None:
        """Degrading modes wear while a cycle runs, at the product's regime factor."""
        now = self.model.engine.now
        for p in self.degr:
            if p is not None:
                r = p.spec.regimes.get(self.part or "", 1.0) if running else 0.0
                p.set_rate(now, r)

    # --- state bookkeeping -------------------------------------------------------------
    def set_state(self, state: MachineState, reason: str = "") -> None:
        if state == self.state and reason == self.reason:
            return
        now = self.model.engine.now
        self.durations[self.state] += now - self.since
        self.state, self.reason, self.since = state, reason, now
        for lst in self.model.listeners:
            lst.on_state(self, now, state, reason)

    def wake(self) -> None:
        """Re-decide at the current instant (after the events already due now)."""
        if not self.wake_pending:
            self.wake_pending = True
            self.model.engine.after(0.0, self._woken)

    def _woken(self) -> None:
        self.wake_pending = False
        self.advance()

    # --- the decision ------------------------------------------------------------------
    def advance(self) -> None:
        if self.activity is not None:
            return
        held = self.held
        if held is not None:
            if not self.outbufs:
                self.held = None
            for out in self.outbufs:
                if len(out.items) < out.capacity:
                    out.items.append(held)
                    self.held = None
                    for c in out.consumers:
                        c.wake()
                    break
        if self.failed:
            return  # a held part leaves passively; nothing new starts until repaired
        if self.sched != SCHEDULED:
            if self.sched == MAINTENANCE and self.degrading:
                self._preventive_maintenance()
            if self.sched in (BREAK, MAINTENANCE):
                self.set_state(MachineState.PLANNED_STOP, self.sched)
            else:
                self.set_state(MachineState.OFFLINE, "not_scheduled")
            return
        if self.held is not None:
            self.set_state(MachineState.BLOCKED, "")
            return
        w = self.sim.wear
        if w is not None and self.part is None:
            if self.parts_on_tool >= w.life_parts:
                kind = "wheel_change" if w.kind == "wheel" else "tool_change"
                self._planned(kind, w.change_min * 60.0, self._consumable_replaced)
                return
            if w.dress_every_parts and self.parts_since_dress >= w.dress_every_parts:
                self._planned("dressing", w.dress_min * 60.0, self._dressed)
                return
        if self.part is None:
            ins = self.inbufs
            if not ins:
                self.part = self.plan.next()
            elif all(b.items for b in ins):
                # the first buffer brings the part (its product); others bring components
                self.part = ins[0].items.popleft()
                for p in ins[0].producers:
                    p.wake()
                for inb in ins[1:]:
                    inb.items.popleft()
                    for p in inb.producers:
                        p.wake()
            else:
                self.set_state(MachineState.STARVED, "")
                return
            self.cycle_total = self._draw_cycle(self.part)
            self.remaining = self.cycle_total
        if (
            self.last_product is not None
            and self.part != self.last_product
            and self.setup_done_for != self.part
            and self.sim.changeover_min > 0
        ):
            part = self.part
            self._planned("changeover", self.sim.changeover_min * 60.0, lambda: self._set_up(part))
            return
        self._run()

    def _planned(self, reason: str, seconds: float, done: Callable[[], None]) -> None:
        self.set_state(MachineState.PLANNED_STOP, reason)

        def finish() -> None:
            self.activity = None
            done()
            self.advance()

        self.activity = self.model.engine.after(seconds, finish)

    def _preventive_maintenance(self) -> None:
        """A maintenance window starts: degrading modes with ``pm_resets`` start a new life."""
        if self.state == MachineState.PLANNED_STOP and self.reason == MAINTENANCE:
            return
        now = self.model.engine.now
        for p in self.degr:
            if p is not None and p.spec.pm_resets:
                p.new_life(now)
        for lst in self.model.listeners:
            lst.on_condition(self, now, "preventive_maintenance")

    def _set_up(self, product: str) -> None:
        self.setup_done_for = product

    def _consumable_replaced(self) -> None:
        assert self.sim.wear is not None
        self.parts_on_tool = 0
        self.parts_since_dress = 0
        self.glaze = 0.0
        self.dressings = 0
        kind = "wheel_change" if self.sim.wear.kind == "wheel" else "tool_change"
        for lst in self.model.listeners:
            lst.on_condition(self, self.model.engine.now, kind)

    def _dressed(self) -> None:
        assert self.sim.wear is not None
        self.parts_since_dress = 0
        self.glaze *= 1.0 - self.sim.wear.dress_restore
        self.dressings += 1
        for lst in self.model.listeners:
            lst.on_condition(self, self.model.engine.now, "dressing")

    def _run(self) -> None:
        self.set_state(MachineState.RUNNING, "")
        eng = self.model.engine
        self.run_started = eng.now
        ttf_min = min(self.ttf) if self.ttf and not self.calendar_failures else math.inf
        if self.degrading:
            self._set_wear_rate(True)
            ttf_min = min([ttf_min, *(p.seconds_left() for p in self.degr if p is not None)])
        if ttf_min < self.remaining:
            self.activity = eng.after(ttf_min, self._fail)
        else:
            self.activity = eng.after(self.remaining, self._cycle_end)

    def _consume_operating(self) -> None:
        elapsed = self.model.engine.now - self.run_started
        self.remaining = max(0.0, self.remaining - elapsed)
        if not self.calendar_failures:
            self.ttf = [x - elapsed for x in self.ttf]
        if self.degrading:
            self._set_wear_rate(False)

    def arm_failures(self) -> None:
        """Calendar basis: schedule the next failure from the clocks of every mode."""
        if self.ttf:
            eng = self.model.engine
            self.up_since = eng.now
            self.fail_event = eng.after(min(self.ttf), self._calendar_fail)

    def _calendar_fail(self) -> None:
        self.fail_event = None
        elapsed = self.model.engine.now - self.up_since
        self.ttf = [x - elapsed for x in self.ttf]
        if self.activity is not None and self.state == MachineState.RUNNING:
            self.activity.cancel()  # the cycle is interrupted and resumes after repair
            self.activity = None
            self._consume_operating()
        self._fail_mode()

    def _fail(self) -> None:
        self.activity = None
        self._consume_operating()
        self._fail_mode()

    def _fail_mode(self) -> None:
        if self.degrading:  # a degrading mode at its threshold has no wear left
            left = [
                x if p is None else p.wear_left() for x, p in zip(self.ttf, self.degr, strict=True)
            ]
            i = min(range(len(left)), key=left.__getitem__)
            self.failed_mode = i
        else:
            i = min(range(len(self.ttf)), key=self.ttf.__getitem__)
        fm = self.modes[i]
        self.ttf[i] = self._draw_ttf(fm)
        repair = draw_duration(
            self.rng_repair, fm.ttr_dist, fm.mttr_min * 60.0, fm.ttr_cv, fm.ttr_empirical
        )
        self.failed = True
        self.set_state(MachineState.DOWN, fm.code)
        now = self.model.engine.now
        self.down_since = now
        crew = self.crew
        if crew is None or crew.free is None:
            self._start_repair(fm, repair)
        elif crew.free > 0:
            crew.free -= 1
            self._start_repair(fm, repair)
        else:
            crew.queue.append((self, fm, repair, now))

    def _start_repair(self, fm: FailureMode, repair: float) -> None:
        """The repair starts now; listeners hear the whole stop from the failure on."""
        now = self.model.engine.now
        for lst in self.model.listeners:
            lst.on_fault(self, self.down_since, fm.code, now - self.down_since + repair)
        self.model.engine.after(repair, self._repaired)

    def _repaired(self) -> None:
        self.failed = False
        if self.failed_mode >= 0:
            p = self.degr[self.failed_mode]
            if p is not None:  # the repair restores the failed unit
                p.new_life(self.model.engine.now)
            self.failed_mode = -1
        crew = self.crew
        if crew is not None and crew.free is not None:
            if crew.queue:
                nxt, fm, repair, _ = crew.queue.popleft()
                nxt._start_repair(fm, repair)
            else:
                crew.free += 1
        if self.calendar_failures:
            self.arm_failures()
        self.advance()

    def _cycle_end(self) -> None:
        self.activity = None
        self._consume_operating()
        product = self.part
        assert product is not None
        self.part = None
        q = self.sim.quality
        cond = self.condition
        p_scrap = min(1.0, q.scrap_base + q.scrap_wear_gain * cond * cond)
        good = bool(self.rng_quality.random() >= p_scrap)
        if not good and q.rework > 0 and self.rng_quality.random() < q.rework:
            self._rework(product)
            return
        if good:
            self.good += 1
            self.held = product
        else:
            self.scrap += 1
        self.ideal_s += self.spec.ideal_cycle_s[product]
        self.last_product = product
        w = self.sim.wear
        if w is not None:
            self.parts_on_tool += 1
            if w.kind == "wheel":
                self.parts_since_dress += 1
                every = w.dress_every_parts or w.life_parts
                self.glaze += 1.0 / every
        for lst in self.model.listeners:
            lst.on_part(self, self.model.engine.now, product, good, self.cycle_total)
        self.advance()

    def _draw_cycle(self, product: str) -> float:
        return draw_cycle(
            self.rng_cycle,
            self.sim.cycle_dist,
            self.spec.ideal_cycle_s[product],
            self.sim.speed_loss,
            self.sim.cycle_cv,
            self.sim.cycle_empirical,
        )

    def _rework(self, product: str) -> None:
        """A bad part goes round again on this machine (rework loop at the station)."""
        self.reworked += 1
        self.part = product
        self.cycle_total = self._draw_cycle(product)
        self.remaining = self.cycle_total
        w = self.sim.wear
        if w is not None:
            self.parts_on_tool += 1
        self.advance()

    def set_schedule(self, status: str) -> None:
        if status == self.sched:
            return
        self.sched = status
        self.advance()

    def close(self, now: float) -> None:
        self.durations[self.state] += now - self.since
        self.since = now


class FactoryModel:
    """Every line of a plant on one engine. ``t0`` is the UTC start (µs) of engine time 0."""

    def __init__(
        self,
        plant: Plant,
        seed: int,
        t0: Micros,
        listeners: Sequence[LineListener] = (),
        lines: Sequence[str] | None = None,
    ):
        self.plant = plant
        self.seed = seed
        self.t0 = t0
        self.engine = Engine()
        self.listeners = list(listeners)
        self.machines: list[MachineRuntime] = []
        self.buffers: dict[str, BufferRuntime] = {}
        for li, (area, line) in enumerate(plant.lines()):
            if lines is not None and line.id not in lines:
                continue
            plan = _LinePlan(line)
            crew = _Crew(line.repair_crew) if line.repair_crew is not None else None
            by_id: dict[str, MachineRuntime] = {}
            for mi, m in enumerate(line.machines):
                rt = MachineRuntime(
                    self, plant.machine_path(area, line, m), area, line, m, plan, (li, mi), crew
                )
                by_id[m.id] = rt
                self.machines.append(rt)
            for b in line.buffers:
                buf = BufferRuntime(b.id, b.capacity)
                first = line.products[0].id
                buf.items.extend([first] * b.initial)
                for mid in b.from_:
                    by_id[mid].outbufs.append(buf)
                    buf.producers.append(by_id[mid])
                for mid in b.to:
                    by_id[mid].inbufs.append(buf)
                    buf.consumers.append(by_id[mid])
                self.buffers[f"{plant.site.id}/{area.id}/{line.id}/{b.id}"] = buf
        self._calendar_until = 0.0
        self._extend_calendar()
        for rt in self.machines:
            for lst in self.listeners:
                lst.on_state(rt, 0.0, rt.state, rt.reason)
            rt.wake()
        for rt in self.machines:
            if rt.calendar_failures:
                rt.arm_failures()

    def _extend_calendar(self) -> None:
        """Schedule the calendar's status changes one week ahead at a time."""
        a = self._calendar_until
        b = a + _WEEK_S
        start_us = self.t0 + round(a * 1e6)
        end_us = self.t0 + round(b * 1e6)
        site = self.plant.site
        eng = self.engine
        for m in self.machines:
            for p in expand_calendar(site.calendar, site.timezone, m.spec.id, start_us, end_us):
                at = (p.start - self.t0) / 1e6
                if at <= eng.now:
                    if a == 0.0:
                        m.sched = p.status  # before the first decision; nothing to advance
                    else:
                        m.set_schedule(p.status)
                else:
                    eng.schedule(at, partial(m.set_schedule, p.status))
        self._calendar_until = b
        eng.schedule(b, self._extend_calendar)

    def run(self, until: float) -> None:
        self.engine.run(until)

    def close(self) -> None:
        for m in self.machines:
            m.close(self.engine.now)
