"""Connectors: one sub-package per protocol, each declared by a ``Manifest``, mapped onto model
signals by config and yielding ``SampleBatch`` es (see ``andon.connect.base``)."""

from __future__ import annotations

from andon.connect.base import Connector, DeviceHealth, Health, Manifest
from andon.connect.registry import (
    ConnectorType,
    build_connector,
    check_manifest,
    connector_types,
    register,
)

__all__ = [
    "Connector",
    "ConnectorType",
    "DeviceHealth",
    "Health",
    "Manifest",
    "build_connector",
    "check_manifest",
    "connector_types",
    "register",
]
