"""Modbus TCP: register maps (holding/input/coil/discrete), typed decoding with byte and word
order, scale and offset, batched reads, per-device polling. See ``codec``, ``plan``,
``client``."""

from __future__ import annotations

from andon.connect.modbus.client import (
    MANIFEST,
    ModbusConfig,
    ModbusConnector,
    ModbusDevice,
    ModbusPoint,
)
from andon.connect.modbus.codec import decode, encode, scaled
from andon.connect.modbus.plan import Point, Read, plan
from andon.connect.registry import ConnectorType, register

__all__ = [
    "MANIFEST",
    "ModbusConfig",
    "ModbusConnector",
    "ModbusDevice",
    "ModbusPoint",
    "Point",
    "Read",
    "decode",
    "encode",
    "plan",
    "scaled",
]

register(ConnectorType(MANIFEST, ModbusConfig, ModbusConnector))
