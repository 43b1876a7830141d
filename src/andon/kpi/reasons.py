"""Downtime reasons, with a human in the loop.

* ``ReasonTree``: a configurable two-level tree (category › reason) plus a map from the codes
  machines report (alarm numbers, failure-mode codes) onto its reasons. A machine code that is
  not mapped is shown as ``unmapped › CODE``; a stop with no code at all is *unexplained*.
  Reasons taken from a machine's failure modes belong to the machines that have that mode
  (``scope``); the rest of the tree is offered on every machine.
* ``ReasonLog``: operator entries for stops the machine could not explain, in their own small
  DuckDB file next to the telemetry store (``reasons.duckdb``). Every entry records who
  entered it and when; entries are appended, never updated, so the history stays. The latest
  entry for a stop is its reason; the earliest is its acknowledgement (MTTA).
* ``downtime``: the downtime Pareto by category and reason, with unexplained downtime as a
  KPI of its own.

See ``docs/decisions/0102-reason-entries-in-own-file.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from andon.kpi.timeline import codes_of, merge_touching
from andon.model.plant import Plant
from andon.model.types import MachineState, Micros, StateBatch

__all__ = [
    "UNEXPLAINED",
    "UNMAPPED",
    "ReasonEntry",
    "ReasonLog",
    "ReasonTree",
    "apply_entries",
    "downtime",
]

UNEXPLAINED = "unexplained"
UNMAPPED = "unmapped"

_DEFAULT_TREE: dict[str, dict[str, str]] = {
    "planned": {
        "break": "Scheduled break",
        "planned_maintenance": "Planned maintenance window",
        "changeover": "Product changeover",
        "tool_change": "Tool change",
        "wheel_change": "Grinding wheel change",
        "dressing": "Wheel dressing",
    },
    "equipment": {
        "mechanical": "Mechanical failure",
        "electrical": "Electrical or control failure",
        "tooling": "Tool or fixture failure",
        "sensor": "Sensor or gauge fault",
    },
    "process": {
        "jam": "Jam (chips, parts, labels)",
        "quality_check": "Stopped for a quality check",
        "adjustment": "Adjustment or setting",
    },
    "organisation": {
        "no_operator": "No operator",
        "no_material": "Waiting for material",
        "waiting_instructions": "Waiting for instructions",
    },
}


@dataclass(frozen=True, slots=True)
class ReasonTree:
    """Category › reason, and machine codes mapped onto reasons.

    >>> t = ReasonTree.default().with_codes({"CHIP_JAM": "jam"})
    >>> t.resolve("CHIP_JAM"), t.resolve("E042"), t.resolve("")
    (('process', 'jam'), ('unmapped', 'E042'), ('unexplained', ''))
    """

    categories: Mapping[str, Mapping[str, str]]
    codes: Mapping[str, str]
    scope: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Reason → the machines (paths) it may be entered on; a reason not here fits every
    machine."""

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for cat, reasons in self.categories.items():
            for r in reasons:
                if r in seen:
                    raise ValueError(f"reason {r!r} is in both {seen[r]!r} and {cat!r}")
                seen[r] = cat
        for code, reason in self.codes.items():
            if reason not in seen:
                raise ValueError(f"code {code!r} maps to unknown reason {reason!r}")
        for reason in self.scope:
            if reason not in seen:
                raise ValueError(f"scope names unknown reason {reason!r}")

    @classmethod
    def default(cls) -> ReasonTree:
        """A starting tree for discrete manufacturing; extend it per plant."""
        return cls(_DEFAULT_TREE, {})

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ReasonTree:
        """From ``{"categories": {cat: {reason: description}}, "codes": {code: reason}}``."""
        unknown = set(doc) - {"categories", "codes"}
        if unknown or "categories" not in doc:
            raise ValueError(
                "a reason tree has 'categories' (and optionally 'codes'), "
                f"not {', '.join(sorted(map(str, doc)))}"
            )
        cats = doc["categories"]
        codes = doc.get("codes", {})
        if not isinstance(cats, Mapping) or not isinstance(codes, Mapping):
            raise ValueError("a reason tree needs 'categories' and 'codes' mappings")
        return cls(
            {str(c): {str(r): str(d) for r, d in rs.items()} for c, rs in cats.items()},
            {str(k): str(v) for k, v in codes.items()},
        )

    def with_failure_modes(self, plant: Plant, category: str = "equipment") -> ReasonTree:
        """Add every failure-mode code of the plant that is not mapped yet as a reason of
        ``category`` (described as in the plant file), offered only on the machines that
        have that failure mode.

        >>> from importlib.resources import files
        >>> from andon.model.loader import parse_plant
        >>> demo = (files("andon.sim") / "plants" / "demo.yaml").read_text(encoding="utf-8")
        >>> t = ReasonTree.default().with_failure_modes(parse_plant(demo))
        >>> sorted(t.scope["PIN_BREAK"])
        ['tc1/joining/L2/FSW-01']
        >>> "PIN_BREAK" in t.offered("tc1/joining/L2/RB-01")["equipment"]
        False
        >>> "mechanical" in t.offered("tc1/joining/L2/RB-01")["equipment"]
        True
        """
        cats = {c: dict(rs) for c, rs in self.categories.items()}
        known = {r for rs in cats.values() for r in rs}
        target = cats.setdefault(category, {})
        scope = {r: set(ms) for r, ms in self.scope.items()}
        for a, ln, m in plant.machines():
            for fm in m.sim.failure_modes:
                if fm.code not in self.codes and fm.code not in known:
                    target[fm.code] = fm.description or fm.code
                    known.add(fm.code)
                    scope[fm.code] = set()
                if fm.code in scope:
                    scope[fm.code].add(plant.machine_path(a, ln, m))
        return ReasonTree(cats, dict(self.codes), {r: frozenset(ms) for r, ms in scope.items()})

    def fits(self, reason: str, machine: str) -> bool:
        """Whether ``reason`` may be entered on ``machine`` (a path)."""
        ms = self.scope.get(reason)
        return ms is None or machine in ms

    def offered(self, machine: str) -> dict[str, dict[str, str]]:
        """The tree as an operator at ``machine`` sees it: the generic reasons and the
        failure modes of that machine (categories left empty are dropped)."""
        out = {
            c: {r: d for r, d in rs.items() if self.fits(r, machine)}
            for c, rs in self.categories.items()
        }
        return {c: rs for c, rs in out.items() if rs}

    def with_codes(self, codes: Mapping[str, str]) -> ReasonTree:
        """The same tree with more machine codes mapped."""
        return ReasonTree(self.categories, {**self.codes, **codes}, self.scope)

    def category_of(self, reason: str) -> str | None:
        for cat, reasons in self.categories.items():
            if reason in reasons:
                return cat
        return None

    def resolve(self, code: str) -> tuple[str, str]:
        """(category, reason) of a reported code or a reason entered by a person."""
        if not code:
            return UNEXPLAINED, ""
        reason = self.codes.get(code, code)
        cat = self.category_of(reason)
        return (cat, reason) if cat is not None else (UNMAPPED, code)


@dataclass(frozen=True, slots=True)
class ReasonEntry:
    """A person's answer for one stop: machine, stop start, reason, who and when."""

    machine: str
    stop_start: Micros
    reason: str
    who: str
    entered_at: Micros
    comment: str = ""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS reason_entries (
    tenant VARCHAR NOT NULL, machine VARCHAR NOT NULL, stop_start BIGINT NOT NULL,
    reason VARCHAR NOT NULL, who VARCHAR NOT NULL, entered_at BIGINT NOT NULL,
    comment VARCHAR NOT NULL
)
"""


class ReasonLog:
    """Operator reason entries in a DuckDB file (append-only). Synchronous: entries are few
    and each is one small statement."""

    def __init__(self, path: str | Path | None = None) -> None:
        import duckdb

        self._db = duckdb.connect(str(path) if path is not None else ":memory:")
        self._db.execute(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ReasonLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record(
        self,
        tenant: str,
        entry: ReasonEntry,
        tree: ReasonTree | None = None,
    ) -> None:
        """Append one entry; with a ``tree`` the reason must be one of its reasons."""
        if not entry.who.strip():
            raise ValueError("a reason entry needs the person who made it")
        if tree is not None and tree.category_of(entry.reason) is None:
            raise ValueError(f"unknown reason {entry.reason!r}")
        self._db.execute(
            "INSERT INTO reason_entries VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                tenant,
                entry.machine,
                entry.stop_start,
                entry.reason,
                entry.who,
                entry.entered_at,
                entry.comment,
            ],
        )

    def entries(self, tenant: str, start: Micros, end: Micros) -> list[ReasonEntry]:
        """Entries for stops starting in ``[start, end)``, oldest entry first."""
        rows = self._db.execute(
            "SELECT machine, stop_start, reason, who, entered_at, comment FROM reason_entries "
            "WHERE tenant = ? AND stop_start >= ? AND stop_start < ? "
            "ORDER BY entered_at, machine, stop_start",
            [tenant, start, end],
        ).fetchall()
        return [ReasonEntry(r[0], int(r[1]), r[2], r[3], int(r[4]), r[5]) for r in rows]


def apply_entries(
    states: StateBatch, entries: Sequence[ReasonEntry]
) -> tuple[StateBatch, dict[tuple[str, Micros], Micros]]:
    """Set the reason of ``down`` stops from entries and return the acknowledgement time of
    every answered stop (the earliest entry). The latest entry wins, over the code the machine
    reported too: the person at the machine knows better than the alarm (a ``PIN_BREAK`` that
    was really a clamp fault); the code stays in ``/stops`` and the audit log keeps both.

    >>> st = StateBatch.build(["m"], [0], [0], [60], [3], ["PIN_BREAK"])
    >>> e = ReasonEntry("m", 0, "CLAMP_FAULT", "user:1", 70)
    >>> out, acked = apply_entries(st, [e])
    >>> out.reason, acked
    (('CLAMP_FAULT',), {('m', 0): 70})
    """
    latest: dict[tuple[str, Micros], str] = {}
    acked: dict[tuple[str, Micros], Micros] = {}
    for e in entries:
        k = (e.machine, e.stop_start)
        latest[k] = e.reason
        acked[k] = min(acked.get(k, e.entered_at), e.entered_at)
    if not latest:
        return states, acked
    states = merge_touching(states)
    reasons = list(states.reason)
    for i in np.flatnonzero(states.state == MachineState.DOWN).tolist():
        r = latest.get((states.names[int(states.index[i])], int(states.start[i])))
        if r is not None:
            reasons[i] = r
    out = StateBatch(
        states.names, states.index, states.start, states.end, states.state, tuple(reasons)
    )
    return out, acked


def downtime(
    states: StateBatch,
    tree: ReasonTree,
    *,
    include_planned: bool = False,
) -> dict[str, Any]:
    """The downtime Pareto (largest first) and unexplained downtime.

    Counts ``down`` intervals, and planned stops too with ``include_planned``.

    >>> st = StateBatch.build(["m"], [0, 0, 0], [0, 60, 120], [60, 120, 150], [3, 0, 3],
    ...                       ["CHIP_JAM", "", ""])
    >>> d = downtime(st, ReasonTree.default().with_codes({"CHIP_JAM": "jam"}))
    >>> [(r["category"], r["reason"], r["stops"]) for r in d["pareto"]], d["unexplained_s"]
    ([('process', 'jam', 1), ('unexplained', '', 1)], 3e-05)
    """
    states = merge_touching(states)
    sel = states.state == MachineState.DOWN
    if include_planned:
        sel |= states.state == MachineState.PLANNED_STOP
    dur = (states.end - states.start).astype(np.float64) / 1e6
    rnames, rcodes = codes_of(states.reason)
    labels = [tree.resolve(r) for r in rnames]
    lnames, lcode_of_r = codes_of([f"{c}\x00{r}" for c, r in labels])
    lc = lcode_of_r[rcodes[sel]] if len(rnames) else np.zeros(0, dtype=np.int32)
    total_s = np.bincount(lc, weights=dur[sel], minlength=len(lnames))
    stops = np.bincount(lc, minlength=len(lnames))
    all_s = float(dur[sel].sum())
    rows = []
    for i in np.argsort(-total_s, kind="stable").tolist():
        if stops[i] == 0:
            continue
        cat, reason = lnames[i].split("\x00")
        rows.append(
            {
                "category": cat,
                "reason": reason,
                "stops": int(stops[i]),
                "duration_s": round(float(total_s[i]), 6),
                "share": round(float(total_s[i]) / all_s, 6) if all_s > 0 else None,
            }
        )
    unexplained = sum(r["duration_s"] for r in rows if r["category"] == UNEXPLAINED)
    return {
        "pareto": rows,
        "downtime_s": round(all_s, 6),
        "unexplained_s": round(float(unexplained), 6),
        "unexplained_share": round(float(unexplained) / all_s, 6) if all_s > 0 else None,
    }
