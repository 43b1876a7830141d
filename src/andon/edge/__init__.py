"""The edge agent: durable store-and-forward of connector data to the platform.

Public face: ``EdgeBuffer`` (durable buffer), ``Uplink`` (MQTT forwarding with platform
acknowledgement), ``HttpsUplink`` (the same over the platform's HTTPS API), ``EdgeAgent``
(connectors + buffer + uplink) and the site-file loader. The frames and topics it speaks
with the platform are ``andon.wire``'s (the layer both edge and ingest import).
"""

from __future__ import annotations

from andon.edge.agent import EdgeAgent, read_status
from andon.edge.buffer import BufferFull, BufferStats, DropPolicy, EdgeBuffer, StoredBatch
from andon.edge.config import EdgeConfig, load_edge_config, parse_edge_config
from andon.edge.https_uplink import HttpsUplink, HttpsUplinkConfig, UplinkHalted
from andon.edge.uplink import Uplink, UplinkConfig, UplinkStats

__all__ = [
    "BufferFull",
    "BufferStats",
    "DropPolicy",
    "EdgeAgent",
    "EdgeBuffer",
    "EdgeConfig",
    "HttpsUplink",
    "HttpsUplinkConfig",
    "StoredBatch",
    "Uplink",
    "UplinkConfig",
    "UplinkHalted",
    "UplinkStats",
    "load_edge_config",
    "parse_edge_config",
    "read_status",
]
