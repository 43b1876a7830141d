"""OPC UA client connector (asyncua). See ``client``; ``browse`` walks a server's address
space to suggest a signal mapping."""

from __future__ import annotations

from andon.connect.opcua.browse import BrowsedNode, BrowseTarget, browse, suggested_connector
from andon.connect.opcua.client import (
    MANIFEST,
    OpcUaConfig,
    OpcUaConnector,
    OpcUaNode,
    quality_of,
)
from andon.connect.registry import ConnectorType, register

__all__ = [
    "MANIFEST",
    "BrowseTarget",
    "BrowsedNode",
    "OpcUaConfig",
    "OpcUaConnector",
    "OpcUaNode",
    "browse",
    "quality_of",
    "suggested_connector",
]

register(ConnectorType(MANIFEST, OpcUaConfig, OpcUaConnector))
