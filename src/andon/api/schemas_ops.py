"""Bodies of the shop-floor endpoints: the andon board, stops and their reasons, the downtime
Pareto and alerts. Times are integer µs since the epoch; machines and lines are model paths.
Request models forbid unknown fields and carry no actor: that is the authenticated caller."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AlertOut",
    "BoardLineOut",
    "BoardMachineOut",
    "BoardOut",
    "DowntimeOut",
    "DowntimeRowOut",
    "ReasonCategoryOut",
    "ReasonIn",
    "ReasonItemOut",
    "ReasonTreeOut",
    "StopOut",
    "StopsOut",
]


class AlertOut(BaseModel):
    id: str
    machine: str | None
    kind: str = Field(
        description="down | offline | unexplained_stop; signal alarms: high_high | high | "
        "low | low_low | rate"
    )
    severity: str = Field(description="critical | warning")
    message: str
    opened_at: int
    closed_at: int | None
    acked_by: str | None
    acked_at: int | None
    signal: str | None = Field(None, description="the signal of a signal alarm")
    value: float | None = Field(None, description="a signal alarm's value when raised")
    threshold: float | None = Field(None, description="the limit it was compared with")
    shelved_by: str | None = None
    shelved_at: int | None = None
    shelved_until: int | None = Field(
        None, description="hidden from the board until then (counted in shelved_alerts)"
    )
    shelve_reason: str | None = None


class BoardMachineOut(BaseModel):
    machine: str
    name: str
    name_i18n: dict[str, str] = Field(
        default_factory=dict, description="the name in other languages (plant model)"
    )
    area: str
    line: str
    state: str = Field(
        description="a state label of /states, 'offline' (silent during its shift), "
        "'not_scheduled' (outside its shift calendar and silent or offline) or 'unknown'"
    )
    since: int | None
    oee: float | None = Field(description="today (site-local day) until the KPI step")
    good: int
    scrap: int
    alerts: int = Field(description="open alerts of this machine")


class BoardLineOut(BaseModel):
    line: str
    name: str
    name_i18n: dict[str, str] = Field(
        default_factory=dict, description="the name in other languages (plant model)"
    )
    throughput_per_h: float | None
    bottleneck: str | None = Field(description="active-period bottleneck of the last hour")


class BoardOut(BaseModel):
    now: int
    kpi_start: int = Field(
        0, description="the start of that range: the site's production day (shift calendar)"
    )
    kpi_end: int = Field(description="the end of the range the OEE and part counts cover")
    clock_rate: float = Field(
        1.0, description="seconds of `now` per wall second (a demo's plant clock runs faster)"
    )
    machines: list[BoardMachineOut]
    lines: list[BoardLineOut]
    alerts: list[AlertOut] = Field(description="open alerts of the site, less the shelved")
    shelved_alerts: int = Field(0, description="open alerts shelved now (not in `alerts`)")


class ReasonItemOut(BaseModel):
    id: str
    label: str
    label_i18n: dict[str, str] = Field(
        default_factory=dict, description="the label in other languages (plant model)"
    )
    machines: list[str] | None = Field(
        None,
        description="the machines this reason may be entered on (a machine's own failure "
        "modes); absent: every machine",
    )


class ReasonCategoryOut(BaseModel):
    id: str
    label: str
    reasons: list[ReasonItemOut]


class ReasonTreeOut(BaseModel):
    categories: list[ReasonCategoryOut]


class StopOut(BaseModel):
    machine: str
    start: int
    end: int
    state: str
    code: str | None = Field(description="the reason code the machine reported")
    category: str | None
    reason: str | None
    entered_by: str | None = Field(description="who entered the current reason")
    entered_by_name: str | None = Field(
        None, description="their email (users) or key name (API keys), when still known"
    )
    entered_at: int | None = Field(description="when the current (latest) reason was entered")
    acked_at: int | None = Field(description="the first entry for this stop (MTTA)")
    note: str | None = None


class StopsOut(BaseModel):
    stops: list[StopOut]
    truncated: bool = False


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    machine: Annotated[str, Field(min_length=1, max_length=300)]
    start: Annotated[int, Field(ge=0, lt=2**62, description="the stop's start, µs")]
    category: Annotated[str, Field(min_length=1, max_length=100)]
    reason: Annotated[str, Field(min_length=1, max_length=100)]
    note: Annotated[str | None, Field(max_length=1000)] = None


class DowntimeRowOut(BaseModel):
    category: str
    reason: str
    seconds: float
    count: int


class DowntimeOut(BaseModel):
    rows: list[DowntimeRowOut]
    unexplained_s: float
    downtime_s: float
