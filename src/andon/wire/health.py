"""Request and response bodies of the edge health endpoints (``routes_edge``).

An edge agent reports what ``andon edge status`` shows: per connector and device the
connection state, last success, error and reconnect counts and latency, plus its buffer and
uplink. The inbound models ignore fields they do not know, so an edge agent newer than the
platform can still report; every list and string is bounded, so a report cannot grow the
platform's memory without limit.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BufferHealthIn",
    "ConnectorHealthIn",
    "ConnectorHealthOut",
    "DeviceHealthIn",
    "DeviceHealthOut",
    "EdgeHealthAck",
    "EdgeHealthIn",
    "EdgeHealthOut",
    "EdgeSnapshotOut",
    "SiteEdgeHealthOut",
    "UplinkHealthIn",
]

Count = Annotated[int, Field(ge=0, lt=2**63)]
Micros = Annotated[int, Field(ge=0, lt=2**62)]
Text = Annotated[str, Field(max_length=300)]
Name = Annotated[str, Field(min_length=1, max_length=300)]


class _Tolerant(BaseModel):
    model_config = ConfigDict(extra="ignore")


class DeviceHealthIn(_Tolerant):
    device: Name
    connected: bool = False
    last_success_us: Micros | None = None
    last_error: Text = ""
    errors: Count = 0
    reconnects: Count = 0
    reads: Count = 0
    points: Count = 0
    latency_ms: Annotated[float, Field(ge=0, le=1e9)] | None = None
    rejected: Annotated[
        dict[Annotated[str, Field(max_length=100)], Count], Field(max_length=50)
    ] = Field(default_factory=dict)


class ConnectorHealthIn(_Tolerant):
    connector: Name
    devices: Annotated[list[DeviceHealthIn], Field(max_length=1_000)] = Field(default_factory=list)


class UplinkHealthIn(_Tolerant):
    connected: bool = False
    connects: Count = 0
    connect_failures: Count = 0
    frames_sent: Count = 0
    acks: Count = 0
    last_error: Text = ""


class BufferHealthIn(_Tolerant):
    pending_points: Count = 0
    pending_bytes: Count = 0
    max_bytes: Count = 0
    acked_points: Count = 0
    dropped_points: Count = 0


class EdgeHealthIn(_Tolerant):
    edge: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]
    time_us: Micros
    """When the edge took the snapshot (its clock)."""
    interval_s: Annotated[float, Field(gt=0, le=86_400)] = 15.0
    """How often the edge reports: the platform calls a snapshot stale after three."""
    connectors: Annotated[list[ConnectorHealthIn], Field(max_length=200)] = Field(
        default_factory=list
    )
    uplink: UplinkHealthIn | None = None
    buffer: BufferHealthIn | None = None


class EdgeHealthAck(BaseModel):
    edge: str
    received_us: int


class DeviceHealthOut(BaseModel):
    device: str
    connected: bool
    last_success_us: int | None
    since_success_s: float | None
    """Staleness: seconds from the device's last successful read to the edge's snapshot."""
    last_error: str
    errors: int
    reconnects: int
    points: int
    latency_ms: float | None
    rejected: dict[str, int]


class ConnectorHealthOut(BaseModel):
    connector: str
    devices: list[DeviceHealthOut]


class EdgeSnapshotOut(BaseModel):
    edge: str
    reported_us: int
    received_us: int
    age_s: float
    """Seconds since the platform received the snapshot."""
    stale: bool
    """No report for more than three of the edge's intervals."""
    uplink: UplinkHealthIn | None
    buffer: BufferHealthIn | None
    connectors: list[ConnectorHealthOut]


class SiteEdgeHealthOut(BaseModel):
    site_id: str
    edges: list[EdgeSnapshotOut]


EdgeHealthOut = SiteEdgeHealthOut
