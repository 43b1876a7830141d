"""Twin scenario jobs: a line's calibrated twin with requested changes, compared against
today's configuration with common random numbers, run in the background.

Pieces, each small:

* ``find_line`` / ``scenario_baseline`` / ``apply_changes``: the editable baseline of a line
  and the dashboard's changes turned into ``andon.twin.experiment`` changes (validated
  against the plant model, so a bad id is a 422 naming it before any job exists).
* ``replicate_pair`` / ``summarise``: the CPU-bound part (a plain function, run in a
  worker process): replication ``r`` of both configurations uses the same seeds
  (``andon.twin.run``); the bottleneck comes from the simulated state timelines through the
  same ``andon.twin.bottleneck.analyse`` that the stored data uses.
* ``JobStore``: where job rows live (the platform's ``andon.platform.twin_jobs.SqlJobStore``
  keeps them in the metadata database, and ``twin_jobs`` there builds the service from the
  settings: the twin imports nothing above it, ``docs/layering.md``).
* ``TwinJobs``: queue, per-tenant limit, worker processes, progress, shutdown; each
  instance owns its jobs and beats a heartbeat on them, and worker processes die with it.

See ``docs/decisions/0608-twin-jobs-and-analytics-endpoints.md`` for why processes, how
progress is persisted and what "interrupted" means.
"""

from __future__ import annotations

import asyncio
import logging
import math
import multiprocessing
import os
import secrets
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from pydantic import ValidationError

from andon.kpi.ranges import line_outputs, planned_production_s
from andon.model.clock import wall_clock
from andon.model.plant import Area, Line, Machine, Plant
from andon.model.process import die_with_parent
from andon.model.types import Micros
from andon.store.base import TelemetryStore
from andon.twin.bottleneck import analyse, timeline_batch
from andon.twin.calibrate import fit_line
from andon.twin.experiment import Change, apply_scenario, per_part_value
from andon.twin.run import Estimate, TimelineRecorder, default_t0, estimate, run_events

__all__ = [
    "ACTIVE",
    "BadScenario",
    "Interrupted",
    "JobStore",
    "LineRef",
    "TooManyJobs",
    "TwinJobs",
    "TwinPrices",
    "add_planned_rates",
    "apply_changes",
    "find_line",
    "machine_cycle_s",
    "replicate_pair",
    "scenario_baseline",
    "summarise",
]

ACTIVE = ("queued", "running")


class BadScenario(ValueError):
    """The request names a line, machine or buffer the plant does not have, or a change it
    cannot take; the message names the field (the API answers 422 with it)."""


class Interrupted(Exception):
    """The service is shutting down: the job stops at its next replication."""


class TooManyJobs(Exception):
    """The tenant already has as many queued or running jobs as allowed."""


# ---- the line and its editable baseline ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class LineRef:
    """A line of a plant, with the paths the API uses."""

    area: Area
    line: Line
    path: str

    def machine_path(self, m: Machine) -> str:
        return f"{self.path}/{m.id}"

    def buffer_path(self, buffer_id: str) -> str:
        return f"{self.path}/{buffer_id}"


def find_line(plant: Plant, line: str, what: str = "line") -> LineRef:
    """The line named by its path ``site/area/line`` (or its bare id when unique); a bad
    id is a ``BadScenario`` naming it."""
    found = []
    for a, ln in plant.lines():
        path = f"{plant.site.id}/{a.id}/{ln.id}"
        if line == path:
            return LineRef(a, ln, path)
        if line == ln.id:
            found.append(LineRef(a, ln, path))
    if len(found) == 1:
        return found[0]
    known = ", ".join(f"{plant.site.id}/{a.id}/{ln.id}" for a, ln in plant.lines())
    raise BadScenario(f"{what}: {line!r} is not a line of this site (lines: {known})")


def machine_cycle_s(line: Line, m: Machine) -> float:
    """The machine's ideal cycle time averaged over the line's products, weighted by lot
    size (the products it does not make are left out)."""
    pairs = [(m.ideal_cycle_s[p.id], p.lot_size) for p in line.products if p.id in m.ideal_cycle_s]
    if not pairs:
        return float(np.mean(list(m.ideal_cycle_s.values())))
    return sum(c * n for c, n in pairs) / sum(n for _, n in pairs)


def _mtbf_mttr_h(m: Machine) -> tuple[float | None, float | None]:
    modes = m.sim.failure_modes
    if not modes:
        return None, None
    rate = sum(1.0 / f.mtbf_h for f in modes)
    mttr_h = sum(f.mttr_min / 60.0 / f.mtbf_h for f in modes) / rate
    return 1.0 / rate, mttr_h


def scenario_baseline(plant: Plant, ref: LineRef) -> dict[str, Any]:
    """The editable baseline of a line from the plant model's configuration."""
    machines = []
    for m in ref.line.machines:
        mtbf, mttr = _mtbf_mttr_h(m)
        machines.append(
            {
                "machine": ref.machine_path(m),
                "cycle_time_s": round(machine_cycle_s(ref.line, m), 6),
                "mtbf_h": None if mtbf is None else round(mtbf, 6),
                "mttr_h": None if mttr is None else round(mttr, 6),
            }
        )
    return {
        "line": ref.path,
        "buffers": [
            {"buffer": ref.buffer_path(b.id), "capacity": b.capacity} for b in ref.line.buffers
        ],
        "machines": machines,
        "crew": ref.line.repair_crew,
        "shifts": [s.model_dump(mode="json") for s in plant.site.calendar.shifts],
        "source": "config",
    }


def _pick(ids: list[str], ref: LineRef, key: str, field: str, kind: str) -> str:
    """The bare id for ``key`` (a path under the line, or a bare id of the line)."""
    bare = key.removeprefix(ref.path + "/")
    if bare in ids and "/" not in bare:
        return bare
    raise BadScenario(f"changes.{field}: {key!r} is not a {kind} of line {ref.path}")


def apply_changes(
    plant: Plant, configured: Plant, ref: LineRef, changes: Mapping[str, Any]
) -> Plant:
    """``plant`` (the configured plant or a calibrated twin of the line) with the dashboard's
    changes. Cycle times, MTBF and MTTR are given as new *configured* values: the twin is
    scaled by new ÷ configured, so a calibrated twin keeps what it learnt (its speed loss,
    its spread) and moves by the same ratio. Buffers, crew and shifts are absolute."""
    cfg_line = find_line(configured, ref.path).line
    spec = {m.id: m for m in cfg_line.machines}
    mids = list(spec)
    out: list[Change] = []
    for key, cap in (changes.get("buffers") or {}).items():
        bid = _pick([b.id for b in cfg_line.buffers], ref, key, "buffers", "buffer")
        out.append(Change(buffer=bid, capacity=int(cap)))
    for key, new in (changes.get("cycle_time_s") or {}).items():
        mid = _pick(mids, ref, key, "cycle_time_s", "machine")
        out.append(Change(machine=mid, speed=machine_cycle_s(cfg_line, spec[mid]) / float(new)))
    for field_, kind in (("mtbf_h", 0), ("mttr_h", 1)):
        for key, new in (changes.get(field_) or {}).items():
            mid = _pick(mids, ref, key, field_, "machine")
            old = _mtbf_mttr_h(spec[mid])[kind]
            if old is None:
                raise BadScenario(f"changes.{field_}: machine {key!r} has no failure modes")
            factor = float(new) / old
            out.append(
                Change(machine=mid, mtbf_factor=factor)
                if kind == 0
                else Change(machine=mid, mttr_factor=factor)
            )
    try:
        changed = apply_scenario(plant, ref.line.id, out) if out else plant
        crew, shifts = changes.get("crew"), changes.get("shifts")
        if crew is None and shifts is None:
            return changed
        doc = changed.model_dump(by_alias=True, mode="json")
        if crew is not None:
            for a in doc["site"]["areas"]:
                for ln in a["lines"]:
                    if ln["id"] == ref.line.id:
                        ln["repair_crew"] = int(crew)
        if shifts is not None:
            doc["site"]["calendar"]["shifts"] = [
                s if isinstance(s, dict) else s.model_dump(mode="json") for s in shifts
            ]
        return Plant.model_validate(doc)
    except (KeyError, ValidationError, ValueError) as exc:
        raise BadScenario(f"changes: {exc}") from exc


# ---- the simulation (CPU-bound, in a worker process) --------------------------------------


@dataclass(frozen=True, slots=True)
class TwinPrices:
    """What a good part of the line is worth: ``per_hour`` is the contribution of an hour of
    the pacing (bottleneck) stage, as ``andon.kpi.cost.LossPrices.per_hour``."""

    per_hour: float = 3000.0
    currency: str = "TWD"


def _stage_cycle_s(line: Line, mid: str) -> float:
    """Ideal cycle time of the stage of ``mid``: machines with the same input and output
    buffers work in parallel (decision 0101)."""

    def key(x: str) -> tuple[frozenset[str], frozenset[str]]:
        ins = frozenset(b.id for b in line.buffers if x in b.to)
        outs = frozenset(b.id for b in line.buffers if x in b.from_)
        return ins, outs

    members = [m for m in line.machines if key(m.id) == key(mid)]
    return 1.0 / sum(1.0 / machine_cycle_s(line, m) for m in members)


def _ci(e: Estimate) -> list[float]:
    hw = e.half_width if math.isfinite(e.half_width) else 0.0
    return [e.mean - hw, e.mean + hw]


def replicate_pair(
    base: Plant, scenario: Plant, line_id: str, hours: float, seed: int, rep: int
) -> tuple[float, float, list[float], list[float]]:
    """Replication ``rep`` of today and of the scenario with the same seeds (common random
    numbers): throughput per hour of each and each machine's momentary-bottleneck share
    (flow order), from the simulated state timelines through ``analyse``. A plain function
    of picklable arguments: the runner sends it to a worker process."""
    t0 = default_t0(base)
    end_s = hours * 3600.0
    line = next(ln for _, ln in base.lines() if ln.id == line_id)
    order = [m.id for m in line.machines]
    out: list[Any] = []
    for plant in (base, scenario):
        rec = TimelineRecorder()
        r = run_events(plant, line_id, hours, seed, rep, 0.0, rec, t0)
        batch = timeline_batch(rec.states, t0, end_s, order)
        b = analyse(batch, t0, t0 + round(end_s * 1e6), order)
        out.append((r.throughput_per_h, [b.sole[m] + b.shifting[m] for m in order]))
    return out[0][0], out[1][0], out[0][1], out[1][1]


def summarise(
    pairs: list[tuple[float, float, list[float], list[float]]],
    ref: LineRef,
    hours: float,
    prices: TwinPrices,
) -> dict[str, Any]:
    """The job's result from its replication pairs: Student-t 95 % intervals of each
    configuration and of the paired difference, the bottleneck (the machine that was the
    momentary bottleneck longest over all replications) and the difference in money per
    calendar day (a good part is worth ``per_hour`` × the pacing stage's cycle time,
    ``andon.twin.experiment.per_part_value``)."""
    order = [m.id for m in ref.line.machines]
    ta = np.array([p[0] for p in pairs])
    tb = np.array([p[1] for p in pairs])

    def bottleneck(k: int) -> str | None:
        s = np.sum([p[k] for p in pairs], axis=0)
        return f"{ref.path}/{order[int(np.argmax(s))]}" if float(s.max()) > 0 else None

    today, scen, d = estimate(ta), estimate(tb), estimate(tb - ta)
    bn = bottleneck(2)
    pace = (
        _stage_cycle_s(ref.line, bn.rsplit("/", 1)[1])
        if bn
        else min(machine_cycle_s(ref.line, m) for m in ref.line.machines)
    )
    value = per_part_value(prices.per_hour, pace)
    money = estimate((tb - ta) * 24.0 * value)
    return {
        "today": {"throughput_per_h": today.mean, "ci": _ci(today), "bottleneck": bn},
        "scenario": {"throughput_per_h": scen.mean, "ci": _ci(scen), "bottleneck": bottleneck(3)},
        "difference": {"throughput_per_h": d.mean, "ci": _ci(d), "bottleneck": None},
        "money": {
            "per_day": round(money.mean, 2),
            "ci": [round(x, 2) for x in _ci(money)],
            "currency": prices.currency,
            "value_per_part": round(value, 4),
        },
        "replications": len(pairs),
        "hours": hours,
    }


def add_planned_rates(
    result: dict[str, Any], base: Plant, scenario: Plant, ref: LineRef, hours: float
) -> None:
    """Each configuration's rate per planned production hour (``per_planned_h``, over
    ``planned_h``: the calendar's production time of the line's last stations in the
    simulated hours), the board's and line page's definition (``andon.kpi.summary``), beside
    ``throughput_per_h`` per simulated hour (idle nights included), which the money per day
    is computed from."""
    t0 = default_t0(base)
    t1 = t0 + round(hours * 3.6e9)
    last = line_outputs(base)[ref.path]
    for key, plant in (("today", base), ("scenario", scenario)):
        planned_h = planned_production_s(plant, last, t0, t1) / 3600.0
        r = result[key]
        r["planned_h"] = round(planned_h, 6)
        r["per_planned_h"] = (
            round(r["throughput_per_h"] * hours / planned_h, 6) if planned_h > 0 else None
        )


# ---- where job rows live --------------------------------------------------------------------


class JobStore(Protocol):
    """Job rows: the columns of ``twin_jobs`` with ``request`` and ``result`` as objects."""

    async def create(self, row: dict[str, Any]) -> None: ...

    async def get(self, tenant: str, site_id: str, job_id: str) -> dict[str, Any] | None: ...

    async def list(self, tenant: str, site_id: str, limit: int) -> list[dict[str, Any]]: ...

    async def active(self, tenant: str) -> int: ...

    async def update(self, job_id: str, **fields: Any) -> None: ...

    async def beat(self, owner: str, now: Micros) -> None:
        """Set ``heartbeat_at = now`` on ``owner``'s queued and running jobs."""
        ...

    async def interrupt_stale(
        self, now: Micros, stale_before: Micros, owner: str, *, unowned: bool = True
    ) -> int:
        """Mark queued and running jobs of other owners whose heartbeat is before
        ``stale_before`` failed, ``interrupted``, at ``now``; with ``unowned``, also jobs
        without an owner (rows from before owners)."""
        ...


# ---- worker processes -----------------------------------------------------------------------

_log = logging.getLogger(__name__)


# ---- the runner -----------------------------------------------------------------------------


class TwinJobs:
    """Queues, runs and records twin jobs. ``workers`` processes run the simulations, one
    replication pair per task, so the event loop only waits on futures and persists the
    progress after every pair; a tenant has at most ``max_per_tenant`` jobs queued or
    running (``TooManyJobs`` beyond).

    Each runner is an owner (``instance``): its jobs carry it, and every ``heartbeat_s`` it
    stamps them with ``wall()`` (real time: compared across processes). Jobs whose owner
    has not beaten for ``3 * heartbeat_s`` belong to a dead instance and are marked
    interrupted, at start and at every beat; a live instance's jobs are never touched."""

    def __init__(
        self,
        store: JobStore,
        telemetry: TelemetryStore,
        clock: Callable[[], Micros],
        *,
        prices: TwinPrices | None = None,
        workers: int = 2,
        max_per_tenant: int = 2,
        history_days: float = 7.0,
        heartbeat_s: float = 5.0,
        wall: Callable[[], Micros] = wall_clock,
    ) -> None:
        self.store = store
        self.instance = secrets.token_hex(16)
        """This runner's id: the ``owner`` of the jobs it runs."""
        self.heartbeat_s = heartbeat_s
        self.wall = wall
        self._beating: asyncio.Task[None] | None = None
        self.telemetry = telemetry
        self.clock = clock
        self.prices = prices or TwinPrices()
        self.workers = workers
        self.max_per_tenant = max_per_tenant
        self.history_us = round(history_days * 86_400e6)
        self._pool: ProcessPoolExecutor | None = None
        self._slots = asyncio.Semaphore(workers)
        self._admit = asyncio.Lock()
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()

    def _executor(self) -> ProcessPoolExecutor:
        """The worker processes, started with the first job (spawned: the service's threads
        make ``fork`` unsafe)."""
        if self._pool is None:
            ctx = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=ctx,
                initializer=die_with_parent,
                initargs=(os.getpid(),),
            )
        return self._pool

    def _stale_before(self) -> Micros:
        return Micros(self.wall() - round(3 * self.heartbeat_s * 1e6))

    async def start(self) -> int:
        """Mark jobs that a dead instance left queued or running (no heartbeat for
        ``3 * heartbeat_s``, or no owner: rows from before owners) as failed
        ("interrupted"), then start beating; returns how many. Jobs of an instance still
        running are left alone. Each beat interrupts the owned jobs of dead instances."""
        n = await self.store.interrupt_stale(self.clock(), self._stale_before(), self.instance)
        if self._beating is None:
            self._beating = asyncio.create_task(self._beat(), name="andon-twin-heartbeat")
        return n

    async def _beat(self) -> None:
        """Every ``heartbeat_s``: stamp this instance's jobs, and interrupt those of
        instances that stopped beating. A failing database is logged and tried again."""
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                await self.store.beat(self.instance, self.wall())
                n = await self.store.interrupt_stale(
                    self.clock(), self._stale_before(), self.instance, unowned=False
                )
                if n:
                    _log.warning("twin jobs: %d of a stopped instance marked interrupted", n)
            except Exception:  # the next beat tries again; jobs keep running meanwhile
                _log.exception("twin jobs: heartbeat failed")

    async def stop(self) -> None:
        """Stop every job after its current replication and record it as interrupted."""
        self._closing = True
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._beating is not None:
            self._beating.cancel()
            await asyncio.gather(self._beating, return_exceptions=True)
            self._beating = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    async def idle(self) -> None:
        """Wait until every job this runner started has finished (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def submit(
        self,
        tenant: str,
        site_id: str,
        plant: Plant,
        ref: LineRef,
        request: dict[str, Any],
        actor: str,
    ) -> dict[str, Any]:
        """Validate the changes on the configured plant, then queue the job."""
        apply_changes(plant, plant, ref, request.get("changes") or {})
        async with self._admit:
            if await self.store.active(tenant) >= self.max_per_tenant:
                raise TooManyJobs(
                    f"at most {self.max_per_tenant} twin jobs may be queued or running per tenant"
                )
            row: dict[str, Any] = {
                "id": secrets.token_hex(16),  # unguessable, as the platform's ids
                "tenant_id": tenant,
                "site_id": site_id,
                "line": ref.path,
                "created_by": actor,
                "created_at": self.clock(),
                "status": "queued",
                "progress": 0.0,
                "request": request,
                "result": None,
                "error": None,
                "finished_at": None,
                "owner": self.instance,
                "heartbeat_at": self.wall(),
            }
            await self.store.create(row)
        task = asyncio.create_task(self._run(row, plant, ref))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return row

    async def _history(self, plant: Plant, ref: LineRef, now: Micros) -> tuple[Plant, Any]:
        """(twin, calibration window) from the stored history, or (plant, None) when the
        history is too short: every machine of the line needs ten cycles seen."""
        start = now - self.history_us
        paths = [ref.machine_path(m) for m in ref.line.machines]
        states = await self.telemetry.read_states(plant.tenant, paths, start, now)
        parts = await self.telemetry.read_parts(plant.tenant, paths, start, now)
        if len(states) == 0 or len(parts) == 0:
            return plant, None
        loop = asyncio.get_running_loop()
        try:
            cal = await loop.run_in_executor(
                self._executor(), fit_line, plant, ref.line.id, states, parts, start, now
            )
        except (ValueError, KeyError, ValidationError):
            return plant, None
        if all(r["cycle"]["source"] == "data" for r in cal.report["machines"].values()):
            return cal.plant, [start, now]
        return plant, None

    async def _run(self, row: dict[str, Any], plant: Plant, ref: LineRef) -> None:
        jid = row["id"]
        req = row["request"]
        hours, reps = float(req["hours"]), int(req["replications"])
        loop = asyncio.get_running_loop()
        try:
            async with self._slots:
                if self._closing:
                    raise Interrupted("interrupted")
                await self.store.update(jid, status="running")
                twin, window = await self._history(plant, ref, row["created_at"])
                scen = apply_changes(twin, plant, ref, req.get("changes") or {})
                pairs = []
                for r in range(reps):
                    if self._closing:
                        raise Interrupted("interrupted")
                    pairs.append(
                        await loop.run_in_executor(
                            self._executor(), replicate_pair, twin, scen, ref.line.id, hours, 1, r
                        )
                    )
                    await self.store.update(jid, progress=round((r + 1) / reps, 6))
            result = summarise(pairs, ref, hours, self.prices)
            add_planned_rates(result, twin, scen, ref, hours)
            result["source"] = "history" if window is not None else "config"
            result["calibrated_from"] = window
            await self.store.update(
                jid, status="done", progress=1.0, result=result, finished_at=self.clock()
            )
        except Interrupted:
            await self.store.update(
                jid, status="failed", error="interrupted", finished_at=self.clock()
            )
        except Exception as exc:  # the job fails, the service does not
            await self.store.update(
                jid,
                status="failed",
                error=f"{type(exc).__name__}: {exc}"[:2000],
                finished_at=self.clock(),
            )
