"""Connector types by name: each registers its config model and a factory. The edge agent
builds connectors from the site file through here; the conformance suite finds every type here.

A protocol's package is imported only when a connector of its type is built or looked up
(``build_connector``, ``connector_type``): an edge with one Modbus device does not load the
OPC UA, MQTT, MTConnect or file libraries. ``connector_types`` imports them all.

>>> "synthetic" in connector_types()
True
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from andon.connect.base import Connector, Manifest

__all__ = [
    "ConnectorType",
    "build_connector",
    "check_manifest",
    "connector_type",
    "connector_types",
    "register",
]

_IOT_CLASSES = ("local_polling", "local_push", "file")


@dataclass(frozen=True)
class ConnectorType:
    manifest: Manifest
    config: type[BaseModel]
    factory: Callable[[Any], Connector]


_TYPES: dict[str, ConnectorType] = {}
# protocol sub-packages register on import; imported lazily so optional libraries load on use
_MODULES = {
    "synthetic": "andon.connect.synthetic",
    "modbus": "andon.connect.modbus",
    "sparkplug": "andon.connect.sparkplug",
    "mqtt_json": "andon.connect.mqtt",
    "mtconnect": "andon.connect.mtconnect",
    "opcua": "andon.connect.opcua",
    "csv": "andon.connect.files",
}


def register(kind: ConnectorType) -> None:
    """Declare a connector type (called by each protocol package on import)."""
    problems = check_manifest(kind.manifest)
    if problems:
        raise ValueError(f"connector {kind.manifest.domain!r}: {'; '.join(problems)}")
    _TYPES[kind.manifest.domain] = kind


def check_manifest(m: Manifest) -> list[str]:
    """What is wrong with a manifest (empty when nothing)."""
    out = []
    if not m.domain.isidentifier():
        out.append("domain must be an identifier")
    if m.iot_class not in _IOT_CLASSES:
        out.append(f"iot_class must be one of {_IOT_CLASSES}")
    if not m.name or not m.protocol:
        out.append("name and protocol are required")
    return out


def connector_types() -> dict[str, ConnectorType]:
    """Every known connector type, importing the protocol packages that are installed."""
    for domain, module in _MODULES.items():
        if domain not in _TYPES:
            try:
                importlib.import_module(module)
            except ImportError:  # pragma: no cover - optional library missing
                continue
    return dict(_TYPES)


def connector_type(kind: object) -> ConnectorType:
    """One connector type, importing only its own protocol package. Raises ``KeyError`` for
    an unknown type (naming the known ones: only then is every package imported) or one whose
    protocol library is not installed."""
    if isinstance(kind, str) and kind not in _TYPES and kind in _MODULES:
        try:
            importlib.import_module(_MODULES[kind])
        except ImportError as exc:  # pragma: no cover - optional library missing
            raise KeyError(f"connector type {kind!r} cannot load its library: {exc}") from exc
    if isinstance(kind, str) and kind in _TYPES:
        return _TYPES[kind]
    known = ", ".join(sorted(connector_types()))
    raise KeyError(f"unknown connector type {kind!r} (known: {known})")


def build_connector(options: dict[str, Any]) -> Connector:
    """A connector from one ``connectors:`` entry (``type`` selects the kind), importing only
    that type's protocol package. Raises ``KeyError`` for an unknown type and pydantic's
    ``ValidationError`` for bad options."""
    t = connector_type(options.get("type"))
    cfg = t.config.model_validate({k: v for k, v in options.items() if k != "type"})
    return t.factory(cfg)
