"""OEE by ISO 22400-2 and the six-big-losses waterfall, vectorised over whole timelines.

Time model (see ``andon.kpi.timeline`` for the classes):

* planned busy time PBT = planned operating time (the shift calendar's shifts) − planned
  downtime (its breaks and maintenance windows), when the calendar is given (``plan``);
  without one, PBT = reported time − ``offline`` − planned stops for a break or planned
  maintenance (the state-only model)
* actual production time APT = running = PBT − breakdowns − setup − minor stops − idle −
  no data
* availability A = APT / PBT
* performance (effectiveness) P = Σ(ideal cycle time × produced) / APT
* quality Q = good / produced
* OEE = A × P × Q (= fully productive time / PBT when one product is made; with a mix,
  Q counts parts while the waterfall weighs them by ideal cycle time)

The **loss waterfall** splits PBT exactly (to floating-point rounding) into the six big losses
plus what is left::

    PBT = breakdown + setup + minor_stop + idle + no_data  (availability losses)
        + speed_loss                                     (APT − ideal × produced)
        + startup_reject + production_reject             (ideal × scrap)
        + fully_productive                               (ideal × good)

``idle`` (starved or blocked for longer than the micro-stop threshold) is the line restraint
that the classic six losses fold into "idling and minor stops"; it is kept apart because it is
the line's loss, not the machine's. ``no_data`` is planned busy time in which the machine
reported nothing, or reported ``offline``. A performance above 1 (ideal cycle time wrong, or
parts counted twice) makes ``speed_loss`` negative: it is reported as it is and flagged,
never capped.

**Where a part counts.** Its *count* (produced, good, scrap) goes to the bucket in which it
was finished (a part finished exactly on a bucket edge, or at the end of a shift, belongs to
the bucket before: its work ended there). Its *ideal time* (net operating time, and the
rejects and fully productive time made of it) is spread over the machine's running time in
its cycle window: from the previous part's finish (at most ``TimeModel.cycle_window_s``
back) to its own finish. So a bucket's performance never exceeds 1 when actual cycles are
not faster than ideal, however short the bucket; a part finished with no running time in its
window keeps its ideal time at its finish. Split by product, ideal time goes to the product
of the running time it is spread over (the product of the next part finished after that
spell starts), like every other time of the spell.

**Work outside planned time** (running in a calendar break or off shift) is its own figure:
``outside_plan_running_s``, ``outside_plan_net_s`` (the ideal time of the work done then),
``outside_plan_produced`` and ``outside_plan_good`` (parts finished then). It is in no ratio.
See ``docs/decisions/0105-planned-busy-time-from-the-calendar.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from andon.kpi.timeline import (
    N_CLASSES,
    Buckets,
    Plan,
    PlannedPieces,
    PlanStatus,
    TimeClass,
    TimeModel,
    apply_plan,
    classify,
    codes_of,
    cut_at,
    merge_touching,
)
from andon.model.types import F64, I64, PartBatch, StateBatch

__all__ = [
    "COUNT_COLUMNS",
    "LOSSES",
    "OEE",
    "TIME_COLUMNS",
    "OEETable",
    "compute_oee",
    "oee_table",
]

TIME_COLUMNS: tuple[str, ...] = (
    "calendar_s",
    "not_scheduled_s",
    "planned_down_s",
    "planned_busy_s",
    "breakdown_s",
    "setup_s",
    "minor_stop_s",
    "idle_s",
    "no_data_s",
    "running_s",
    "net_operating_s",
    "speed_loss_s",
    "startup_reject_s",
    "production_reject_s",
    "fully_productive_s",
    "outside_plan_running_s",
    "outside_plan_net_s",
)
"""Additive time columns of an ``OEETable`` (seconds)."""

COUNT_COLUMNS: tuple[str, ...] = (
    "produced",
    "good",
    "scrap",
    "startup_scrap",
    "unknown_ideal",
    "outside_plan_produced",
    "outside_plan_good",
)
"""Additive part counts of an ``OEETable``; ``produced`` … ``unknown_ideal`` count parts
finished in planned busy time (or anywhere, without a calendar), the ``outside_plan_*`` ones
parts finished outside it."""

LOSSES: tuple[str, ...] = (
    "breakdown_s",
    "setup_s",
    "minor_stop_s",
    "idle_s",
    "no_data_s",
    "speed_loss_s",
    "startup_reject_s",
    "production_reject_s",
)
"""The waterfall's losses, in waterfall order; with ``fully_productive_s`` they sum to PBT."""

_CLASS_COLUMN = {
    TimeClass.RUNNING: "running_s",
    TimeClass.BREAKDOWN: "breakdown_s",
    TimeClass.MINOR_STOP: "minor_stop_s",
    TimeClass.IDLE: "idle_s",
    TimeClass.SETUP: "setup_s",
    TimeClass.PLANNED_DOWN: "planned_down_s",
    TimeClass.NOT_SCHEDULED: "not_scheduled_s",
    TimeClass.NO_DATA: "no_data_s",
}


@dataclass(frozen=True, slots=True)
class OEE:
    """The four ratios of one row (``None`` where the denominator is zero)."""

    planned_busy_s: float
    production_s: float
    availability: float | None
    performance: float | None
    quality: float | None
    oee: float | None
    performance_flag: bool


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def _oee(pbt: float, apt: float, ideal_s: float, good: float, produced: float) -> OEE:
    a = _ratio(apt, pbt)
    p = _ratio(ideal_s, apt)
    q = _ratio(good, produced)
    oee = a * p * q if a is not None and p is not None and q is not None else None
    return OEE(pbt, apt, a, p, q, oee, p is not None and p > 1.0 + 1e-9)


def compute_oee(durations_s: Mapping[str, float], good: int, scrap: int, ideal_s: float) -> OEE:
    """OEE from state durations by label, treating *every* planned stop as planned downtime.

    Kept for callers that only have state totals; ``oee_table`` is the full time model.

    >>> r = compute_oee({"running": 50.0, "down": 50.0, "planned_stop": 20.0}, 9, 1, 40.0)
    >>> r.availability, r.performance, r.quality, round(r.oee or 0, 6)
    (0.5, 0.8, 0.9, 0.36)
    """
    calendar = sum(durations_s.values())
    pbt = calendar - durations_s.get("planned_stop", 0.0) - durations_s.get("offline", 0.0)
    return _oee(pbt, durations_s.get("running", 0.0), ideal_s, good, good + scrap)


@dataclass(frozen=True, slots=True, eq=False)
class OEETable:
    """OEE rows keyed by (machine, bucket, product); columns are NumPy arrays.

    ``product`` is ``""`` when the table is not split by product. Time columns are additive,
    so rows can be summed (``group``) and the ratios recomputed from the sums.
    """

    machine: tuple[str, ...]
    bucket: tuple[str, ...]
    product: tuple[str, ...]
    columns: dict[str, F64]

    def __len__(self) -> int:
        return len(self.machine)

    def col(self, name: str) -> F64:
        return self.columns[name]

    @property
    def availability(self) -> F64:
        return _div(self.col("running_s"), self.col("planned_busy_s"))

    @property
    def performance(self) -> F64:
        return _div(self.col("net_operating_s"), self.col("running_s"))

    @property
    def quality(self) -> F64:
        return _div(self.col("good"), self.col("produced"))

    @property
    def oee(self) -> F64:
        """A × P × Q (ISO 22400). Equal to fully productive time ÷ PBT for one product; with
        a product mix the quantity-based Q differs slightly from the ideal-time-weighted
        quality that the waterfall's fully productive time implies."""
        return self.availability * self.performance * self.quality

    def group(self, key: Callable[[str, str, str], tuple[str, str, str]]) -> OEETable:
        """Sum rows that map to the same ``key(machine, bucket, product)``."""
        keys = [
            key(m, b, p) for m, b, p in zip(self.machine, self.bucket, self.product, strict=True)
        ]
        uniq, inv = codes_of([f"{m}\x00{b}\x00{p}" for m, b, p in keys])
        n = len(uniq)
        cols = {k: _bincount(inv, weights=v, minlength=n) for k, v in self.columns.items()}
        parts = [u.split("\x00") for u in uniq]
        return OEETable(
            tuple(p[0] for p in parts), tuple(p[1] for p in parts), tuple(p[2] for p in parts), cols
        )

    def rows(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per row: keys, ratios, flags, then every column."""
        a, p, q, o = self.availability, self.performance, self.quality, self.oee
        out = []
        for i in range(len(self)):
            row: dict[str, Any] = {
                "machine": self.machine[i],
                "bucket": self.bucket[i],
                "product": self.product[i],
                "availability": _f(a[i]),
                "performance": _f(p[i]),
                "quality": _f(q[i]),
                "oee": _f(o[i]),
                "performance_flag": bool(np.isfinite(p[i]) and p[i] > 1.0 + 1e-9),
            }
            for k, v in self.columns.items():
                row[k] = int(v[i]) if k in COUNT_COLUMNS else round(float(v[i]), 6)
            out.append(row)
        return out

    def waterfall(self, i: int) -> list[tuple[str, float]]:
        """Row ``i`` as a waterfall: PBT, then each loss, then fully productive time."""
        c = self.columns
        steps = [("planned_busy_s", float(c["planned_busy_s"][i]))]
        steps += [(k, float(c[k][i])) for k in LOSSES]
        steps.append(("fully_productive_s", float(c["fully_productive_s"][i])))
        return steps


def _bincount(x: npt.NDArray[Any], weights: npt.NDArray[Any], minlength: int) -> F64:
    return np.asarray(np.bincount(x, weights=weights, minlength=minlength), dtype=np.float64)


def _div(a: F64, b: F64) -> F64:
    out = np.full(len(a), np.nan)
    ok = b > 0
    out[ok] = a[ok] / b[ok]
    return out


def _f(x: float) -> float | None:
    return None if not np.isfinite(x) else round(float(x), 9)


def _ideal_per_part(
    parts: PartBatch, ideal: Mapping[str, Mapping[str, float]]
) -> tuple[tuple[str, ...], np.ndarray, F64]:
    """Product codes of the parts and the ideal cycle time of each (NaN when unknown)."""
    pnames, pcodes = codes_of(parts.product)
    table = np.full((len(parts.names), max(1, len(pnames))), np.nan)
    for mi, m in enumerate(parts.names):
        spec = ideal.get(m, {})
        for pi, p in enumerate(pnames):
            if p in spec:
                table[mi, pi] = spec[p]
    return pnames, pcodes, table[parts.index, pcodes] if len(parts) else np.zeros(0)


class _Keys:
    """Machine-banded int64 keys ``machine × span + (t − lo)``: one sorted array and
    ``searchsorted`` then serve every machine at once."""

    def __init__(self, lo: int, hi: int, n_machines: int) -> None:
        self.lo, self.hi = lo, hi
        self.span = hi - lo + 1
        if max(n_machines, 1) * self.span >= 2**62:
            raise ValueError("oee_table: the time range is too long to index")

    def __call__(self, machine: I64, t: I64) -> I64:
        """Keys of times in ``[lo, hi]`` (callers keep them there)."""
        return machine.astype(np.int64) * self.span + (t - self.lo)


def _machine_pos(batch_names: Sequence[str], mpos: Mapping[str, int]) -> I64:
    return np.array([mpos.get(n, -1) for n in batch_names], dtype=np.int64)


def _state_pieces(
    states: StateBatch,
    s_machine: I64,
    cls: npt.NDArray[np.uint8],
    plan: Plan | None,
    mpos: Mapping[str, int],
) -> PlannedPieces:
    """The timeline as pieces sorted by machine and start, classified under the plan."""
    rows = np.flatnonzero(s_machine >= 0)
    m, a, b, c = s_machine[rows], states.start[rows], states.end[rows], cls[rows]
    if plan is not None:
        plan_machine = (
            _machine_pos(plan.names, mpos)[plan.index] if len(plan) else np.zeros(0, np.int64)
        )
        return apply_plan(m, a, b, c, plan, plan_machine)
    order = np.lexsort((a, m))
    c = c[order]
    return PlannedPieces(
        m[order], rows[order].astype(np.int64), a[order], b[order], c, c, np.zeros(len(c), bool)
    )


def oee_table(
    states: StateBatch,
    parts: PartBatch,
    ideal: Mapping[str, Mapping[str, float]],
    buckets: Buckets,
    model: TimeModel | None = None,
    *,
    by_product: bool = False,
    machines: Sequence[str] | None = None,
    plan: Plan | None = None,
) -> OEETable:
    """OEE and the loss waterfall per machine and bucket (and product).

    ``states`` is the timeline (any order; touching intervals of equal state and reason are
    joined before the micro-stop test), ``parts`` the part events, ``ideal`` the ideal
    cycle time in seconds by machine and product. Only time inside the buckets counts.
    ``machines`` fixes the rows' machines (default: every machine in ``states``, ``parts``
    or ``plan``). ``plan`` is the shift calendar of the machines (``Plan.from_calendar``):
    with it, planned busy time is the calendar's and unreported time in it is ``no_data``;
    without it, the states alone decide (see the module's docstring).

    >>> st = StateBatch.build(["m"], [0, 0, 0], [0, 60_000_000, 90_000_000],
    ...                       [60_000_000, 90_000_000, 100_000_000], [0, 3, 4], ["", "X", "break"])
    >>> pt = PartBatch.build(["m"], [0, 0], [30_000_000, 60_000_000], ["p", "p"], [1, 0], [0, 1])
    >>> t = oee_table(st, pt, {"m": {"p": 20.0}}, Buckets.single(0, 100_000_000))
    >>> r = t.rows()[0]
    >>> r["planned_busy_s"], r["availability"], r["performance"], r["quality"]
    (90.0, 0.666666667, 0.666666667, 0.5)
    """
    model = model or TimeModel()
    states = merge_touching(states)
    if machines is not None:
        names = list(machines)
    else:
        extra = set(plan.names) if plan is not None else set()
        names = sorted(set(states.names) | set(parts.names) | extra)
    mpos = {n: i for i, n in enumerate(names)}
    s_machine = (
        _machine_pos(states.names, mpos)[states.index] if len(states) else np.zeros(0, np.int64)
    )
    p_machine = (
        _machine_pos(parts.names, mpos)[parts.index] if len(parts) else np.zeros(0, np.int64)
    )

    pieces = _state_pieces(states, s_machine, classify(states, model), plan, mpos)
    pnames, pcodes, p_ideal = _ideal_per_part(parts, ideal)
    # by product: one more code, "", for time of machines that finished no part in range
    n_prod = len(pnames) + 1 if by_product else 1
    cap = max(1, round(model.cycle_window_s * 1e6))
    edges = buckets.edges
    # every time the keys see: bucket edges, pieces, parts (and their windows), the plan
    times = [edges, pieces.start, pieces.end, parts.ts]
    if plan is not None:
        times += [plan.start, plan.end]
    lo = min(int(t.min()) for t in times if len(t)) - cap
    hi = max(int(t.max()) for t in times if len(t)) + 1
    key = _Keys(lo, hi, len(names))

    # parts of selected machines, sorted by (machine, finish)
    pv = np.flatnonzero(p_machine >= 0)
    if len(pv) == len(parts):  # every part selected: no copy unless out of order
        pk = key(p_machine, parts.ts)
        if not bool(np.all(pk[1:] >= pk[:-1])):
            pv = np.argsort(pk, kind="stable")
            pk = pk[pv]
    else:
        pk = key(p_machine[pv], parts.ts[pv])
        order = np.argsort(pk, kind="stable")
        pv, pk = pv[order], pk[order]
    in_order = len(pv) == len(parts) and bool(np.all(pv[1:] > pv[:-1]))
    psel: slice | I64 = slice(None) if in_order else pv
    pm, pts = p_machine[psel], parts.ts[psel]

    # product of each piece: the next part finished after it starts (else the machine's last)
    piece_prod = np.full(len(pieces), len(pnames), dtype=np.int64)
    if by_product and len(pv):
        j = np.searchsorted(pk, key(pieces.machine, pieces.start), side="right")
        ahead = np.minimum(j, len(pv) - 1)
        back = np.maximum(j - 1, 0)
        is_ahead = pm[ahead] == pieces.machine
        is_back = ~is_ahead & (pm[back] == pieces.machine)
        piece_prod[is_ahead] = pcodes[pv[ahead[is_ahead]]]
        piece_prod[is_back] = pcodes[pv[back[is_back]]]

    nb = len(buckets)
    n_groups = len(names) * nb * n_prod
    cols: dict[str, F64] = {k: np.zeros(n_groups) for k in (*TIME_COLUMNS, *COUNT_COLUMNS)}

    row, kb, bs, be = cut_at(pieces.start, pieces.end, edges)
    g = (pieces.machine[row] * nb + kb) * n_prod + (piece_prod[row] if by_product else 0)
    dur = (be - bs).astype(np.float64) / 1e6
    by_class = _bincount(
        g * N_CLASSES + pieces.cls[row], weights=dur, minlength=n_groups * N_CLASSES
    ).reshape(n_groups, N_CLASSES)
    for c, name in _CLASS_COLUMN.items():
        cols[name] = by_class[:, c].copy()
    cols["calendar_s"] = by_class.sum(axis=1)
    cols["planned_busy_s"] = cols["calendar_s"] - cols["not_scheduled_s"] - cols["planned_down_s"]
    cols["outside_plan_running_s"] = _bincount(
        g, weights=dur * pieces.outside[row], minlength=n_groups
    )

    if len(pv):
        _parts_columns(
            cols,
            parts,
            pv,
            psel,
            pk,
            pm,
            pts,
            pcodes,
            p_ideal,
            pieces,
            piece_prod if by_product else None,
            plan,
            mpos,
            key,
            buckets,
            model,
            n_prod,
            cap,
        )
    cols["speed_loss_s"] = cols["running_s"] - cols["net_operating_s"]

    m_ix, rest = np.divmod(np.arange(n_groups), nb * n_prod)
    b_ix, p_ix = np.divmod(rest, n_prod)
    keep = np.flatnonzero(
        (cols["calendar_s"] > 0) | (cols["produced"] > 0) | (cols["outside_plan_produced"] > 0)
    )
    labels = (*pnames, "")
    prod_label = [labels[int(i)] if by_product else "" for i in p_ix[keep]]
    return OEETable(
        tuple(names[int(i)] for i in m_ix[keep]),
        tuple(buckets.labels[int(i)] for i in b_ix[keep]),
        tuple(prod_label),
        {k: v[keep] for k, v in cols.items()},
    )


def _running_bound(r_m: I64, r_s: I64, r_e: I64, m: I64, t: I64, cap: int, key: _Keys) -> I64:
    """For each machine ``m[i]`` and instant ``t[i]``, the instant from which the machine's
    running time up to ``t[i]`` is ``cap`` µs (``key.lo - 1`` when it ran less in the data).
    ``r_m, r_s, r_e``: running pieces sorted by machine, then start, not overlapping.

    >>> from andon.kpi.oee import _Keys
    >>> k = _Keys(0, 1000, 1)
    >>> m, s, e = (np.array(x, dtype=np.int64) for x in ([0, 0], [0, 500], [100, 600]))
    >>> _running_bound(m, s, e, np.array([0, 0]), np.array([550, 50]), 80, k).tolist()
    [70, -1]
    """
    out = np.full(len(t), key.lo - 1, dtype=np.int64)
    if not len(r_m) or not len(t):
        return out
    dur = r_e - r_s
    c_end = np.cumsum(dur)
    c_start = c_end - dur
    first = np.searchsorted(r_m, m, side="left")
    has = (first < len(r_m)) & (r_m[np.minimum(first, len(r_m) - 1)] == m)
    i = np.searchsorted(key(r_m, r_s), key(m, t), side="right") - 1
    ii = np.maximum(i, 0)
    mine = has & (i >= first) & (r_m[ii] == m)
    ran = np.where(mine, c_start[ii] + np.clip(t - r_s[ii], 0, dur[ii]), 0)
    target = ran - cap
    ok = mine & (target >= c_start[np.minimum(first, len(r_m) - 1)])
    j = np.minimum(np.searchsorted(c_end, target, side="right"), len(r_m) - 1)
    out[ok] = (r_s[j] + (target - c_start[j]))[ok]
    return out


def _parts_columns(
    cols: dict[str, F64],
    parts: PartBatch,
    pv: I64,
    psel: slice | I64,
    pk: I64,
    pm: I64,
    pts: I64,
    pcodes: npt.NDArray[Any],
    p_ideal: F64,
    pieces: PlannedPieces,
    piece_prod: I64 | None,
    plan: Plan | None,
    mpos: Mapping[str, int],
    key: _Keys,
    buckets: Buckets,
    model: TimeModel,
    n_prod: int,
    cap: int,
) -> None:
    """Part counts where parts finish; their ideal time spread over their cycle's running
    time (``cols`` is filled in place). Split by product (``piece_prod`` given), the ideal
    time goes with the running time it is spread over, to that time's product."""
    nb = len(buckets)
    n_groups = len(cols["calendar_s"])
    split_p = piece_prod is not None
    pc = pcodes[psel]
    good = parts.good[psel].astype(np.float64)
    scrap = parts.scrap[psel].astype(np.float64)
    produced = good + scrap

    # start-up rank: parts since the end of the last setup, planned downtime or off shift
    su = np.isin(pieces.cls, [TimeClass.SETUP, TimeClass.PLANNED_DOWN, TimeClass.NOT_SCHEDULED])
    ek = np.sort(key(pieces.machine[su], pieces.end[su]))
    startup = np.zeros(len(pv), dtype=bool)
    if len(ek):
        k = np.maximum(np.searchsorted(ek, pk, side="right") - 1, 0)
        has = (ek[k] <= pk) & (ek[k] // key.span == pm)
        first = np.searchsorted(pk, ek, side="left")[k]  # the first part after the event
        startup = has & (np.arange(len(pv)) - first < model.startup_parts)

    # outside planned time at the finish: the plan's status at that instant
    outside = np.zeros(len(pv), dtype=bool)
    if plan is not None and len(plan):
        plm = _machine_pos(plan.names, mpos)[plan.index]
        pl_ok = np.flatnonzero(plm >= 0)
        plk = key(plm[pl_ok], plan.start[pl_ok])
        o = np.argsort(plk, kind="stable")
        pl_ok, plk = pl_ok[o], plk[o]
        j = np.searchsorted(plk, pk - 1, side="right") - 1  # keys are linear in time
        jj = pl_ok[np.maximum(j, 0)]
        cover = (j >= 0) & (plm[jj] == pm) & (pts - 1 < plan.end[jj])
        outside = cover & (plan.status[jj] != PlanStatus.SCHEDULED)

    # a part finished at t counts where t - 1 µs lies: its work ended there
    pb = buckets.of(pts - 1).astype(np.int64)
    ok = pb >= 0
    gp = (pm * nb + pb) * n_prod + (pc if split_p else 0)
    dump = n_groups  # the group of what is not counted (bincount drops it)
    g_in = np.where(ok & ~outside, gp, dump)
    g_out = np.where(ok & outside, gp, dump)
    known = np.isfinite(p_ideal[psel])
    ideal_s = np.where(known, p_ideal[psel], 0.0)

    def add(col: str, groups: I64, w: F64) -> None:
        cols[col] += _bincount(groups, weights=w, minlength=n_groups + 1)[:n_groups]

    any_scrap, any_out = bool(scrap.any()), bool(outside.any())
    add("good", g_in, good)
    if any_scrap:
        add("scrap", g_in, scrap)
        if startup.any():
            add("startup_scrap", g_in, scrap * startup)
    cols["produced"] += cols["good"] + cols["scrap"]
    if not known.all():
        add("unknown_ideal", g_in, produced * ~known)
    if any_out:
        add("outside_plan_good", g_out, good)
        add("outside_plan_produced", g_out, produced)

    # ideal time of each part splits into good and rejects; net operating time is their sum
    w_net = ideal_s * produced
    weights = {"fully_productive_s": ideal_s * good}
    if any_scrap:
        weights["production_reject_s"] = ideal_s * scrap * ~startup
        if startup.any():
            weights["startup_reject_s"] = ideal_s * scrap * startup
    sp = np.flatnonzero(ok & (w_net > 0))
    # cycle window: from the previous (distinct) finish of the machine, at most ``cap`` of
    # the machine's RUNNING time back (a wall-clock bound cut off the work done before a
    # long stop, and the part's whole ideal time landed on the minutes after it: 150 %)
    new_key = np.ones(len(pk), dtype=bool)
    new_key[1:] = pk[1:] != pk[:-1]
    prev = np.maximum.accumulate(np.where(new_key, np.arange(len(pk)), 0))[sp] - 1
    prev_ok = (prev >= 0) & (pm[np.maximum(prev, 0)] == pm[sp])
    w1 = pts[sp]

    # running pieces (in or outside planned time), cut at the bucket edges (-1: outside them)
    run = np.flatnonzero(pieces.state_cls == TimeClass.RUNNING)
    ext = np.concatenate(([key.lo - 1], buckets.edges, [key.hi + 1]))
    r_row, r_k, r_s, r_e = cut_at(pieces.start[run], pieces.end[run], ext)
    r_m = pieces.machine[run][r_row]
    r_out = pieces.outside[run][r_row]
    r_p = piece_prod[run][r_row] if piece_prod is not None else np.zeros(len(r_row), np.int64)
    r_b = r_k - 1
    r_b[r_b >= nb] = -1
    o = np.lexsort((r_s, r_m))
    r_m, r_s, r_e, r_b, r_out, r_p = r_m[o], r_s[o], r_e[o], r_b[o], r_out[o], r_p[o]
    k1 = pk[sp]
    bound = _running_bound(r_m, r_s, r_e, pm[sp], w1, cap, key)
    w0 = np.maximum(np.where(prev_ok, pts[np.maximum(prev, 0)], bound), bound)
    i0 = np.searchsorted(key(r_m, r_e), k1 - (w1 - w0), side="right")
    i1 = np.searchsorted(key(r_m, r_s), k1, side="left")
    cnt = np.maximum(i1 - i0, 0)
    if bool(np.all(cnt == 1)):  # every window inside one running piece: no repeat needed
        rep, ri = np.arange(len(sp)), i0
    else:
        rep = np.repeat(np.arange(len(sp)), cnt)
        ri = i0[rep] + (np.arange(len(rep)) - np.repeat(np.cumsum(cnt) - cnt, cnt))
    overlap = np.minimum(r_e[ri], w1[rep]) - np.maximum(r_s[ri], w0[rep])
    np.maximum(overlap, 0, out=overlap)
    total = np.bincount(rep, weights=overlap, minlength=len(sp))
    frac = overlap / np.maximum(total[rep], 1.0)
    spr = sp[rep]
    gpair = (pm[spr] * nb + r_b[ri]) * n_prod + r_p[ri]
    valid = (r_b[ri] >= 0) & (overlap > 0)
    out_r = r_out[ri]
    g_pin = np.where(valid & ~out_r, gpair, dump)
    for col, w in weights.items():
        add(col, g_pin, w[spr] * frac)
    if out_r.any():
        add("outside_plan_net_s", np.where(valid & out_r, gpair, dump), w_net[spr] * frac)
    # a part with no running time in its window keeps its ideal time where it finished
    lone = np.zeros(len(pv), dtype=bool)
    lone[sp[total <= 0]] = True
    if lone.any():
        for col, w in weights.items():
            add(col, np.where(lone, g_in, dump), w)
        add("outside_plan_net_s", np.where(lone, g_out, dump), w_net)
    cols["net_operating_s"] += (
        cols["fully_productive_s"] + cols["production_reject_s"] + cols["startup_reject_s"]
    )
