"""Bodies of the kiosk endpoints: board devices, line targets and the kiosk board.
Times are integer µs since the epoch; lines are model paths. Request models forbid unknown
fields and carry no actor or tenant: those are the authenticated caller's."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from andon.api.schemas_ops import BoardOut

__all__ = [
    "BoardDeviceCreated",
    "BoardDeviceIn",
    "BoardDeviceOut",
    "KioskLineOut",
    "KioskOut",
    "ShiftProgressOut",
    "TargetIn",
    "TargetOut",
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BoardDeviceIn(_In):
    name: Annotated[str, Field(min_length=1, max_length=200, description="e.g. 'Hall 2 TV'")]
    ttl_days: Annotated[int, Field(ge=1, le=3650)] = 3650


class BoardDeviceOut(BaseModel):
    id: str
    name: str
    site_id: str
    created_by: str
    created_at: int
    expires_at: int
    revoked_at: int | None


class BoardDeviceCreated(BaseModel):
    device: BoardDeviceOut
    secret: str = Field(
        description="The device's credential (a board-only API key): shown once, only its "
        "hash is stored. The kiosk page keeps it in the browser's local storage."
    )


class TargetIn(_In):
    line: Annotated[str, Field(min_length=1, max_length=300, description="line path")]
    oee: Annotated[float | None, Field(gt=0, le=1, description="target OEE, 0–1")] = None
    per_hour: Annotated[float | None, Field(gt=0, le=1e6, description="good parts / h")] = None
    per_shift: Annotated[float | None, Field(gt=0, le=1e8, description="good parts / shift")] = None


class TargetOut(BaseModel):
    line: str
    oee: float | None
    per_hour: float | None
    per_shift: float | None
    updated_by: str
    updated_at: int


class ShiftProgressOut(BaseModel):
    shift: str = Field(description="'YYYY-MM-DD name' of the current (or last) shift")
    start: int
    end: int = Field(description="the shift's planned end")
    until: int = Field(description="plan and actual count up to here")
    planned_s: float = Field(description="planned production time elapsed in the shift")
    planned_total_s: float
    per_hour: float | None = Field(description="the target rate the plan follows")
    plan: float | None = Field(description="target rate × elapsed planned production time")
    actual: int = Field(description="good parts out of the line's last station(s)")


class KioskLineOut(BaseModel):
    line: str
    name: str
    oee: float | None = Field(description="line OEE over the shift so far (as the line page)")
    target: TargetOut | None
    shift: ShiftProgressOut


class KioskOut(BaseModel):
    site: str = Field(description="the site's name")
    timezone: str = Field(description="the site's IANA time zone (its clock and shifts)")
    board: BoardOut = Field(description="the andon board (filtered to `line` when given)")
    lines: list[KioskLineOut]
