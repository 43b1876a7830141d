"""OEE by ISO 22400-2 from a machine's state durations and part counts.

* planned busy time PBT = calendar time − planned stops − offline (not scheduled)
* actual production time APT = running time
* availability A = APT / PBT
* performance (effectiveness) P = Σ(ideal cycle time × produced) / APT
* quality Q = good / produced
* OEE = A × P × Q

A performance above 1 means the ideal cycle time is wrong or parts were counted twice: it is
reported as it is and flagged (``performance_flag``), never capped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["OEE", "compute_oee"]


@dataclass(frozen=True, slots=True)
class OEE:
    planned_busy_s: float
    production_s: float
    availability: float | None
    performance: float | None
    quality: float | None
    oee: float | None
    performance_flag: bool


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def compute_oee(durations_s: Mapping[str, float], good: int, scrap: int, ideal_s: float) -> OEE:
    """``durations_s`` by state label (running, starved, blocked, down, planned_stop,
    offline); ``ideal_s`` = Σ ideal cycle time of every produced part."""
    calendar = sum(durations_s.values())
    pbt = calendar - durations_s.get("planned_stop", 0.0) - durations_s.get("offline", 0.0)
    apt = durations_s.get("running", 0.0)
    a = _ratio(apt, pbt)
    p = _ratio(ideal_s, apt)
    q = _ratio(good, good + scrap)
    oee = a * p * q if a is not None and p is not None and q is not None else None
    return OEE(pbt, apt, a, p, q, oee, p is not None and p > 1.0 + 1e-9)
