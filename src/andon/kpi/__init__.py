"""Key performance indicators over the telemetry store: OEE by ISO 22400 with the six-big-losses
waterfall, reliability (MTBF/MTTR/MTTA), downtime reasons with operator entries, energy and
carbon, and the cost of every loss.

The pure functions (``oee_table``, ``reliability``, ``downtime``, the energy functions) take
columnar batches and explicit ranges; ``andon.kpi.api`` reads them from a ``TelemetryStore``.
"""

from andon.kpi.baseline import Baseline, fit_baseline
from andon.kpi.carbon import GRID_FACTORS, GridFactor, co2e_kg, grid_factor
from andon.kpi.cost import LossPrices, loss_costs
from andon.kpi.energy import (
    Tariff,
    TouPeriod,
    counter_delta,
    cumulative_power,
    cumulative_register,
    energy_by_state,
    peak_demand,
    tariff_cost,
)
from andon.kpi.oee import LOSSES, OEE, OEETable, compute_oee, oee_table
from andon.kpi.periods import buckets
from andon.kpi.reasons import ReasonEntry, ReasonLog, ReasonTree, apply_entries, downtime
from andon.kpi.reliability import ReliabilityRow, reliability
from andon.kpi.timeline import Buckets, TimeClass, TimeModel

__all__ = [
    "GRID_FACTORS",
    "LOSSES",
    "OEE",
    "Baseline",
    "Buckets",
    "GridFactor",
    "LossPrices",
    "OEETable",
    "ReasonEntry",
    "ReasonLog",
    "ReasonTree",
    "ReliabilityRow",
    "Tariff",
    "TimeClass",
    "TimeModel",
    "TouPeriod",
    "apply_entries",
    "buckets",
    "co2e_kg",
    "compute_oee",
    "counter_delta",
    "cumulative_power",
    "cumulative_register",
    "downtime",
    "energy_by_state",
    "fit_baseline",
    "grid_factor",
    "loss_costs",
    "oee_table",
    "peak_demand",
    "reliability",
    "tariff_cost",
]
