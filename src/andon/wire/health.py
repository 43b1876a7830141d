"""The edge's health report: one type for every place it appears.

An edge agent reports what ``andon edge status`` shows: per connector and device the
connection state, last success, error and reconnect counts and latency, plus its buffer and
uplink counters. ``EdgeHealth`` is that report wherever it travels or rests: the agent's
``status.json`` (``EdgeAgent.status``), the body it POSTs to
``/api/v1/sites/{site}/edge/health``, the row the platform keeps per edge
(``andon.ingest.edge_health``) and, with the platform's own fields added
(``EdgeSnapshot``: when it arrived, its age, whether it is stale, per device the seconds
since its last good read), the API's answer.

The edge builds its report without validation (``model_construct``: its own counters, which
must never stop the agent); the platform validates what it receives. Unknown fields are
ignored, so an edge agent newer than the platform can still report; every list and string
is bounded, so a report cannot grow the platform's memory without limit.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

__all__ = [
    "BufferHealth",
    "ConnectorHealth",
    "ConnectorSnapshot",
    "DeviceHealth",
    "DeviceSnapshot",
    "EdgeHealth",
    "EdgeHealthAck",
    "EdgeSnapshot",
    "SiteEdgeHealth",
    "UplinkHealth",
]

Count = Annotated[int, Field(ge=0, lt=2**63)]
Micros = Annotated[int, Field(ge=0, lt=2**62)]
Text = Annotated[str, AfterValidator(lambda s: s[:300])]
"""Free text (an error message): cut to 300 characters rather than refusing the report."""
Name = Annotated[str, Field(min_length=1, max_length=300)]
Reasons = Annotated[dict[Annotated[str, Field(max_length=100)], Count], Field(max_length=50)]
"""Counts by reason (bounded: at most 50 reasons)."""


class _Tolerant(BaseModel):
    model_config = ConfigDict(extra="ignore")


class DeviceHealth(_Tolerant):
    """One device of a connector (``andon.connect.base.DeviceHealth``'s counters)."""

    device: Name
    connected: bool = False
    last_success_us: Micros | None = None
    last_error: Text = ""
    errors: Count = 0
    reconnects: Count = 0
    reads: Count = 0
    points: Count = 0
    text_points: Count = 0
    """Of ``points``, text values (decision 0202)."""
    latency_ms: Annotated[float, Field(ge=0, le=1e9)] | None = None
    rejected: Reasons = Field(default_factory=dict)
    """Refused messages or values by reason (malformed, wrong type, bad timestamp...)."""


class ConnectorHealth(_Tolerant):
    connector: Name
    devices: Annotated[list[DeviceHealth], Field(max_length=1_000)] = Field(default_factory=list)


class UplinkHealth(_Tolerant):
    """The uplink's counters of this process (``andon.edge.uplink.UplinkStats``)."""

    connected: bool = False
    connects: Count = 0
    connect_failures: Count = 0
    frames_sent: Count = 0
    frames_resent: Count = 0
    acks: Count = 0
    rejected: Count = 0
    last_error: Text = ""
    acks_ignored: Reasons = Field(default_factory=dict)
    """Acknowledgements ignored, by reason (``bad_ack``, ``forged_ack``, ``unsent_ack``,
    ``ack_not_recorded``)."""
    ack_gaps: Count = 0
    short_sessions: Count = 0
    """Connections the broker closed right after they began: in bursts, another edge with
    the same key."""


class BufferHealth(_Tolerant):
    """The durable buffer's counters (``andon.edge.buffer.BufferStats``)."""

    pending_batches: Count = 0
    pending_points: Count = 0
    pending_bytes: Count = 0
    max_bytes: Count = 0
    put_points: Count = 0
    acked_points: Count = 0
    rejected_by_platform_points: Count = 0
    dropped_points: Count = 0
    dropped_batches: Count = 0
    dropped_disk_full_points: Count = 0
    """Of ``dropped_points``, those dropped because the edge's disk was full."""


class EdgeHealth(_Tolerant):
    """One edge's health report."""

    edge: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]
    time_us: Micros
    """When the edge took the snapshot (its clock)."""
    pid: Count | None = None
    """The agent's process id on its host."""
    interval_s: Annotated[float, Field(gt=0, le=86_400)] = 15.0
    """How often the edge reports: the platform calls a snapshot stale after three."""
    connectors: Annotated[list[ConnectorHealth], Field(max_length=200)] = Field(
        default_factory=list
    )
    uplink: UplinkHealth | None = None
    buffer: BufferHealth | None = None


class EdgeHealthAck(BaseModel):
    """The platform's answer to a health report."""

    edge: str
    received_us: int


class DeviceSnapshot(DeviceHealth):
    since_success_s: float | None
    """Staleness: seconds from the device's last successful read to the edge's snapshot."""


class ConnectorSnapshot(ConnectorHealth):
    devices: list[DeviceSnapshot] = Field(default_factory=list)  # type: ignore[assignment]


class EdgeSnapshot(EdgeHealth):
    """An edge's latest report as the API answers it: the report, and the platform's view."""

    connectors: list[ConnectorSnapshot] = Field(default_factory=list)  # type: ignore[assignment]
    reported_us: int
    """The report's ``time_us`` (the edge's clock)."""
    received_us: int
    """When the platform received it (the platform's clock)."""
    age_s: float
    """Seconds since the platform received the snapshot."""
    stale: bool
    """No report for more than three of the edge's intervals."""

    @classmethod
    def of(
        cls, report: EdgeHealth, received_us: int, now_us: int, stale_after: int
    ) -> EdgeSnapshot:
        """``report`` received at ``received_us``, seen at ``now_us``: stale after
        ``stale_after`` of its intervals without a newer one."""
        age = max(0.0, (now_us - received_us) / 1e6)
        connectors = [
            ConnectorSnapshot(
                connector=c.connector,
                devices=[
                    DeviceSnapshot(
                        **d.model_dump(),
                        since_success_s=None
                        if d.last_success_us is None
                        else round(max(0.0, (report.time_us - d.last_success_us) / 1e6), 3),
                    )
                    for d in c.devices
                ],
            )
            for c in report.connectors
        ]
        return cls(
            **report.model_dump(exclude={"connectors"}),
            connectors=connectors,
            reported_us=report.time_us,
            received_us=received_us,
            age_s=round(age, 3),
            stale=age > stale_after * report.interval_s,
        )


class SiteEdgeHealth(BaseModel):
    site_id: str
    edges: list[EdgeSnapshot]
