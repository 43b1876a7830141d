"""The cost of losses: every loss of the waterfall, scrap and wasted energy in money, ranked.

Prices: ``per_hour`` of lost capacity (the contribution an hour of the machine's planned busy
time earns; per machine or one for all), ``per_scrap_part`` (material and work in a scrapped
part) and ``per_kwh``. Time losses are priced per hour; rejects per scrapped part (their
ideal time is not priced a second time); energy drawn while not running (idle, down, planned
stops; not off shift) per kWh. A negative speed loss (performance above 1) is a data problem:
it stays in the list, flagged, and is not priced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from andon.kpi.oee import OEETable

__all__ = ["LossPrices", "loss_costs"]

_TIME_LOSSES = {
    "breakdown_s": "breakdowns",
    "setup_s": "setup and changeover",
    "minor_stop_s": "minor stops",
    "idle_s": "starved or blocked",
    "speed_loss_s": "reduced speed",
}


@dataclass(frozen=True, slots=True)
class LossPrices:
    """Prices for the cost of losses; per-machine maps override the defaults."""

    per_hour: float
    per_scrap_part: float
    per_kwh: float
    currency: str = "TWD"
    per_hour_by_machine: Mapping[str, float] = field(default_factory=dict)
    per_scrap_part_by_machine: Mapping[str, float] = field(default_factory=dict)

    def hourly(self, machine: str) -> float:
        return self.per_hour_by_machine.get(machine, self.per_hour)

    def scrap(self, machine: str) -> float:
        return self.per_scrap_part_by_machine.get(machine, self.per_scrap_part)


def loss_costs(
    table: OEETable,
    prices: LossPrices,
    nonproductive_kwh: Mapping[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Every loss of every row in money, largest first.

    >>> from andon.kpi.oee import TIME_COLUMNS, COUNT_COLUMNS
    >>> import numpy as np
    >>> cols = {k: np.zeros(1) for k in (*TIME_COLUMNS, *COUNT_COLUMNS)}
    >>> cols["breakdown_s"][0] = 7200.0; cols["scrap"][0] = 3
    >>> t = OEETable(("m",), ("all",), ("",), cols)
    >>> [(r["loss"], r["cost"]) for r in loss_costs(t, LossPrices(100.0, 50.0, 4.0), {"m": 10})]
    [('breakdowns', 200.0), ('production rejects', 150.0), ('idle energy', 40.0)]
    """
    out: list[dict[str, Any]] = []
    c = table.columns
    for i, machine in enumerate(table.machine):
        where = {"machine": machine, "bucket": table.bucket[i], "product": table.product[i]}
        for col, name in _TIME_LOSSES.items():
            hours = float(c[col][i]) / 3600.0
            flag = hours < 0
            out.append(
                {
                    **where,
                    "loss": name,
                    "quantity": round(hours, 6),
                    "unit": "h",
                    "cost": 0.0 if flag else round(hours * prices.hourly(machine), 2),
                    "flag": flag,
                }
            )
        startup = float(c["startup_scrap"][i])
        prod = float(c["scrap"][i]) - startup
        for name, n in (("start-up rejects", startup), ("production rejects", prod)):
            out.append(
                {
                    **where,
                    "loss": name,
                    "quantity": n,
                    "unit": "parts",
                    "cost": round(n * prices.scrap(machine), 2),
                    "flag": False,
                }
            )
    for machine, kwh in (nonproductive_kwh or {}).items():
        out.append(
            {
                "machine": machine,
                "bucket": "all",
                "product": "",
                "loss": "idle energy",
                "quantity": round(kwh, 6),
                "unit": "kWh",
                "cost": round(kwh * prices.per_kwh, 2),
                "flag": False,
            }
        )
    out = [r for r in out if r["quantity"] != 0]
    out.sort(key=lambda r: -r["cost"])
    for r in out:
        r["currency"] = prices.currency
    return out
