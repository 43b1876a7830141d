"""The edge agent: durable store-and-forward of connector data to the platform.

Public face: ``EdgeBuffer`` (durable buffer), ``Uplink`` (MQTT forwarding with platform
acknowledgement), ``HttpsUplink`` (the same over the platform's HTTPS API), ``EdgeAgent``
(connectors + buffer + uplink), the site-file loader and the wire format used by both ends.
"""

from __future__ import annotations

from andon.connect.net import Backoff
from andon.edge.agent import EdgeAgent, read_status
from andon.edge.buffer import BufferFull, BufferStats, DropPolicy, EdgeBuffer, StoredBatch
from andon.edge.config import EdgeConfig, load_edge_config, parse_edge_config
from andon.edge.https_uplink import HttpsUplink, HttpsUplinkConfig, UplinkHalted
from andon.edge.uplink import Uplink, UplinkConfig, UplinkStats, ack_topic, up_topic
from andon.edge.wire import Ack, Frame, FrameError, decode_frame, encode_frame

__all__ = [
    "Ack",
    "Backoff",
    "BufferFull",
    "BufferStats",
    "DropPolicy",
    "EdgeAgent",
    "EdgeBuffer",
    "EdgeConfig",
    "Frame",
    "FrameError",
    "HttpsUplink",
    "HttpsUplinkConfig",
    "StoredBatch",
    "Uplink",
    "UplinkConfig",
    "UplinkHalted",
    "UplinkStats",
    "ack_topic",
    "decode_frame",
    "encode_frame",
    "load_edge_config",
    "parse_edge_config",
    "read_status",
    "up_topic",
]
