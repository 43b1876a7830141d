"""The shop floor now: each machine's current state, operator reason entries, and alerts.

* ``floor_snapshot``: every machine's current state (the newest stored state interval),
  whether it is *offline* (no sample and no state for longer than the staleness threshold
  while its shift calendar plans it to work) or *not scheduled* (outside its shifts), from
  one ``last_values`` and one ``read_states`` call per site, whatever the machine count.
* ``FloorRecords``: reason entries and alerts in the metadata database, always filtered by
  tenant and site.
* ``wanted_alerts``: the alert rules, a pure function of a snapshot and the answered stops.
* ``AlertEvaluator``: a background task per app that, every ``alert_interval_s``, opens the
  alerts the rules want and closes those they no longer want, and raises and clears the
  signal alarms (``andon.floor.alarms``) over the samples stored since its previous pass.
* ``alarm_limits``: each signal's alarm limits, the plant model's ``alarms:`` blocks with an
  engineer's overrides from the metadata database on top.

See ``docs/decisions/0606-floor-state-and-alerts.md`` and ``0609-not-scheduled-is-not-offline.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from andon.bus import AlertChanged, LiveBus, alerts_topic
from andon.floor.alarms import SEVERITY, Carry, Transition, evaluate, kinds_of
from andon.kpi.api import read_states_live
from andon.kpi.reasons import ReasonEntry, ReasonTree
from andon.model.calendar import NOT_SCHEDULED as _OFF_SHIFT
from andon.model.calendar import expand_calendar
from andon.model.plant import Plant, SignalAlarms
from andon.model.types import MachineState, Micros, StateBatch
from andon.platform.config import Monitoring
from andon.platform.database import Database
from andon.platform.security import new_id
from andon.platform.tables import alarm_limits as limits_table
from andon.platform.tables import alerts, reason_entries, sites
from andon.store.base import TelemetryStore

__all__ = [
    "LOOKBACK_US",
    "NOT_SCHEDULED",
    "OFFLINE",
    "RECENT_US",
    "UNKNOWN",
    "AlarmPoint",
    "AlertEvaluator",
    "AlertEvents",
    "AlertRules",
    "FloorRecords",
    "FloorSnapshot",
    "Interval",
    "MachineStatus",
    "Plan",
    "WantedAlert",
    "alarm_limits",
    "alarm_points",
    "floor_snapshot",
    "machine_plans",
    "machine_status",
    "reason_tree",
    "wanted_alerts",
]

log = logging.getLogger(__name__)

ALARM_FIRST_WINDOW_US: Micros = 15 * 60 * 1_000_000
"""How far back an evaluator's first pass of a site looks for signal alarms."""
LOOKBACK_US: Micros = 24 * 3600 * 1_000_000
"""How far back the current state, stops and the alert rules look (one day)."""
RECENT_US: Micros = 3600 * 1_000_000
"""The window boards and feeds read every step (a day of 100 machines costs ~3x more)."""
OFFLINE = "offline"
NOT_SCHEDULED = "not_scheduled"
"""The state of a machine outside its shift calendar that is silent or reports ``offline``."""
UNKNOWN = "unknown"
"""The state of a machine that sends samples but no state interval within the lookback."""
_LABELS = [s.label for s in MachineState]


def reason_tree(plant: Plant) -> ReasonTree:
    """The site's reason tree: the default tree plus the plant's failure-mode codes (the
    plant model has no reason section of its own; ``andon kpi`` builds it the same way)."""
    return ReasonTree.default().with_failure_modes(plant)


def _machine_signals(plant: Plant) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for a, ln, m in plant.machines():
        base = plant.machine_path(a, ln, m)
        out[base] = [f"{base}/{s.id}" for s in m.signals]
    return out


@dataclass(frozen=True, slots=True)
class MachineStatus:
    """A machine's current state label (or ``offline``/``not_scheduled``/``unknown``), since
    when, when anything (a sample or the end of a state interval) was last heard from it, and
    whether its shift calendar plans it to work now (shift, break or planned maintenance)."""

    machine: str
    state: str
    since: Micros | None
    last_seen: Micros | None
    scheduled: bool = True


_ON = MachineStatus("", UNKNOWN, None, None)
"""The status of a machine a snapshot does not know (taken as scheduled)."""


@dataclass(frozen=True, slots=True)
class Plan:
    """Where ``now`` falls in a machine's calendar: planned to work or not, since when (the
    start of the current stretch of either kind), and the start of the newest off-shift
    period at or before now (None when there is none in the lookback)."""

    scheduled: bool
    since: Micros
    off_since: Micros | None


def machine_plans(plant: Plant, now: Micros) -> dict[str, Plan]:
    """Each machine's ``Plan`` at ``now``, expanding the calendar once per distinct set of
    maintenance windows (machines without any share one expansion)."""
    cal = plant.site.calendar
    cache: dict[tuple[int, ...], Plan] = {}
    out: dict[str, Plan] = {}
    for a, ln, m in plant.machines():
        key = tuple(i for i, w in enumerate(cal.maintenance) if m.id in w.machines)
        plan = cache.get(key)
        if plan is None:
            periods = expand_calendar(cal, plant.site.timezone, m.id, now - LOOKBACK_US, now + 1)
            on = [p.status != _OFF_SHIFT for p in periods]
            j = len(periods) - 1
            while j > 0 and on[j - 1] == on[-1]:
                j -= 1
            off = periods[j].start if not on[-1] else (periods[j - 1].start if j > 0 else None)
            plan = cache[key] = Plan(on[-1], periods[j].start, off)
        out[plant.machine_path(a, ln, m)] = plan
    return out


@dataclass(frozen=True, slots=True, eq=False)
class FloorSnapshot:
    """The floor at ``now``: a status per machine (model order), the merged state
    intervals of the window read, ``[now - window, now]``, and per machine its newest
    interval ``(state, start, end)`` and when it was last heard (what ``status`` was
    derived from: ``andon.floor.watch`` carries both forward from live events)."""

    now: Micros
    status: dict[str, MachineStatus]
    states: StateBatch
    newest: dict[str, Interval] = field(default_factory=dict)
    last_seen: dict[str, Micros] = field(default_factory=dict)


Interval = tuple[int, int, int, str]
"""A machine's newest interval: (state code, start, end, reason)."""


def _newest(batch: StateBatch) -> dict[str, Interval]:
    """Per machine, its newest interval of a merged batch: (state, start, end, reason)."""
    if not len(batch):
        return {}
    # rows are sorted by (machine, start): the last row of each machine is its newest
    idx = batch.index
    tail = np.flatnonzero(np.append(idx[1:] != idx[:-1], True)).tolist()
    return {
        batch.names[int(idx[i])]: (
            int(batch.state[i]),
            int(batch.start[i]),
            int(batch.end[i]),
            batch.reason[i],
        )
        for i in tail
    }


async def floor_snapshot(
    store: TelemetryStore,
    tenant: str,
    plant: Plant,
    now: Micros,
    stale_after_s: float,
    window_us: int = RECENT_US,
) -> FloorSnapshot:
    """Every machine's current state from one ``last_values`` and one ``read_states`` call
    over the last ``window_us`` (not one per machine). Machines with no interval in the
    window, or whose newest one is cut by the window's start, are looked up again over the
    whole lookback in one more call, so ``since`` is right up to ``LOOKBACK_US`` back.

    Outside its shifts (``expand_calendar``) a machine that is silent or whose newest state
    is ``offline`` (what the virtual factory stores off shift) is ``not_scheduled``, since
    its shift ended; one that still runs shows its state. During a shift silence longer than
    ``stale_after_s`` is ``offline``; a machine has ``stale_after_s`` from its shift's start
    to be heard before that, and until then stays ``not_scheduled``."""
    sigs = _machine_signals(plant)
    machines = list(sigs)
    flat = [s for ss in sigs.values() for s in ss]
    last = await store.last_values(tenant, flat) if flat else {}
    w0 = now - min(window_us, LOOKBACK_US)
    batch = (
        await read_states_live(store, tenant, machines, w0, now + 1)
        if machines
        else StateBatch.empty()
    )
    newest = _newest(batch)
    again = [m for m in machines if m not in newest or newest[m][1] <= w0]
    if again and w0 > now - LOOKBACK_US:
        older = await read_states_live(store, tenant, again, now - LOOKBACK_US, now + 1)
        newest.update(_newest(older))
    stale_us = int(stale_after_s * 1_000_000)
    plans = machine_plans(plant, now)
    status: dict[str, MachineStatus] = {}
    seen_at: dict[str, Micros] = {}
    for m in machines:
        seen = [last[s].ts for s in sigs[m] if s in last]
        got = newest.get(m)
        if got is not None:
            seen.append(got[2])
        last_seen = max(seen) if seen else None
        if last_seen is not None:
            seen_at[m] = last_seen
        status[m] = machine_status(m, got, last_seen, plans[m], now, stale_us)
    return FloorSnapshot(now, status, batch, newest, seen_at)


def machine_status(
    m: str,
    got: Interval | None,
    last_seen: Micros | None,
    plan: Plan,
    now: Micros,
    stale_us: int,
) -> MachineStatus:
    """Machine ``m``'s status at ``now`` from its newest interval ``got`` (state, start,
    end, reason), when it was last heard and where ``now`` falls in its calendar (the rules of
    :func:`floor_snapshot`)."""
    fresh = last_seen is not None and now - last_seen <= stale_us
    not_yet = now - plan.since <= stale_us and (last_seen is None or last_seen < plan.since)
    if not plan.scheduled or not_yet:
        if fresh and got is not None and got[0] != MachineState.OFFLINE:
            return MachineStatus(m, _LABELS[got[0]], got[1], last_seen, plan.scheduled)
        off = plan.since if not plan.scheduled else plan.off_since
        return MachineStatus(m, NOT_SCHEDULED, off, last_seen, plan.scheduled)
    if last_seen is None or now - last_seen > stale_us:
        since = plan.since if last_seen is None else max(last_seen, plan.since)
        return MachineStatus(m, OFFLINE, since, last_seen)
    if got is None:
        return MachineStatus(m, UNKNOWN, None, last_seen)
    return MachineStatus(m, _LABELS[got[0]], got[1], last_seen)


# ---- alert rules ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertRules:
    """Thresholds of the rules, in µs."""

    down_after_us: int
    unexplained_after_us: int
    unexplained_min_us: int

    @classmethod
    def of(cls, m: Monitoring) -> AlertRules:
        return cls(
            int(m.down_alert_after_s * 1e6),
            int(m.unexplained_alert_after_s * 1e6),
            int(m.unexplained_min_stop_s * 1e6),
        )


@dataclass(frozen=True, slots=True)
class WantedAlert:
    machine: str | None
    kind: str
    severity: str
    message: str


def _minutes(us: int) -> str:
    return f"{us / 60e6:.0f} min"


def wanted_alerts(
    snap: FloorSnapshot, answered: set[tuple[str, Micros]], rules: AlertRules
) -> dict[tuple[str | None, str], WantedAlert]:
    """The alerts that should be open now, by (machine, kind), from a snapshot over the
    whole lookback (``window_us=LOOKBACK_US``):

    * ``down``: the machine's current state is ``down`` for at least ``down_after_us``;
    * ``offline``: nothing heard from the machine for longer than the staleness threshold
      while its calendar plans it to work (``not_scheduled`` machines raise nothing);
    * ``unexplained_stop``: a ``down`` stop with no machine code and no operator entry began
      at least ``unexplained_after_us`` ago (finished stops shorter than
      ``unexplained_min_us`` never need a reason). One alert per machine, however many
      stops.

    >>> st = StateBatch.build(["m"], [0], [0], [700_000_000], [3])
    >>> snap = FloorSnapshot(700_000_000, {"m": MachineStatus("m", "down", 0, 700_000_000)}, st)
    >>> sorted(k for _, k in wanted_alerts(snap, set(), AlertRules(600_000_000, 0, 0)))
    ['down', 'unexplained_stop']
    >>> sorted(k for _, k in wanted_alerts(snap, {("m", 0)}, AlertRules(600_000_000, 0, 0)))
    ['down']
    """
    now = snap.now
    out: dict[tuple[str | None, str], WantedAlert] = {}
    for m, s in snap.status.items():
        if s.state == OFFLINE:
            heard = "never" if s.last_seen is None else f"for {_minutes(now - s.last_seen)}"
            out[(m, "offline")] = WantedAlert(m, "offline", "warning", f"{m}: no data {heard}")
        elif (
            s.state == "down"
            and s.scheduled
            and s.since is not None
            and now - s.since >= rules.down_after_us
        ):
            out[(m, "down")] = WantedAlert(
                m, "down", "critical", f"{m}: down for {_minutes(now - s.since)}"
            )
    b = snap.states
    if len(b):
        dur = b.end - b.start
        cand = np.flatnonzero(
            (b.state == MachineState.DOWN) & (b.start <= now - rules.unexplained_after_us)
        )
        counts: dict[str, list[int]] = {}
        for i in cand.tolist():
            m = b.names[int(b.index[i])]
            start = int(b.start[i])
            if b.reason[i] or (m, start) in answered:
                continue
            current = snap.status.get(m)
            ongoing = current is not None and current.since == start and current.state == "down"
            if not ongoing and int(dur[i]) < rules.unexplained_min_us:
                continue
            counts.setdefault(m, []).append(start)
        for m, starts in counts.items():
            n = len(starts)
            out[(m, "unexplained_stop")] = WantedAlert(
                m,
                "unexplained_stop",
                "warning",
                f"{m}: {n} stop{'s' if n > 1 else ''} without a reason "
                f"(oldest {_minutes(now - min(starts))} ago)",
            )
    return out


# ---- records in the metadata database ------------------------------------------------------


def _alert_out(r: Mapping[Any, Any]) -> dict[str, Any]:
    def opt(x: Any) -> int | None:
        return None if x is None else int(x)

    return {
        "id": r["id"],
        "machine": r["machine"],
        "kind": r["kind"],
        "severity": r["severity"],
        "message": r["message"],
        "opened_at": int(r["opened_at"]),
        "closed_at": opt(r["closed_at"]),
        "acked_by": r["acked_by"],
        "acked_at": opt(r["acked_at"]),
        "signal": r["signal"],
        "value": None if r["value"] is None else float(r["value"]),
        "threshold": None if r["threshold"] is None else float(r["threshold"]),
        "shelved_by": r["shelved_by"],
        "shelved_at": opt(r["shelved_at"]),
        "shelved_until": opt(r["shelved_until"]),
        "shelve_reason": r["shelve_reason"],
    }


# ---- signal alarms: where each signal's limits come from -----------------------------------


@dataclass(frozen=True, slots=True)
class AlarmPoint:
    """A signal with alarm limits: its path, unit, the machine it belongs to (None for area
    sensors and meters), its limits and where they come from (``model`` or ``engineer``)."""

    signal: str
    unit: str
    machine: str | None
    alarms: SignalAlarms
    source: str


def alarm_points(plant: Plant) -> dict[str, tuple[str, str | None, SignalAlarms | None]]:
    """Every signal of the plant: (unit, machine path or None, the model's limits or None)."""
    out: dict[str, tuple[str, str | None, SignalAlarms | None]] = {}
    for a, ln, m in plant.machines():
        base = plant.machine_path(a, ln, m)
        for sg in m.signals:
            out[f"{base}/{sg.id}"] = (sg.unit or "", base, sg.alarms)
    for a in plant.site.areas:
        for sg in a.sensors:
            out[f"{plant.site.id}/{a.id}/{sg.id}"] = (sg.unit or "", None, sg.alarms)
    for mt in plant.site.meters:
        for sg in mt.signals:
            out[f"{plant.site.id}/{mt.id}/{sg.id}"] = (sg.unit or "", None, sg.alarms)
    return out


def alarm_limits(plant: Plant, overrides: Mapping[str, SignalAlarms]) -> dict[str, AlarmPoint]:
    """The signals that have alarm limits: the model's, replaced by an engineer's override
    where there is one (an override with ``enabled: false`` switches a signal's off)."""
    out: dict[str, AlarmPoint] = {}
    for path, (unit, machine, model) in alarm_points(plant).items():
        if path in overrides:
            out[path] = AlarmPoint(path, unit, machine, overrides[path], "engineer")
        elif model is not None:
            out[path] = AlarmPoint(path, unit, machine, model, "model")
    return out


_WORDS = {
    "high_high": "above the high-high limit",
    "high": "above the high limit",
    "low": "below the low limit",
    "low_low": "below the low-low limit",
}


def alarm_message(t: Transition, unit: str) -> str:
    """What the board shows for a raised alarm, with its evidence.

    >>> alarm_message(Transition("s/a/coolant", "high", 0, True, 26.42, 26.0), "°C")
    's/a/coolant: 26.42 °C above the high limit 26 °C'
    >>> alarm_message(Transition("s/a/t", "rate", 0, True, -1.5, 1.0), "°C")
    's/a/t: changing -1.5 °C/min (limit 1 °C/min)'
    """
    u = f" {unit}" if unit else ""
    if t.kind == "rate":
        return f"{t.signal}: changing {t.value:.3g}{u}/min (limit {t.limit:g}{u}/min)"
    return f"{t.signal}: {t.value:.4g}{u} {_WORDS[t.kind]} {t.limit:g}{u}"


def _alarm_id(tenant: str, site_id: str, t: Transition) -> str:
    """The id of the alarm a raise opens: the same raise seen by two evaluators (or twice
    after a restart) is one row."""
    key = f"{tenant}|{site_id}|{t.signal}|{t.kind}|{t.at}".encode()
    return hashlib.sha256(key).hexdigest()[:32]


def _open_key(site_id: str, machine: str | None, kind: str) -> str:
    return f"{site_id}|{machine or ''}|{kind}"


class AlertEvents:
    """Publishes ``AlertChanged`` on the live bus (topic ``alerts_topic(site_key)``, the
    site's plant key like every live event of the site) after an alert's change is
    committed. A failed publish never undoes the change: it is counted in ``failed`` and
    logged; ``published`` counts the rest."""

    def __init__(self, bus: LiveBus) -> None:
        self.bus = bus
        self.published = 0
        self.failed = 0

    async def send(
        self,
        tenant: str,
        site_key: str,
        alert_id: str,
        status: str,
        ts: Micros,
        machine: str | None,
    ) -> None:
        event = AlertChanged(alert_id, status, int(ts), machine)
        try:
            await self.bus.publish(tenant, alerts_topic(site_key), event)
        except Exception as exc:
            self.failed += 1
            log.warning(
                "alert %s of tenant %r site %r (%s) not published on the live bus: %r",
                alert_id,
                tenant,
                site_key,
                status,
                exc,
            )
        else:
            self.published += 1


class FloorRecords:
    """Reason entries and alerts of one metadata database. Every method takes the tenant and
    the site and puts both in the ``WHERE`` clause. With ``events``, every alert opened,
    acknowledged, shelved, unshelved or closed is published on the live bus once committed
    (statuses ``opened``, ``acknowledged``, ``shelved``, ``unshelved``, ``closed``)."""

    def __init__(
        self, db: Database, clock: Callable[[], Micros], events: AlertEvents | None = None
    ) -> None:
        self.db = db
        self.clock = clock
        self.events = events

    async def _changed(
        self,
        tenant: str,
        site_id: str,
        changed: Sequence[tuple[str, str, Micros, str | None]],
    ) -> None:
        """Publish ``(alert_id, status, ts, machine)`` changes (nothing without ``events``)."""
        if self.events is None or not changed:
            return
        async with self.db.begin() as conn:
            key = (
                await conn.execute(
                    select(sites.c.key).where(sites.c.tenant_id == tenant, sites.c.id == site_id)
                )
            ).scalar_one_or_none()
        if key is None:  # the site went away since: no one can subscribe to its alerts
            return
        for alert_id, status, ts, machine in changed:
            await self.events.send(tenant, str(key), alert_id, status, ts, machine)

    # -- reason entries

    async def add_reason(
        self,
        tenant: str,
        site_id: str,
        *,
        machine: str,
        stop_start: Micros,
        category: str,
        reason: str,
        actor: str,
        note: str | None = None,
    ) -> dict[str, Any]:
        """Append one entry (entries are never updated; the latest per stop wins)."""
        row = {
            "id": new_id(),
            "tenant_id": tenant,
            "site_id": site_id,
            "machine": machine,
            "stop_start": stop_start,
            "category": category,
            "reason": reason,
            "actor": actor,
            "entered_at": self.clock(),
            "note": note,
        }
        async with self.db.begin() as conn:
            await conn.execute(insert(reason_entries).values(**row))
        return row

    async def reason_rows(
        self,
        tenant: str,
        site_id: str,
        start: Micros,
        end: Micros,
        machines: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Entries for stops starting in ``[start, end)``, oldest entry first."""
        c = reason_entries.c
        q = select(reason_entries).where(
            c.tenant_id == tenant, c.site_id == site_id, c.stop_start >= start, c.stop_start < end
        )
        if machines is not None:
            q = q.where(c.machine.in_(list(machines)))
        async with self.db.begin() as conn:
            rows = (await conn.execute(q.order_by(c.entered_at, c.id))).mappings().all()
        return [dict(r) for r in rows]

    async def reason_entries(
        self, tenant: str, site_id: str, start: Micros, end: Micros
    ) -> list[ReasonEntry]:
        """The entries as ``andon.kpi.reasons.ReasonEntry`` (for ``apply_entries``, MTTA)."""
        return [
            ReasonEntry(
                r["machine"],
                int(r["stop_start"]),
                r["reason"],
                r["actor"],
                int(r["entered_at"]),
                r["note"] or "",
            )
            for r in await self.reason_rows(tenant, site_id, start, end)
        ]

    # -- alerts

    async def alerts(
        self,
        tenant: str,
        site_id: str,
        *,
        open_only: bool,
        limit: int = 1000,
        shelved: bool | None = None,
        machine: str | None = None,
        kind: str | None = None,
        acked: bool | None = None,
        start: Micros | None = None,
        end: Micros | None = None,
    ) -> list[dict[str, Any]]:
        """Open alerts (or all), newest first, at most ``limit``. ``shelved``: only those
        shelved now (True) or only those not (False); ``machine`` (its alerts and the
        alarms of its signals), ``kind``, ``acked``; ``start``/``end``: opened in
        ``[start, end)``."""
        c = alerts.c
        q = select(alerts).where(c.tenant_id == tenant, c.site_id == site_id)
        if open_only:
            q = q.where(c.closed_at.is_(None))
        if shelved is not None:
            on = and_(c.shelved_until.is_not(None), c.shelved_until > self.clock())
            q = q.where(on if shelved else ~on)
        if machine is not None:
            q = q.where(c.machine == machine)
        if kind is not None:
            q = q.where(c.kind == kind)
        if acked is not None:
            q = q.where(c.acked_at.is_not(None) if acked else c.acked_at.is_(None))
        if start is not None:
            q = q.where(c.opened_at >= start)
        if end is not None:
            q = q.where(c.opened_at < end)
        q = q.order_by(c.opened_at.desc(), c.id).limit(limit)
        async with self.db.begin() as conn:
            rows = (await conn.execute(q)).mappings().all()
        return [_alert_out(r) for r in rows]

    async def alerts_touched(
        self, tenant: str, site_id: str, since: Micros
    ) -> list[dict[str, Any]]:
        """Open alerts and those opened, acknowledged or closed at or after ``since``."""
        c = alerts.c
        q = select(alerts).where(
            c.tenant_id == tenant,
            c.site_id == site_id,
            or_(c.closed_at.is_(None), c.changed_at >= since),
        )
        async with self.db.begin() as conn:
            rows = (await conn.execute(q.order_by(c.opened_at, c.id))).mappings().all()
        return [_alert_out(r) for r in rows]

    async def get_alert(self, tenant: str, site_id: str, alert_id: str) -> dict[str, Any] | None:
        c = alerts.c
        async with self.db.begin() as conn:
            r = (
                (
                    await conn.execute(
                        select(alerts).where(
                            c.tenant_id == tenant, c.site_id == site_id, c.id == alert_id
                        )
                    )
                )
                .mappings()
                .one_or_none()
            )
        return None if r is None else _alert_out(r)

    async def alerts_by_id(
        self, tenant: str, site_id: str, ids: Sequence[str]
    ) -> list[dict[str, Any]]:
        """The alerts of the site among ``ids`` (unknown ids left out), oldest first."""
        if not ids:
            return []
        c = alerts.c
        q = select(alerts).where(
            c.tenant_id == tenant, c.site_id == site_id, c.id.in_(sorted(set(ids)))
        )
        async with self.db.begin() as conn:
            rows = (await conn.execute(q.order_by(c.opened_at, c.id))).mappings().all()
        return [_alert_out(r) for r in rows]

    async def ack(
        self, tenant: str, site_id: str, alert_id: str, actor: str
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """Acknowledge (the first acknowledgement stays); ``(before, after)`` or None when
        there is no such alert in this tenant's site."""
        before = await self.get_alert(tenant, site_id, alert_id)
        if before is None:
            return None
        if before["acked_at"] is None:
            c = alerts.c
            now = self.clock()
            async with self.db.begin() as conn:
                await conn.execute(
                    update(alerts)
                    .where(
                        c.tenant_id == tenant,
                        c.site_id == site_id,
                        c.id == alert_id,
                        c.acked_at.is_(None),
                    )
                    .values(acked_by=actor, acked_at=now, changed_at=now)
                )
        after = await self.get_alert(tenant, site_id, alert_id)
        if before["acked_at"] is None and after is not None and after["acked_at"] == now:
            await self._changed(
                tenant, site_id, [(alert_id, "acknowledged", now, after["machine"])]
            )
        return before, after or before

    async def sync_alerts(
        self,
        tenant: str,
        site_id: str,
        wanted: Mapping[tuple[str | None, str], WantedAlert],
    ) -> int:
        """Open the wanted alerts that are not open, close the open ones not wanted; the
        number of changes. The unique
        ``open_key`` keeps one open alert per (site, machine, kind) even when two
        evaluators race. Signal alarms (rows with a ``signal``) are left to
        ``apply_alarms``."""
        c = alerts.c
        now = self.clock()
        rows = await self._open_rows(tenant, site_id, False, c.id, c.machine, c.kind)
        have = {(r.machine, r.kind): r.id for r in rows}
        changes = 0
        changed: list[tuple[str, str, Micros, str | None]] = []
        stale = [aid for k, aid in have.items() if k not in wanted]
        changed += [(aid, "closed", now, k[0]) for k, aid in have.items() if k not in wanted]
        if stale:
            async with self.db.begin() as conn:
                res = await conn.execute(
                    update(alerts)
                    .where(
                        and_(c.tenant_id == tenant, c.site_id == site_id, c.id.in_(stale)),
                        c.closed_at.is_(None),
                    )
                    .values(closed_at=now, changed_at=now, open_key=None)
                )
                changes += int(res.rowcount or 0)
        for k, w in wanted.items():
            if k in have:
                continue
            alert_id = new_id()
            try:
                async with self.db.begin() as conn:
                    await self._insert_open(
                        conn,
                        tenant,
                        site_id,
                        alert_id,
                        machine=w.machine,
                        signal=None,
                        kind=w.kind,
                        severity=w.severity,
                        message=w.message,
                        opened_at=now,
                        changed_at=now,
                    )
                changes += 1
                changed.append((alert_id, "opened", now, w.machine))
            except IntegrityError:
                continue  # another evaluator opened it first
        await self._changed(tenant, site_id, changed)
        return changes

    async def _insert_open(
        self,
        conn: Any,
        tenant: str,
        site_id: str,
        alert_id: str,
        *,
        machine: str | None,
        signal: str | None,
        kind: str,
        severity: str,
        message: str,
        opened_at: Micros,
        changed_at: Micros,
        value: float | None = None,
        threshold: float | None = None,
    ) -> None:
        """Insert one open alert (``signal`` None) or signal alarm, with the shelving it
        inherits at ``opened_at`` (``_shelf``) and its ``open_key`` (``site|signal|kind`` for
        an alarm, ``site|machine|kind`` else), so a second open row of the same key raises
        ``IntegrityError``. The message is cut to 1000 characters."""
        shelf = await self._shelf(conn, tenant, site_id, machine, signal, kind, opened_at)
        await conn.execute(
            insert(alerts).values(
                **shelf,
                id=alert_id,
                tenant_id=tenant,
                site_id=site_id,
                machine=machine,
                signal=signal,
                kind=kind,
                severity=severity,
                message=message[:1000],
                value=value,
                threshold=threshold,
                opened_at=opened_at,
                closed_at=None,
                acked_by=None,
                acked_at=None,
                changed_at=changed_at,
                open_key=_open_key(site_id, machine if signal is None else signal, kind),
            )
        )

    async def _shelf(
        self,
        conn: Any,
        tenant: str,
        site_id: str,
        machine: str | None,
        signal: str | None,
        kind: str,
        at: Micros,
    ) -> dict[str, Any]:
        """The shelving a new alert inherits: that of the newest alert of the same machine
        (or signal) and kind when it is still shelved at ``at``, so a shelved chattering
        alarm stays shelved when it clears and comes back."""
        c = alerts.c
        q = select(c.shelved_by, c.shelved_at, c.shelved_until, c.shelve_reason).where(
            c.tenant_id == tenant,
            c.site_id == site_id,
            c.kind == kind,
            c.shelved_until > at,
            c.machine.is_(None) if machine is None else c.machine == machine,
            c.signal.is_(None) if signal is None else c.signal == signal,
        )
        r = (await conn.execute(q.order_by(c.opened_at.desc()).limit(1))).mappings().first()
        return {} if r is None else dict(r)

    async def apply_alarms(
        self,
        tenant: str,
        site_id: str,
        transitions: Sequence[Transition],
        points: Mapping[str, AlarmPoint],
    ) -> int:
        """Write signal alarm raises and clears in time order: a raise inserts an open row
        (``opened_at`` = when it was raised, one open row per signal and kind by the
        unique ``open_key``), a clear closes the open row at its time. The number of rows
        changed."""
        c = alerts.c
        now = self.clock()
        changes = 0
        changed: list[tuple[str, str, Micros, str | None]] = []
        for t in transitions:
            p = points.get(t.signal)
            if t.raised:
                alert_id = _alarm_id(tenant, site_id, t)
                try:
                    async with self.db.begin() as conn:
                        await self._insert_open(
                            conn,
                            tenant,
                            site_id,
                            alert_id,
                            machine=None if p is None else p.machine,
                            signal=t.signal,
                            kind=t.kind,
                            severity=SEVERITY[t.kind],
                            message=alarm_message(t, "" if p is None else p.unit),
                            opened_at=t.at,
                            changed_at=now,
                            value=t.value,
                            threshold=t.limit,
                        )
                    changes += 1
                    changed.append((alert_id, "opened", t.at, None if p is None else p.machine))
                except IntegrityError:
                    continue  # open already, or this very raise written by another evaluator
            else:
                async with self.db.begin() as conn:
                    closing = (
                        await conn.execute(
                            select(c.id, c.machine).where(
                                c.tenant_id == tenant,
                                c.site_id == site_id,
                                c.signal == t.signal,
                                c.kind == t.kind,
                                c.closed_at.is_(None),
                            )
                        )
                    ).all()
                    res = await conn.execute(
                        update(alerts)
                        .where(
                            c.tenant_id == tenant,
                            c.site_id == site_id,
                            c.signal == t.signal,
                            c.kind == t.kind,
                            c.closed_at.is_(None),
                        )
                        .values(closed_at=max(t.at, 0), changed_at=now, open_key=None)
                    )
                    changes += int(res.rowcount or 0)
                changed += [(r.id, "closed", max(t.at, 0), r.machine) for r in closing]
        await self._changed(tenant, site_id, changed)
        return changes

    async def open_alarms(self, tenant: str, site_id: str) -> dict[tuple[str, str], int]:
        """The open signal alarms: (signal, kind) → when each was raised."""
        c = alerts.c
        rows = await self._open_rows(tenant, site_id, True, c.signal, c.kind, c.opened_at)
        return {(r.signal, r.kind): int(r.opened_at) for r in rows}

    async def _open_rows(
        self, tenant: str, site_id: str, signal_alarms: bool, *columns: Any
    ) -> Sequence[Any]:
        """``columns`` of the site's open signal alarms (``signal_alarms``) or open machine
        alerts (rows without a signal)."""
        c = alerts.c
        async with self.db.begin() as conn:
            return (
                await conn.execute(
                    select(*columns).where(
                        c.tenant_id == tenant,
                        c.site_id == site_id,
                        c.closed_at.is_(None),
                        c.signal.is_not(None) if signal_alarms else c.signal.is_(None),
                    )
                )
            ).all()

    # -- shelving

    async def shelve(
        self,
        tenant: str,
        site_id: str,
        alert_id: str,
        actor: str,
        until: Micros | None,
        reason: str | None,
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """Shelve an alert until ``until`` with a reason, or unshelve it (``until`` None);
        ``(before, after)`` or None when there is no such alert in this tenant's site."""
        before = await self.get_alert(tenant, site_id, alert_id)
        if before is None:
            return None
        c = alerts.c
        now = self.clock()
        values: dict[str, Any] = (
            {
                "shelved_by": actor,
                "shelved_at": now,
                "shelved_until": until,
                "shelve_reason": reason,
            }
            if until is not None
            else {
                "shelved_by": None,
                "shelved_at": None,
                "shelved_until": None,
                "shelve_reason": None,
            }
        )
        async with self.db.begin() as conn:
            await conn.execute(
                update(alerts)
                .where(c.tenant_id == tenant, c.site_id == site_id, c.id == alert_id)
                .values(**values, changed_at=now)
            )
        after = await self.get_alert(tenant, site_id, alert_id)
        status = "shelved" if until is not None else "unshelved"
        await self._changed(tenant, site_id, [(alert_id, status, now, before["machine"])])
        return before, after or before

    async def count_shelved(self, tenant: str, site_id: str) -> int:
        """Open alerts shelved now (the board hides them but shows how many)."""
        return len(await self.alerts(tenant, site_id, open_only=True, shelved=True))

    # -- engineers' alarm limits

    async def alarm_overrides(self, tenant: str, site_id: str) -> dict[str, dict[str, Any]]:
        """An engineer's limits per signal: ``{"alarms": SignalAlarms, "updated_by",
        "updated_at"}``."""
        c = limits_table.c
        async with self.db.begin() as conn:
            rows = (
                (
                    await conn.execute(
                        select(limits_table).where(c.tenant_id == tenant, c.site_id == site_id)
                    )
                )
                .mappings()
                .all()
            )
        return {
            r["signal"]: {
                "alarms": SignalAlarms.model_validate(json.loads(r["config"])),
                "updated_by": r["updated_by"],
                "updated_at": int(r["updated_at"]),
            }
            for r in rows
        }

    async def set_alarm_override(
        self, tenant: str, site_id: str, signal: str, alarms: SignalAlarms | None, actor: str
    ) -> None:
        """Set (replace) an engineer's limits of one signal, or remove them (None) so the
        plant model's apply again."""
        c = limits_table.c
        where = and_(c.tenant_id == tenant, c.site_id == site_id, c.signal == signal)
        async with self.db.begin() as conn:
            await conn.execute(limits_table.delete().where(where))
            if alarms is not None:
                await conn.execute(
                    insert(limits_table).values(
                        tenant_id=tenant,
                        site_id=site_id,
                        signal=signal,
                        config=alarms.model_dump_json(exclude_defaults=True),
                        updated_by=actor,
                        updated_at=self.clock(),
                    )
                )

    async def all_sites(self) -> list[dict[str, Any]]:
        """Every site of every tenant (id, tenant, model version): what the evaluator
        visits. The only query here not scoped to one tenant; it reads no tenant data."""
        async with self.db.begin() as conn:
            rows = (
                await conn.execute(
                    select(sites.c.id, sites.c.tenant_id, sites.c.updated_at).order_by(
                        sites.c.tenant_id, sites.c.id
                    )
                )
            ).all()
        return [
            {"id": r.id, "tenant_id": r.tenant_id, "updated_at": int(r.updated_at)} for r in rows
        ]


# ---- the evaluator -------------------------------------------------------------------------


class AlertEvaluator:
    """Evaluates the alert rules for every site, every ``monitoring.alert_interval_s``.

    ``step()`` is one pass (tests call it with their clock); ``start()`` runs passes in a
    task until ``stop()``. A pass costs, per site, one ``last_values`` and one
    ``read_states`` call, one query for the day's reason entries and one for open alerts,
    plus one write per alert that opens or closes; signal alarms add one ``read`` of every
    signal with limits over the samples since the previous pass, one query for the
    engineers' limits and one for the open alarms.

    Signal alarms of a machine outside its shift calendar are suppressed (its open ones
    clear), as ISA-18.2 suppresses the alarms of equipment out of service. Each (signal,
    kind) keeps its ``Carry`` in memory between passes; a new evaluator seeds it from the
    open alarms and looks back ``ALARM_FIRST_WINDOW_US``.
    """

    def __init__(
        self,
        records: FloorRecords,
        plant_of: Callable[[str, str], Awaitable[Plant]],
        store: TelemetryStore,
        monitoring: Monitoring,
        clock: Callable[[], Micros],
    ) -> None:
        self.records = records
        self._plant_of = plant_of
        self.store = store
        self.monitoring = monitoring
        self.rules = AlertRules.of(monitoring)
        self.clock = clock
        self._task: asyncio.Task[None] | None = None
        self.passes = 0
        self._carries: dict[tuple[str, str], dict[tuple[str, str], Carry]] = {}
        self._alarmed_until: dict[tuple[str, str], Micros] = {}

    async def step_site(self, tenant: str, site_id: str) -> int:
        """One evaluation of one site; the number of alerts opened or closed."""
        plant = await self._plant_of(tenant, site_id)
        now = self.clock()
        snap = await floor_snapshot(
            self.store, tenant, plant, now, self.monitoring.stale_after_s, LOOKBACK_US
        )
        rows = await self.records.reason_rows(tenant, site_id, now - LOOKBACK_US, now + 1)
        answered = {(r["machine"], int(r["stop_start"])) for r in rows}
        wanted = wanted_alerts(snap, answered, self.rules)
        changes = await self.records.sync_alerts(tenant, site_id, wanted)
        return changes + await self.alarm_pass(tenant, site_id, plant, snap)

    async def alarm_pass(self, tenant: str, site_id: str, plant: Plant, snap: FloorSnapshot) -> int:
        """Raise and clear the signal alarms of one site over the samples stored since the
        previous pass (one store read for every signal with limits)."""
        now = snap.now
        overrides = await self.records.alarm_overrides(tenant, site_id)
        points = alarm_limits(plant, {s: o["alarms"] for s, o in overrides.items()})
        live = {
            p: pt
            for p, pt in points.items()
            if pt.machine is None or snap.status.get(pt.machine, _ON).scheduled
        }
        evaluated = {(p, k) for p, pt in live.items() for k in kinds_of(pt.alarms)}
        key = (tenant, site_id)
        start = self._alarmed_until.get(key, now - ALARM_FIRST_WINDOW_US)
        carries = {k: c for k, c in self._carries.get(key, {}).items() if k in evaluated}
        opened = await self.records.open_alarms(tenant, site_id)
        gone = [
            Transition(sig, kind, now, False, float("nan"), float("nan"))
            for sig, kind in opened
            if (sig, kind) not in evaluated
        ]
        for k, at in opened.items():
            if k in evaluated and k not in carries:
                # raised at `at` and open since: judge only what came after
                carries[k] = Carry(True, at, True, at)
        context = max(
            (int(pt.alarms.rate_window_s * 1e6) for pt in live.values() if pt.alarms.rate_per_min),
            default=0,
        )
        if live:
            batch = await self.store.read(tenant, list(live), start - context, now + 1)
            raised, carries = evaluate(
                batch, {p: pt.alarms for p, pt in live.items()}, carries, start
            )
        else:
            raised, carries = [], {}
        self._carries[key] = carries
        self._alarmed_until[key] = now
        return await self.records.apply_alarms(tenant, site_id, gone + raised, points)

    async def step(self) -> int:
        """One pass over every site; a site that fails is logged and skipped."""
        changes = 0
        for s in await self.records.all_sites():
            try:
                changes += await self.step_site(s["tenant_id"], s["id"])
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("alert evaluation failed for site %s", s["id"])
        self.passes += 1
        return changes

    async def _loop(self, interval_s: float) -> None:
        while True:
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("alert evaluation pass failed")
            await asyncio.sleep(interval_s)

    def start(self) -> None:
        """Run passes in the background (real time), unless the interval is 0."""
        interval = self.monitoring.alert_interval_s
        if interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._loop(interval), name="andon-alerts")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
