"""Building a connector imports only its own protocol package (an edge with one Modbus device
does not load OPC UA, MQTT, MTConnect, the file readers or pyarrow: decision 0318)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from andon.connect.registry import build_connector, connector_type

_PROBE = """
import json, sys
from andon.connect.registry import build_connector
build_connector({"type": "modbus", "name": "m", "devices": [{"name": "press",
    "points": [{"signal": "a.b.c", "address": 0}]}]})
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in
    ("asyncua", "pyarrow", "pymodbus", "andon"))))
"""


def test_a_modbus_connector_loads_no_other_protocol() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    loaded = set(json.loads(out.stdout))
    assert "andon.connect.modbus" in loaded and "pymodbus" in loaded
    others = ("opcua", "mqtt", "mtconnect", "files", "sparkplug", "synthetic")
    assert not {f"andon.connect.{p}" for p in others} & loaded
    assert not {"asyncua", "pyarrow"} & loaded  # aiomqtt: andon.wire.net, the uplink


def test_every_listed_type_is_found_by_its_name() -> None:
    for kind in ("synthetic", "modbus", "sparkplug", "mqtt_json", "mtconnect", "opcua", "csv"):
        assert connector_type(kind).manifest.domain == kind


def test_an_unknown_type_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"unknown connector type 'nope' \(known: .*modbus"):
        build_connector({"type": "nope", "name": "x"})
    with pytest.raises(KeyError, match="unknown connector type None"):
        build_connector({"name": "x"})
