"""MTConnect agent reader: ``probe`` for the data items, ``current`` to start, then ``sample``
from the next sequence number, detecting gaps (the agent's buffer overran the reader) and
agent restarts (a new ``instanceId``). The cursor is ``instanceId:nextSequence``."""

from __future__ import annotations

from andon.connect.mtconnect.reader import (
    MANIFEST,
    MTConnectConfig,
    MTConnectConnector,
    Observation,
    StreamsDoc,
    parse_streams,
)
from andon.connect.registry import ConnectorType, register

__all__ = [
    "MANIFEST",
    "MTConnectConfig",
    "MTConnectConnector",
    "Observation",
    "StreamsDoc",
    "parse_streams",
]

register(ConnectorType(MANIFEST, MTConnectConfig, MTConnectConnector))
