"""OPC UA client connector (asyncua). See ``client``."""

from __future__ import annotations

from andon.connect.opcua.client import (
    MANIFEST,
    OpcUaConfig,
    OpcUaConnector,
    OpcUaNode,
    quality_of,
)
from andon.connect.registry import ConnectorType, register

__all__ = ["MANIFEST", "OpcUaConfig", "OpcUaConnector", "OpcUaNode", "quality_of"]

register(ConnectorType(MANIFEST, OpcUaConfig, OpcUaConnector))
