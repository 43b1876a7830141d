"""Reliability: failure counts, MTBF, MTTR and MTTA per machine and per failure reason.

A *failure* is one ``down`` interval (touching ``down`` intervals with the same reason are
one failure). Planned stops, including planned maintenance, are never failures; reasons in
``exclude`` are dropped too, and so are stops shorter than ``min_down_s`` when it is set.

* MTBF = operating (running) time ÷ failures, ISO 22400 style: the clock of a failure mode
  runs only while the machine works (``docs/decisions/0002``). Per reason it is the
  machine's running time ÷ failures of that reason (the mode's own MTBF).
* MTTR = time down ÷ failures.
* MTTA = mean time from the start of a stop to its acknowledgement, over the acknowledged
  failures (``None`` when there are none). Acknowledgements come from operator reason
  entries (``andon.kpi.reasons``): the time a person first answered the stop.

A failure belongs to the range in which its (clipped) interval lies; a stop that started
before the range counts in it with the part of its duration inside.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from andon.kpi.timeline import codes_of, merge_touching
from andon.model.types import MachineState, Micros, StateBatch

__all__ = ["ReliabilityRow", "reliability"]


@dataclass(frozen=True, slots=True)
class ReliabilityRow:
    """One machine (``reason == ""``: all reasons together) or one machine and reason
    (``unexplained`` for stops without a code)."""

    machine: str
    reason: str
    failures: int
    running_s: float
    down_s: float
    acknowledged: int
    ack_s: float

    @property
    def mtbf_s(self) -> float | None:
        return self.running_s / self.failures if self.failures else None

    @property
    def mttr_s(self) -> float | None:
        return self.down_s / self.failures if self.failures else None

    @property
    def mtta_s(self) -> float | None:
        return self.ack_s / self.acknowledged if self.acknowledged else None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with the three means."""

        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 3)

        return {
            "machine": self.machine,
            "reason": self.reason,
            "failures": self.failures,
            "running_s": round(self.running_s, 3),
            "down_s": round(self.down_s, 3),
            "mtbf_s": r(self.mtbf_s),
            "mttr_s": r(self.mttr_s),
            "mtta_s": r(self.mtta_s),
            "acknowledged": self.acknowledged,
        }


def reliability(
    states: StateBatch,
    *,
    exclude: Iterable[str] = (),
    min_down_s: float = 0.0,
    acknowledged: Mapping[tuple[str, Micros], Micros] | None = None,
    per_reason: bool = True,
) -> list[ReliabilityRow]:
    """Reliability rows, machine by machine (sorted), each followed by its reasons.

    ``acknowledged`` maps ``(machine, stop start)`` to the time the stop was acknowledged.

    >>> st = StateBatch.build(["m"], [0, 0, 0, 0], [0, 10, 20, 50], [10, 20, 50, 60],
    ...                       [0, 3, 0, 3], ["", "JAM", "", "JAM"])
    >>> [(r.reason, r.failures, r.mtbf_s, r.mttr_s) for r in reliability(st)]
    [('', 2, 2e-05, 1e-05), ('JAM', 2, 2e-05, 1e-05)]
    """
    states = merge_touching(states)
    excl = set(exclude)
    n_m = len(states.names)
    dur = (states.end - states.start).astype(np.float64) / 1e6
    running = np.bincount(
        states.index[states.state == MachineState.RUNNING],
        weights=dur[states.state == MachineState.RUNNING],
        minlength=n_m,
    )
    rnames, rcodes = codes_of(states.reason)
    excluded = np.array([r in excl for r in rnames], dtype=bool)
    fail = states.state == MachineState.DOWN
    if len(rnames):
        fail &= ~excluded[rcodes]
    if min_down_s > 0:
        fail &= dur >= min_down_s
    ack = np.zeros(len(states))
    has_ack = np.zeros(len(states), dtype=bool)
    if acknowledged:
        for i in np.flatnonzero(fail).tolist():
            at = acknowledged.get((states.names[int(states.index[i])], int(states.start[i])))
            if at is not None:
                has_ack[i] = True
                ack[i] = max(0.0, (at - int(states.start[i])) / 1e6)
    n_r = max(1, len(rnames))
    key = states.index.astype(np.int64) * n_r + rcodes
    size = n_m * n_r

    def count(weights: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.bincount(key[mask], weights=weights[mask], minlength=size).reshape(n_m, n_r)

    ones = np.ones(len(states))
    f = count(ones, fail)
    d = count(dur, fail)
    a = count(ones, fail & has_ack)
    s = count(ack, fail & has_ack)
    out: list[ReliabilityRow] = []
    for mi in np.argsort(np.array(states.names, dtype=object)).tolist():
        name = states.names[mi]
        run = float(running[mi])
        out.append(
            ReliabilityRow(
                name,
                "",
                int(f[mi].sum()),
                run,
                float(d[mi].sum()),
                int(a[mi].sum()),
                float(s[mi].sum()),
            )
        )
        if per_reason:
            for ri in np.flatnonzero(f[mi] > 0).tolist():
                out.append(
                    ReliabilityRow(
                        name,
                        rnames[ri] or "unexplained",
                        int(f[mi, ri]),
                        run,
                        float(d[mi, ri]),
                        int(a[mi, ri]),
                        float(s[mi, ri]),
                    )
                )
    return out
