"""The plant model: site › area › line › machine › signal (ISA-95 equipment hierarchy).

Every model forbids unknown keys, so a typo in a plant file is an error, never ignored.
Behaviour parameters used by the virtual factory and the twin (cycle-time variation,
failure modes, wear, quality, power) live in each machine's ``sim`` block; they are what the
twin's calibration estimates from history for a real plant.
"""

from __future__ import annotations

import re
from datetime import time
from enum import StrEnum
from itertools import pairwise
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from andon.model.signals import SIGNAL_TYPES

__all__ = [
    "Area",
    "Buffer",
    "Calendar",
    "Degradation",
    "Distribution",
    "ElectricityTariff",
    "FailureMode",
    "Line",
    "Machine",
    "MachineSim",
    "MachineType",
    "Maintenance",
    "Meter",
    "Plant",
    "PowerModel",
    "Product",
    "QualityModel",
    "Shift",
    "Signal",
    "SignalAlarms",
    "Site",
    "TouWindow",
    "WearModel",
]

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
Id = Annotated[str, Field(min_length=1, max_length=64, pattern=_ID.pattern)]
Positive = Annotated[float, Field(gt=0)]
NonNeg = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
LangTag = Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{1,8})*$", max_length=35)]
I18nNames = dict[LangTag, Annotated[str, Field(min_length=1, max_length=200)]]
"""Names in other languages by BCP 47 tag, e.g. ``{zh-TW: 加工中心 1}``: what the dashboard
shows in that language instead of the English name (which stays the name in every other)."""
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ALL_DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MachineType(StrEnum):
    MACHINING_CENTRE = "machining_centre"
    SURFACE_GRINDER = "surface_grinder"
    FSW_CELL = "fsw_cell"
    ROBOT_CELL = "robot_cell"
    INSPECTION_PACKING = "inspection_packing"
    PROCESS_CHAMBER = "process_chamber"
    GENERIC = "generic"


Finite = Annotated[float, Field(allow_inf_nan=False)]


class SignalAlarms(_Model):
    """Alarm limits of one signal, in the spirit of ISA-18.2 (``andon.floor.alarms``).

    ``high_high``/``high``/``low``/``low_low`` are absolute limits in the signal's unit (each
    optional; double limits raise critical alarms, single ones warnings); ``rate_per_min``
    is the largest change per minute either way, measured over ``rate_window_s``. A limit
    alarm clears only ``deadband`` back inside its limit; it is raised once its condition
    held for ``on_delay_s`` and cleared once it stayed clear for ``off_delay_s``."""

    high_high: Finite | None = None
    high: Finite | None = None
    low: Finite | None = None
    low_low: Finite | None = None
    rate_per_min: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    rate_window_s: Annotated[float, Field(gt=0, le=3600)] = 60.0
    deadband: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    on_delay_s: Annotated[float, Field(ge=0, le=86400)] = 0.0
    off_delay_s: Annotated[float, Field(ge=0, le=86400)] = 0.0
    enabled: bool = True
    """False switches the signal's alarms off (an engineer's override of the model)."""

    @model_validator(mode="after")
    def _ordered(self) -> SignalAlarms:
        limits = [self.high_high, self.high, self.low, self.low_low]
        if all(x is None for x in limits) and self.rate_per_min is None:
            raise ValueError("give at least one of high_high, high, low, low_low, rate_per_min")
        order = [
            (n, v)
            for n, v in (
                ("low_low", self.low_low),
                ("low", self.low),
                ("high", self.high),
                ("high_high", self.high_high),
            )
            if v is not None
        ]
        for (n1, v1), (n2, v2) in pairwise(order):
            if v1 > v2 or (v1 == v2 and {n1, n2} & {"low", "high"} == {"low", "high"}):
                raise ValueError(f"{n1} ({v1:g}) must be below {n2} ({v2:g})")
        lo = self.low if self.low is not None else self.low_low
        hi = self.high if self.high is not None else self.high_high
        if lo is not None and hi is not None and self.deadband >= hi - lo:
            raise ValueError(f"deadband {self.deadband:g} must be smaller than {hi - lo:g}")
        return self


class Signal(_Model):
    id: Id
    type: str
    unit: str | None = None
    sample_period_s: Positive = 1.0
    nominal: float | None = None
    """Level while running (the sim's scale for this signal); defaults per type."""
    description: str = ""
    name: str = ""
    """What people call the signal (default: the dashboard's name for its id, or the id)."""
    name_i18n: I18nNames = Field(default_factory=dict)
    alarms: SignalAlarms | None = None
    """Alarm limits; an engineer may override them through the API (``/alarms/limits``)."""

    @property
    def kind(self) -> str:
        """``numeric`` or ``text`` (its type's kind, decision 0202)."""
        return SIGNAL_TYPES[self.type].kind

    @field_validator("type")
    @classmethod
    def _known_type(cls, v: str) -> str:
        if v not in SIGNAL_TYPES:
            known = ", ".join(sorted(SIGNAL_TYPES))
            raise ValueError(f"unknown signal type {v!r}; known types: {known}")
        return v

    @model_validator(mode="after")
    def _unit_fits(self) -> Signal:
        units = SIGNAL_TYPES[self.type].units
        if self.unit is None:
            object.__setattr__(self, "unit", units[0])
        elif self.unit not in units:
            raise ValueError(
                f"unit {self.unit!r} does not fit signal type {self.type!r}; "
                f"use one of: {', '.join(units)}"
            )
        return self


Distribution = Literal["deterministic", "exponential", "lognormal", "gamma", "empirical"]
"""Kinds of random durations the line model draws (cycle and repair times)."""


class Degradation(_Model):
    """A failure mode that announces itself: a hidden health index falls from 1 in wear time
    (operating seconds × the product's regime factor) and the failure happens when it
    reaches ``threshold`` (``andon.model.degradation`` has the law; decision 0507)."""

    kind: Literal["gamma", "exponential"]
    """``gamma``: a gamma process (monotone, random increments); ``exponential``: a path
    that falls slowly, then faster."""
    life_h: Positive
    """Mean operating hours (at regime factor 1) from the onset to the threshold."""
    onset_h: NonNeg = 0.0
    """Mean operating hours of a life before the health starts to fall."""
    onset_cv: NonNeg = 0.5
    """Coefficient of variation of the onset between lives (lognormal)."""
    unit_cv: NonNeg = 0.2
    """Coefficient of variation of the time from onset to threshold between lives."""
    path_cv: Positive = 0.25
    """``gamma``: coefficient of variation of the damage reached at ``life_h``."""
    sharpness: Positive = 3.0
    """``exponential``: how much faster the end of the fall is than its start."""
    threshold: Annotated[float, Field(ge=0, lt=1)] = 0.2
    """The failure happens when the health reaches this."""
    warnings: tuple[Annotated[float, Field(gt=0, lt=1)], ...] = (0.8, 0.5)
    """Health levels whose crossing times the ground truth records."""
    regimes: dict[Id, Positive] = Field(default_factory=dict)
    """Wear-rate factor per product made (a heavier cut or a faster speed wears faster);
    products not named run at 1."""
    pm_resets: bool = True
    """Whether a planned-maintenance window of the machine restores the health to 1."""

    @model_validator(mode="after")
    def _warnings_above_threshold(self) -> Degradation:
        for w in self.warnings:
            if w <= self.threshold:
                raise ValueError(f"warning level {w} is not above the threshold {self.threshold}")
        return self


class FailureMode(_Model):
    """An unplanned stop: exponential time to failure counted in operating time (or calendar
    time, see ``MachineSim.failure_basis``), lognormal time to repair by default. With a
    ``degradation`` block the mode is *degrading*: it fails when its health index reaches
    the threshold instead (its ``mtbf_h`` is then the nominal ``onset_h + life_h``, not
    given); without one it is *memoryless*."""

    code: Id
    description: str = ""
    description_i18n: I18nNames = Field(default_factory=dict)
    """The description in other languages (the reason's label where an operator picks it)."""
    mtbf_h: Positive
    """Mean operating hours between failures of this mode."""
    degradation: Degradation | None = None
    mttr_min: Positive
    """Mean minutes to repair."""
    ttr_cv: NonNeg = 0.5
    """Coefficient of variation of the repair time (0 = deterministic)."""
    ttr_dist: Distribution = "lognormal"
    """Repair-time distribution; ``exponential`` ignores ``ttr_cv``, ``empirical`` draws
    ``ttr_empirical`` ratios to ``mttr_min``."""
    ttr_empirical: tuple[Positive, ...] = ()
    reported: bool = True
    """Whether the machine reports this mode's code. ``false``: its stops reach the store
    without a reason code (an old controller with no alarm for it), so an operator has to
    enter the reason; the ground truth still names the mode."""

    @model_validator(mode="before")
    @classmethod
    def _degrading_mtbf(cls, data: object) -> object:
        deg = data.get("degradation") if isinstance(data, dict) else None
        if isinstance(data, dict) and isinstance(deg, Degradation | dict):
            d = deg.model_dump() if isinstance(deg, Degradation) else deg
            life, onset = d.get("life_h"), d.get("onset_h", 0.0)
            if not (isinstance(life, int | float) and isinstance(onset, int | float)):
                return data  # the degradation block's own errors say what is wrong
            nominal = float(onset) + float(life)
            given = data.get("mtbf_h")
            # a dumped plant (the API, the twin) carries the nominal value back: accept it
            if given is not None and given != nominal:
                raise ValueError(
                    "a degrading mode fails when its health reaches the threshold; "
                    "leave mtbf_h out (it is onset_h + life_h)"
                )
            data = {**data, "mtbf_h": nominal}
        return data

    @property
    def kind(self) -> str:
        """``degrading`` or ``memoryless``."""
        return "memoryless" if self.degradation is None else "degrading"

    @model_validator(mode="after")
    def _empirical_has_data(self) -> FailureMode:
        if self.ttr_dist == "empirical" and not self.ttr_empirical:
            raise ValueError("ttr_dist 'empirical' needs ttr_empirical values")
        return self


class WearModel(_Model):
    """A consumable (tool or grinding wheel) that wears per part and is replaced or dressed."""

    kind: Literal["tool", "wheel"] = "tool"
    life_parts: Annotated[int, Field(gt=0)]
    """Parts after which the tool or wheel is replaced (wear = 100 %)."""
    change_min: Positive = 5.0
    """Planned stop to replace it."""
    dress_every_parts: Annotated[int, Field(gt=0)] | None = None
    """Wheels only: dress after this many parts."""
    dress_min: Positive = 2.0
    dress_restore: Fraction = 0.3
    """Share of the surface condition a dressing restores (roughness/quality effect)."""
    power_gain: NonNeg = 0.25
    """Running power and spindle load rise by this share at full wear."""
    vibration_gain: NonNeg = 1.5
    """Vibration rises by this share at full wear."""


class QualityModel(_Model):
    """Scrap probability per part: ``scrap_base + scrap_wear_gain * wear**2``."""

    scrap_base: Fraction = 0.005
    scrap_wear_gain: Fraction = 0.05
    rework: Fraction = 0.0
    """Share of bad parts reworked on the same machine (processed again) instead of
    scrapped."""


class PowerModel(_Model):
    """Electrical power draw by state, kW."""

    offline_kw: NonNeg = 0.2
    idle_kw: NonNeg = 2.0
    running_kw: NonNeg = 10.0
    down_kw: NonNeg = 1.0


class MachineSim(_Model):
    cycle_cv: NonNeg = 0.05
    """Coefficient of variation of the cycle time (lognormal and gamma)."""
    cycle_dist: Distribution = "lognormal"
    """Cycle-time distribution around the mean; ``empirical`` draws ``cycle_empirical``."""
    cycle_empirical: tuple[Positive, ...] = ()
    """Observed cycle times as ratios to their mean (the empirical distribution)."""
    failure_basis: Literal["operating", "calendar"] = "operating"
    """Whether times to failure count operating time (only while a cycle runs) or calendar
    time (every instant the machine is not under repair); see decision 0002."""
    speed_loss: Annotated[float, Field(ge=0, le=2)] = 0.03
    """Mean cycle time = ideal × (1 + speed_loss)."""
    changeover_min: NonNeg = 0.0
    """Planned stop when the product changes."""
    failure_modes: tuple[FailureMode, ...] = ()
    wear: WearModel | None = None
    quality: QualityModel = QualityModel()
    power: PowerModel = PowerModel()

    @model_validator(mode="after")
    def _empirical_has_data(self) -> MachineSim:
        if self.cycle_dist == "empirical" and not self.cycle_empirical:
            raise ValueError("cycle_dist 'empirical' needs cycle_empirical values")
        return self

    @property
    def degrading(self) -> bool:
        """Whether any failure mode has a degradation process."""
        return any(fm.degradation is not None for fm in self.failure_modes)


class Machine(_Model):
    id: Id
    name: str = ""
    name_i18n: I18nNames = Field(default_factory=dict)
    type: MachineType
    ideal_cycle_s: dict[Id, Positive]
    """Ideal cycle time per product, seconds per part."""
    signals: tuple[Signal, ...] = ()
    sim: MachineSim = MachineSim()


class Buffer(_Model):
    """A finite buffer between machines. ``from_`` machines put parts in, ``to`` take them."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: Id
    capacity: Annotated[int, Field(ge=1)]
    from_: tuple[Id, ...] = Field(alias="from", min_length=1)
    to: tuple[Id, ...] = Field(min_length=1)
    initial: Annotated[int, Field(ge=0)] = 0


class Product(_Model):
    id: Id
    lot_size: Annotated[int, Field(gt=0)] = 50


class Line(_Model):
    id: Id
    name: str = ""
    name_i18n: I18nNames = Field(default_factory=dict)
    products: tuple[Product, ...] = Field(min_length=1)
    """Production plan: lots in this order, repeated."""
    machines: tuple[Machine, ...] = Field(min_length=1)
    buffers: tuple[Buffer, ...] = ()
    repair_crew: Annotated[int, Field(ge=1)] | None = None
    """Repairers shared by the line's machines (first come, first served); ``None`` =
    every failed machine is repaired at once."""


class Shift(_Model):
    name: str
    start: time
    end: time
    """May be earlier than start: the shift then ends the next day."""
    days: tuple[Day, ...] = ALL_DAYS


class Maintenance(_Model):
    """A weekly planned-maintenance window for some machines."""

    machines: tuple[Id, ...] = Field(min_length=1)
    day: Day
    start: time
    duration_min: Positive


class Calendar(_Model):
    """Weekly shift pattern in the site's local time. Outside shifts machines are offline
    (not scheduled); breaks and maintenance windows are planned stops."""

    shifts: tuple[Shift, ...] = Field(min_length=1)
    breaks: tuple[Shift, ...] = ()
    maintenance: tuple[Maintenance, ...] = ()


class EnvironmentSim(_Model):
    disturbances_per_day: NonNeg = 2.0
    """Mean number of disturbances (door left open, HVAC fault) per day."""
    disturbance_min: Positive = 20.0


class Area(_Model):
    id: Id
    name: str = ""
    name_i18n: I18nNames = Field(default_factory=dict)
    lines: tuple[Line, ...] = ()
    sensors: tuple[Signal, ...] = ()
    """Environment sensors of the area (cleanroom temperature, humidity, particles)."""
    environment: EnvironmentSim = EnvironmentSim()


class Meter(_Model):
    """An energy meter measuring a set of machines (``covers``; empty = the whole site)
    plus a constant base load (lighting, compressors, HVAC)."""

    id: Id
    covers: tuple[Id, ...] = ()
    base_load_kw: NonNeg = 0.0
    signals: tuple[Signal, ...] = Field(min_length=1)
    rollover_kwh: Positive | None = None
    """Energy register wraps to zero at this value (like a real meter's display)."""
    initial_kwh: NonNeg = 0.0
    """Register reading at the start of a simulation."""


class TouWindow(_Model):
    """A time-of-use price window in the site's local time (``end <= start``: past midnight)."""

    name: str = Field(min_length=1)
    start: time
    end: time
    price: NonNeg
    """Per kWh, in the tariff's currency."""
    days: tuple[Day, ...] = ALL_DAYS


class ElectricityTariff(_Model):
    """The site's electricity tariff: ``base_price`` per kWh outside every window (named
    ``base_name``), each window's price inside it (``andon.kpi.energy.Tariff``)."""

    currency: str = Field("TWD", min_length=3, max_length=3)
    base_price: NonNeg
    base_name: str = "off_peak"
    periods: tuple[TouWindow, ...] = ()

    @model_validator(mode="after")
    def _one_price_per_name(self) -> ElectricityTariff:
        price = {self.base_name: self.base_price}
        for p in self.periods:
            if price.setdefault(p.name, p.price) != p.price:
                raise ValueError(f"tariff window {p.name!r} has two prices; give each its own name")
        return self


class Site(_Model):
    id: Id
    name: str = ""
    timezone: str = "UTC"
    calendar: Calendar
    areas: tuple[Area, ...] = Field(min_length=1)
    meters: tuple[Meter, ...] = ()
    tariff: ElectricityTariff | None = None
    """Electricity tariff the energy page prices the meters' (or machines') energy with."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {v!r} (use an IANA name such as 'Asia/Taipei')"
            ) from exc
        return v


class Plant(_Model):
    tenant: Id = "demo"
    site: Site

    # --- navigation helpers -------------------------------------------------------------
    def lines(self) -> list[tuple[Area, Line]]:
        return [(a, ln) for a in self.site.areas for ln in a.lines]

    def machines(self) -> list[tuple[Area, Line, Machine]]:
        return [(a, ln, m) for a, ln in self.lines() for m in ln.machines]

    def machine_path(self, area: Area, line: Line, machine: Machine) -> str:
        return f"{self.site.id}/{area.id}/{line.id}/{machine.id}"

    def signal_paths(self) -> list[str]:
        """Every signal of the plant as ``site/area/line/machine/signal`` (machines),
        ``site/area/signal`` (area sensors) and ``site/meter/signal`` (meters)."""
        out = []
        for a, ln, m in self.machines():
            base = self.machine_path(a, ln, m)
            out += [f"{base}/{s.id}" for s in m.signals]
        for a in self.site.areas:
            out += [f"{self.site.id}/{a.id}/{s.id}" for s in a.sensors]
        for mt in self.site.meters:
            out += [f"{self.site.id}/{mt.id}/{s.id}" for s in mt.signals]
        return out
