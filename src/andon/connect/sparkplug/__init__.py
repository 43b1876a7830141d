"""MQTT Sparkplug B host application: payload codec (``payload``), state machine
(``host``: births, aliases, seq/bdSeq, rebirth, deaths) and the connector."""

from __future__ import annotations

from andon.connect.registry import ConnectorType, register
from andon.connect.sparkplug.connector import MANIFEST, SparkplugConfig, SparkplugConnector
from andon.connect.sparkplug.host import NAMESPACE, Command, SparkplugHost, rebirth_payload
from andon.connect.sparkplug.payload import (
    Metric,
    Payload,
    PayloadError,
    decode_payload,
    encode_payload,
)

__all__ = [
    "MANIFEST",
    "NAMESPACE",
    "Command",
    "Metric",
    "Payload",
    "PayloadError",
    "SparkplugConfig",
    "SparkplugConnector",
    "SparkplugHost",
    "decode_payload",
    "encode_payload",
    "rebirth_payload",
]

register(ConnectorType(MANIFEST, SparkplugConfig, SparkplugConnector))
