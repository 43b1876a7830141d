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

__all__ = ["LossPrices", "LossRow", "loss_costs"]

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


@dataclass(frozen=True, slots=True)
class LossRow:
    """One loss of one machine (and bucket, product) in money: how much was lost
    (``quantity`` in ``unit``: h, parts or kWh), what it cost, and ``flag`` where the
    quantity is a data problem (a negative speed loss, not priced)."""

    machine: str
    bucket: str
    product: str
    loss: str
    quantity: float
    unit: str
    cost: float
    flag: bool
    currency: str

    def as_dict(self) -> dict[str, Any]:
        """The JSON row (``andon kpi losses``, the report's ``losses`` sheet)."""
        return {
            "machine": self.machine,
            "bucket": self.bucket,
            "product": self.product,
            "loss": self.loss,
            "quantity": self.quantity,
            "unit": self.unit,
            "cost": self.cost,
            "flag": self.flag,
            "currency": self.currency,
        }


def loss_costs(
    table: OEETable,
    prices: LossPrices,
    nonproductive_kwh: Mapping[str, float] | None = None,
) -> list[LossRow]:
    """Every loss of every row in money, largest first.

    >>> from andon.kpi.oee import TIME_COLUMNS, COUNT_COLUMNS
    >>> import numpy as np
    >>> cols = {k: np.zeros(1) for k in (*TIME_COLUMNS, *COUNT_COLUMNS)}
    >>> cols["breakdown_s"][0] = 7200.0; cols["scrap"][0] = 3
    >>> t = OEETable(("m",), ("all",), ("",), cols)
    >>> [(r.loss, r.cost) for r in loss_costs(t, LossPrices(100.0, 50.0, 4.0), {"m": 10})]
    [('breakdowns', 200.0), ('production rejects', 150.0), ('idle energy', 40.0)]
    """
    out: list[LossRow] = []
    cur = prices.currency
    c = table.columns
    for i, machine in enumerate(table.machine):
        where = (machine, table.bucket[i], table.product[i])
        for col, name in _TIME_LOSSES.items():
            hours = float(c[col][i]) / 3600.0
            flag = hours < 0
            cost = 0.0 if flag else round(hours * prices.hourly(machine), 2)
            out.append(LossRow(*where, name, round(hours, 6), "h", cost, flag, cur))
        startup = float(c["startup_scrap"][i])
        prod = float(c["scrap"][i]) - startup
        for name, n in (("start-up rejects", startup), ("production rejects", prod)):
            cost = round(n * prices.scrap(machine), 2)
            out.append(LossRow(*where, name, n, "parts", cost, False, cur))
    for machine, kwh in (nonproductive_kwh or {}).items():
        cost = round(kwh * prices.per_kwh, 2)
        out.append(
            LossRow(machine, "all", "", "idle energy", round(kwh, 6), "kWh", cost, False, cur)
        )
    out = [r for r in out if r.quantity != 0]
    out.sort(key=lambda r: -r.cost)
    return out
