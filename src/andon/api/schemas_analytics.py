"""Bodies of the analytics and twin endpoints (``routes_analytics``): the dashboard's line,
machine and energy pages and the twin's scenario jobs.

Response models mirror ``/tmp/andon-contract.md`` field for field (a few fields are added,
never renamed); request models forbid unknown fields, so a typo in a scenario is a 422, not
a change silently ignored."""

from __future__ import annotations

from datetime import time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from andon.model.plant import ALL_DAYS, Day

__all__ = [
    "BottleneckBucket",
    "BottlenecksOut",
    "BufferFlow",
    "EnergyBaseline",
    "EnergyMachine",
    "EnergyMonth",
    "EnergyOut",
    "GridOut",
    "JobOut",
    "JobResult",
    "LineFlowOut",
    "LineKpiOut",
    "LineMachineKpi",
    "LineTrendPoint",
    "LossStep",
    "MachineFlow",
    "MachineKpiOut",
    "MoneyOut",
    "OeeOut",
    "ScenarioBuffer",
    "ScenarioChanges",
    "ScenarioMachine",
    "ScenarioOut",
    "ShiftIn",
    "TrendPoint",
    "TwinJobIn",
    "TwinRunOut",
]

Ratio = float | None
PathId = Annotated[str, Field(min_length=1, max_length=300)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- line flow ----------------------------------------------------------------------------


class MachineFlow(BaseModel):
    machine: str
    name: str
    kind: str
    """The machine type of the plant model (``machining_centre``, ``surface_grinder`` ...)."""


class BufferFlow(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    buffer: str
    """Buffer path ``site/area/line/buffer``."""
    capacity: int
    level: int | None
    """Current fill level (``andon.kpi.buffers``); ``null``: not known (no moment in the
    last day at which the buffer was empty or full)."""
    level_source: str | None = None
    """``empty`` / ``full``: counted from the last moment the buffer was empty (its consumer
    starved) or full (its producer blocked); ``null`` with no level."""
    level_at: int | None = None
    """The moment the level is for (the newest state data, µs)."""
    from_: list[str] = Field(alias="from", serialization_alias="from")
    to: list[str]


class LineFlowOut(BaseModel):
    line: str
    name: str
    machines: list[MachineFlow]
    buffers: list[BufferFlow]


# ---- line and machine KPIs ----------------------------------------------------------------


class OeeOut(BaseModel):
    availability: Ratio
    performance: Ratio
    quality: Ratio
    oee: Ratio


class LossStep(BaseModel):
    loss: str
    """``planned_busy`` first, then the losses in waterfall order, then
    ``fully_productive``; the losses and ``fully_productive`` add up to ``planned_busy``."""
    seconds: float


class LineMachineKpi(BaseModel):
    machine: str
    oee: Ratio
    availability: Ratio
    performance: Ratio
    quality: Ratio
    good: int
    scrap: int


class LineTrendPoint(BaseModel):
    """The line over one bucket ``[start, end)``: its OEE (the line's machines together, as
    ``oee``) and the good output of its last stations (as ``good_out``/``throughput_per_h``)."""

    start: int
    end: int
    oee: Ratio
    availability: Ratio
    performance: Ratio
    quality: Ratio
    good_out: int
    planned_production_s: float
    per_hour: float | None
    """``good_out`` per planned production hour of the bucket; null when none was planned."""


class LineKpiOut(BaseModel):
    line: str
    start: int
    end: int
    oee: OeeOut
    """The line's machines together (ratios of summed times: planned-busy-time weighted)."""
    oee_bottleneck: Ratio
    """Bottleneck-based line OEE (decision 0101)."""
    bottleneck: list[str]
    """The bottleneck stage's machines by ideal load (decision 0101)."""
    waterfall: list[LossStep]
    machines: list[LineMachineKpi]
    good_out: int
    """Good parts of the line's last stations (those that feed no buffer)."""
    planned_production_s: float
    """The calendar's production time of the last stations in the range, up to now."""
    throughput_per_h: float | None
    """``good_out`` per planned production hour; null when nothing was planned."""
    trend: list[LineTrendPoint] = Field(default_factory=list)
    """One point per ``bucket_s`` bucket of the range (empty without ``bucket_s``)."""


class BottleneckBucket(BaseModel):
    start: int
    end: int
    bottleneck: str | None
    shares: dict[str, float]
    """Share of the bucket each machine is the sole momentary bottleneck."""
    shifting: float = 0.0
    """Share of the bucket the bottleneck is shifting between two machines (each overlap once):
    ``sum(shares) + shifting`` is the part of the bucket with a bottleneck, at most 1."""


class BottlenecksOut(BaseModel):
    line: str
    method: Literal["active_period_momentary"] = "active_period_momentary"
    buckets: list[BottleneckBucket]


class TrendPoint(BaseModel):
    start: int
    oee: Ratio
    availability: Ratio
    performance: Ratio
    quality: Ratio


class SignalInfo(BaseModel):
    signal: str
    """The signal's path."""
    name: str
    """Its name in the plant model ("" when the model gives none)."""
    name_i18n: dict[str, str] = Field(default_factory=dict)
    unit: str | None
    """The unit of its values (°C, kW, rpm, mm/s ...)."""


class MachineKpiOut(BaseModel):
    machine: str
    start: int
    end: int
    trend: list[TrendPoint]
    waterfall: list[LossStep]
    """The machine's loss waterfall over the whole range (as the line's in ``/lines/kpi``)."""
    signals: list[SignalInfo]
    """The machine's signals, in plant-model order."""
    mtbf_s: float | None
    mttr_s: float | None
    mtta_s: float | None
    """``null`` without acknowledged stops in the range."""
    failures: int
    kwh: float | None
    """``null``: the machine has no energy or power signal."""
    kwh_per_part: float | None
    good: int


# ---- energy -------------------------------------------------------------------------------


class EnergyMachine(BaseModel):
    machine: str
    kwh: float
    by_state: dict[str, float]
    parts: int
    """Good parts."""
    kwh_per_part: float | None


class EnergyMonth(BaseModel):
    month: str
    """``YYYY-MM`` in the site's time zone."""
    kwh: float
    tco2e: float | None


class EnergyBaseline(BaseModel):
    expected_kwh: float
    actual_kwh: float
    r2: float
    periods: int
    """Days of the baseline window (the 28 days before ``start``) with energy data."""


class GridOut(BaseModel):
    country: str
    factor_kg_per_kwh: float
    year: int
    source: str


class EnergyCost(BaseModel):
    period: str
    """Tariff window name (``peak``, ``off_peak``, ...)."""
    kwh: float
    price: float
    cost: float


class EnergyTotal(BaseModel):
    basis: Literal["meters", "machines"]
    """What ``kwh`` counts: the site meters (base load included) or the machines' meters."""
    kwh: float
    machines_kwh: float
    """The machines' own meters (no base load)."""
    site_kwh: float | None
    """The site meters, base load included; null when the site has none."""
    tco2e: float | None
    """Of ``kwh``; the months add up to it."""
    good_out: int
    """Good parts leaving the lines' last stations."""
    kwh_per_part: float | None
    """``kwh`` per ``good_out``."""
    cost: float | None
    """Of ``kwh`` at the site's tariff; null when the plant model has no tariff."""
    currency: str | None
    cost_by_period: list[EnergyCost]


class EnergyOut(BaseModel):
    start: int
    end: int
    by_machine: list[EnergyMachine]
    total: EnergyTotal
    peak_kw: float
    peak_at: int | None
    months: list[EnergyMonth]
    baseline: EnergyBaseline | None
    grid: GridOut | None
    """``null`` when no grid factor is known for the site's time zone."""


# ---- twin -----------------------------------------------------------------------------------


class ScenarioBuffer(BaseModel):
    buffer: str
    capacity: int


class ScenarioMachine(BaseModel):
    machine: str
    cycle_time_s: float
    """Configured ideal cycle time, averaged over the line's products by lot size."""
    mtbf_h: float | None
    """Over all failure modes (1 / Σ 1/MTBF); ``null`` without failure modes."""
    mttr_h: float | None


class ShiftIn(_In):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    start: time
    end: time
    days: list[Day] = Field(default_factory=lambda: list(ALL_DAYS), min_length=1, max_length=7)


class LineRateOut(BaseModel):
    start: int
    end: int
    good_out: int
    """Good parts of the line's last stations."""
    planned_production_s: float
    throughput_per_h: float | None
    """``good_out`` per planned production hour (the board's and line page's rate)."""


class ScenarioOut(BaseModel):
    line: str
    buffers: list[ScenarioBuffer]
    machines: list[ScenarioMachine]
    crew: int | None
    shifts: list[ShiftIn]
    source: Literal["config"] = "config"
    measured: LineRateOut
    """The line's rate today (production day, up to the board's ``kpi_end``), as the board."""


Capacity = Annotated[int, Field(ge=1, le=100_000)]
Seconds = Annotated[float, Field(gt=0, le=86_400)]
Hours = Annotated[float, Field(gt=0, le=100_000)]


class ScenarioChanges(_In):
    buffers: dict[PathId, Capacity] = Field(default_factory=dict, max_length=200)
    cycle_time_s: dict[PathId, Seconds] = Field(default_factory=dict, max_length=200)
    mtbf_h: dict[PathId, Hours] = Field(default_factory=dict, max_length=200)
    mttr_h: dict[PathId, Hours] = Field(default_factory=dict, max_length=200)
    crew: Annotated[int, Field(ge=1, le=1000)] | None = None
    shifts: Annotated[list[ShiftIn], Field(min_length=1, max_length=20)] | None = None


class TwinJobIn(_In):
    line: PathId
    hours: Annotated[float, Field(ge=1)]
    """Simulated hours per replication, from 1 (capped by the service's settings: 422
    above)."""
    replications: Annotated[int, Field(ge=2)]
    changes: ScenarioChanges = Field(default_factory=ScenarioChanges)


class TwinRunOut(BaseModel):
    throughput_per_h: float
    """Good parts leaving the line per simulated hour (nights included)."""
    ci: list[float]
    """95 % confidence interval ``[lo, hi]`` of the mean over replications."""
    bottleneck: str | None
    planned_h: float | None = None
    """The calendar's planned production hours of the line's last stations in the run."""
    per_planned_h: float | None = None
    """Per planned production hour: the board's and line page's definition of the rate."""


class MoneyOut(BaseModel):
    per_day: float
    """Scenario minus today, per calendar day."""
    ci: list[float]
    """95 % interval of ``per_day`` (paired differences, common random numbers)."""
    currency: str
    value_per_part: float


class JobResult(BaseModel):
    today: TwinRunOut
    scenario: TwinRunOut
    difference: TwinRunOut
    """Scenario minus today, paired over replications."""
    money: MoneyOut
    source: Literal["history", "config"]
    """Where the twin's parameters come from: calibrated from the line's stored history, or
    the plant model's configuration (too little history)."""
    calibrated_from: list[int] | None
    replications: int
    hours: float


class JobOut(BaseModel):
    id: str
    line: str
    status: Literal["queued", "running", "done", "failed"]
    progress: float
    created_by: str
    created_at: int
    finished_at: int | None
    error: str | None
    result: JobResult | None
