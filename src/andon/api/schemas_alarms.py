"""Bodies of the alarm console endpoints (``routes_alarms``): alarms and alerts with their
history, shelving, and an engineer's alarm limits. Request models forbid unknown fields."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from andon.api.schemas_ops import AlertOut

__all__ = ["AlarmLimitOut", "AlarmLimitsIn", "AlarmsOut", "ShelveIn"]

MAX_SHELVE_S = 7 * 24 * 3600


class AlarmsOut(BaseModel):
    alarms: list[AlertOut] = Field(description="newest first")
    shelved: int = Field(description="open alerts and alarms shelved now, whatever the filter")
    truncated: bool = False


class ShelveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    duration_s: Annotated[
        float, Field(gt=0, le=MAX_SHELVE_S, description="hidden from the board this long")
    ]
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class AlarmLimitsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    signal: Annotated[str, Field(min_length=1, max_length=400, description="a signal path")]
    alarms: dict[str, Any] | None = Field(
        description="the signal's limits as in the plant model's `alarms:` block "
        "(high_high, high, low, low_low, rate_per_min, rate_window_s, deadband, on_delay_s, "
        "off_delay_s, enabled); null removes the override so the model's apply again"
    )


class AlarmLimitOut(BaseModel):
    signal: str
    unit: str
    machine: str | None
    source: str = Field(description="model | engineer")
    alarms: dict[str, Any]
    model: dict[str, Any] | None = Field(description="the plant model's limits, if any")
    updated_by: str | None = None
    updated_at: int | None = None
