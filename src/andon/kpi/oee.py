"""OEE by ISO 22400-2 and the six-big-losses waterfall, vectorised over whole timelines.

Time model (see ``andon.kpi.timeline`` for the classes):

* planned busy time PBT = calendar − not scheduled − planned downtime (breaks, planned
  maintenance)
* actual production time APT = running = PBT − breakdowns − setup − minor stops − idle
* availability A = APT / PBT
* performance (effectiveness) P = Σ(ideal cycle time × produced) / APT
* quality Q = good / produced
* OEE = A × P × Q (= fully productive time / PBT when one product is made; with a mix,
  Q counts parts while the waterfall weighs them by ideal cycle time)

The **loss waterfall** splits PBT exactly (to floating-point rounding) into the six big losses
plus what is left::

    PBT = breakdown + setup + minor_stop + idle            (availability losses)
        + speed_loss                                     (APT − ideal × produced)
        + startup_reject + production_reject             (ideal × scrap)
        + fully_productive                               (ideal × good)

``idle`` (starved or blocked for longer than the micro-stop threshold) is the line restraint
that the classic six losses fold into "idling and minor stops"; it is kept apart because it is
the line's loss, not the machine's. A performance above 1 (ideal cycle time wrong, or parts
counted twice) makes ``speed_loss`` negative: it is reported as it is and flagged, never capped.

Parts count in the bucket in which they were *finished*.
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
    TimeClass,
    TimeModel,
    classify,
    codes_of,
    merge_touching,
    split,
)
from andon.model.types import F64, I64, PartBatch, StateBatch

__all__ = [
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
    "running_s",
    "net_operating_s",
    "speed_loss_s",
    "startup_reject_s",
    "production_reject_s",
    "fully_productive_s",
)
"""Additive time columns of an ``OEETable`` (seconds)."""

COUNT_COLUMNS: tuple[str, ...] = ("produced", "good", "scrap", "startup_scrap", "unknown_ideal")

LOSSES: tuple[str, ...] = (
    "breakdown_s",
    "setup_s",
    "minor_stop_s",
    "idle_s",
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


def _startup_rank(
    machine_names: Sequence[str],
    parts: PartBatch,
    p_machine: np.ndarray,
    events: dict[int, I64],
) -> I64:
    """For each part, how many parts of its machine finished since the last start-up event
    (a huge number when there was none in range)."""
    rank = np.full(len(parts), np.iinfo(np.int64).max, dtype=np.int64)
    for mi in range(len(machine_names)):
        sel = np.flatnonzero(p_machine == mi)
        ev = events.get(mi)
        if len(sel) == 0 or ev is None or len(ev) == 0:
            continue
        ts = parts.ts[sel]
        order = np.argsort(ts, kind="stable")
        ts_sorted = ts[order]
        k = np.searchsorted(ev, ts_sorted, side="right") - 1
        has = k >= 0
        first = np.searchsorted(ts_sorted, ev[np.maximum(k, 0)], side="left")
        r = np.arange(len(sel)) - first
        r[~has] = np.iinfo(np.int64).max
        rank[sel[order]] = r
    return rank


def oee_table(
    states: StateBatch,
    parts: PartBatch,
    ideal: Mapping[str, Mapping[str, float]],
    buckets: Buckets,
    model: TimeModel | None = None,
    *,
    by_product: bool = False,
    machines: Sequence[str] | None = None,
) -> OEETable:
    """OEE and the loss waterfall per machine and bucket (and product).

    ``states`` is the timeline (any order; touching intervals of equal state and reason are
    joined before the micro-stop test), ``parts`` the part events, ``ideal`` the ideal
    cycle time in seconds by machine and product. Only time inside the buckets counts.
    ``machines`` fixes the rows' machines (default: every machine in ``states`` or
    ``parts``).

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
    names = list(machines) if machines is not None else sorted(set(states.names) | set(parts.names))
    mpos = {n: i for i, n in enumerate(names)}
    st_map = np.array([mpos.get(n, -1) for n in states.names], dtype=np.int64)
    pt_map = np.array([mpos.get(n, -1) for n in parts.names], dtype=np.int64)
    s_machine = st_map[states.index] if len(states) else np.zeros(0, dtype=np.int64)
    p_machine = pt_map[parts.index] if len(parts) else np.zeros(0, dtype=np.int64)

    cls = classify(states, model)
    pnames, pcodes, p_ideal = _ideal_per_part(parts, ideal)
    # by product: one more code, "", for time of machines that finished no part in range
    n_prod = len(pnames) + 1 if by_product else 1

    # product of each state interval: the next part finished after it starts
    s_prod = np.full(len(states), len(pnames), dtype=np.int64)
    if by_product and len(parts):
        for mi in range(len(names)):
            ssel = np.flatnonzero(s_machine == mi)
            psel = np.flatnonzero(p_machine == mi)
            if len(ssel) == 0 or len(psel) == 0:
                continue
            order = psel[np.argsort(parts.ts[psel], kind="stable")]
            j = np.searchsorted(parts.ts[order], states.start[ssel], side="right")
            s_prod[ssel] = pcodes[order[np.minimum(j, len(order) - 1)]]

    # start-up events: the end of a setup, planned downtime or off-shift interval
    startup_cls = (cls == TimeClass.SETUP) | (cls == TimeClass.PLANNED_DOWN)
    startup_cls |= cls == TimeClass.NOT_SCHEDULED
    events: dict[int, I64] = {}
    for mi in np.unique(s_machine[startup_cls]).tolist():
        sel = startup_cls & (s_machine == mi)
        events[int(mi)] = np.sort(states.end[sel])

    nb = len(buckets)
    n_groups = len(names) * nb * n_prod
    cols: dict[str, F64] = {k: np.zeros(n_groups) for k in (*TIME_COLUMNS, *COUNT_COLUMNS)}

    valid = s_machine >= 0
    pieces = split(states.start[valid], states.end[valid], buckets)
    rows = np.flatnonzero(valid)[pieces.row]
    g = (s_machine[rows] * nb + pieces.bucket) * n_prod + (s_prod[rows] if by_product else 0)
    dur = (pieces.end - pieces.start).astype(np.float64) / 1e6
    by_class = _bincount(
        g * N_CLASSES + cls[rows], weights=dur, minlength=n_groups * N_CLASSES
    ).reshape(n_groups, N_CLASSES)
    for c, name in _CLASS_COLUMN.items():
        cols[name] = by_class[:, c].copy()
    cols["calendar_s"] = by_class.sum(axis=1)
    cols["planned_busy_s"] = cols["calendar_s"] - cols["not_scheduled_s"] - cols["planned_down_s"]

    if len(parts):
        pb = buckets.of(parts.ts)
        ok = (pb >= 0) & (p_machine >= 0)
        gp = (p_machine * nb + pb) * n_prod + (pcodes if by_product else 0)
        gp = gp[ok]
        good = parts.good[ok].astype(np.float64)
        scrap = parts.scrap[ok].astype(np.float64)
        known = np.isfinite(p_ideal[ok])
        ideal_s = np.where(known, p_ideal[ok], 0.0)
        rank = _startup_rank(names, parts, p_machine, events)[ok]
        startup = rank < model.startup_parts
        produced = good + scrap
        cols["produced"] = _bincount(gp, weights=produced, minlength=n_groups)
        cols["good"] = _bincount(gp, weights=good, minlength=n_groups)
        cols["scrap"] = _bincount(gp, weights=scrap, minlength=n_groups)
        cols["startup_scrap"] = _bincount(gp, weights=scrap * startup, minlength=n_groups)
        cols["unknown_ideal"] = _bincount(gp, weights=produced * ~known, minlength=n_groups)
        cols["net_operating_s"] = _bincount(gp, weights=ideal_s * produced, minlength=n_groups)
        cols["startup_reject_s"] = _bincount(
            gp, weights=ideal_s * scrap * startup, minlength=n_groups
        )
        cols["production_reject_s"] = _bincount(
            gp, weights=ideal_s * scrap * ~startup, minlength=n_groups
        )
        cols["fully_productive_s"] = _bincount(gp, weights=ideal_s * good, minlength=n_groups)
    cols["speed_loss_s"] = cols["running_s"] - cols["net_operating_s"]

    m_ix, rest = np.divmod(np.arange(n_groups), nb * n_prod)
    b_ix, p_ix = np.divmod(rest, n_prod)
    keep = np.flatnonzero((cols["calendar_s"] > 0) | (cols["produced"] > 0))
    labels = (*pnames, "")
    prod_label = [labels[int(i)] if by_product else "" for i in p_ix[keep]]
    return OEETable(
        tuple(names[int(i)] for i in m_ix[keep]),
        tuple(buckets.labels[int(i)] for i in b_ix[keep]),
        tuple(prod_label),
        {k: v[keep] for k, v in cols.items()},
    )
