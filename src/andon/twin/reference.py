"""Plants built in code for serial lines: the benchmark's reference line and test lines.

>>> plant = reference_plant()
>>> [m.ideal_cycle_s["p"] for m in plant.site.areas[0].lines[0].machines]
[60.0, 66.0, 54.0, 72.0, 60.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from andon.model.plant import Plant

__all__ = ["REFERENCE_CYCLE_MIN", "reference_plant", "serial_plant"]

REFERENCE_CYCLE_MIN = (1.0, 1.1, 0.9, 1.2, 1.0)
"""The reference line's mean cycle times, minutes (issue 5)."""


def serial_plant(
    cycle_s: Sequence[float],
    buffers: Sequence[int],
    *,
    cycle_dist: str = "exponential",
    cycle_cv: float = 1.0,
    mtbf_h: Sequence[float | None] | None = None,
    mttr_min: Sequence[float | None] | None = None,
    ttr_dist: str = "exponential",
    ttr_cv: float = 1.0,
    failure_basis: Literal["operating", "calendar"] = "calendar",
    repair_crew: int | None = None,
    line_id: str = "L",
) -> Plant:
    """A one-line plant, machines ``M1..Mn`` in series, always scheduled, no scrap, no wear.

    ``mtbf_h[i] = None`` leaves machine ``i`` without failures."""
    n = len(cycle_s)
    if len(buffers) != n - 1:
        raise ValueError("n machines need n - 1 buffers")
    mtbf = list(mtbf_h) if mtbf_h is not None else [None] * n
    mttr = list(mttr_min) if mttr_min is not None else [None] * n
    machines: list[dict[str, Any]] = []
    for i, c in enumerate(cycle_s):
        sim: dict[str, Any] = {
            "cycle_dist": cycle_dist,
            "cycle_cv": cycle_cv,
            "speed_loss": 0.0,
            "failure_basis": failure_basis,
            "quality": {"scrap_base": 0.0, "scrap_wear_gain": 0.0},
        }
        if mtbf[i] is not None and mttr[i] is not None:
            sim["failure_modes"] = [
                {
                    "code": "FAIL",
                    "mtbf_h": mtbf[i],
                    "mttr_min": mttr[i],
                    "ttr_dist": ttr_dist,
                    "ttr_cv": ttr_cv,
                }
            ]
        machines.append(
            {"id": f"M{i + 1}", "type": "generic", "ideal_cycle_s": {"p": float(c)}, "sim": sim}
        )
    line: dict[str, Any] = {
        "id": line_id,
        "products": [{"id": "p", "lot_size": 1}],
        "machines": machines,
        "buffers": [
            {"id": f"B{i + 1}", "capacity": b, "from": [f"M{i + 1}"], "to": [f"M{i + 2}"]}
            for i, b in enumerate(buffers)
        ],
    }
    if repair_crew is not None:
        line["repair_crew"] = repair_crew
    doc = {
        "tenant": "twin",
        "site": {
            "id": "S",
            "calendar": {"shifts": [{"name": "all", "start": "00:00", "end": "00:00"}]},
            "areas": [{"id": "A", "lines": [line]}],
        },
    }
    return Plant.model_validate(doc)


def reference_plant(buffer: int = 5) -> Plant:
    """The reference line of issue 5: exponential cycle times with means 1.0, 1.1, 0.9, 1.2
    and 1.0 min, buffers of 5, time to failure exponential with mean 100 min and repair
    exponential with mean 5 min, both in calendar time."""
    n = len(REFERENCE_CYCLE_MIN)
    return serial_plant(
        [c * 60.0 for c in REFERENCE_CYCLE_MIN],
        [buffer] * (n - 1),
        mtbf_h=[100.0 / 60.0] * n,
        mttr_min=[5.0] * n,
        failure_basis="calendar",
    )
