"""The site-file example in ``andon.edge.config``'s docstring is a valid site file."""

from __future__ import annotations

import textwrap

import andon.edge.config as edge_config
from andon.connect.registry import build_connector
from andon.edge.config import parse_edge_config


def _example() -> str:
    doc = edge_config.__doc__ or ""
    block = doc.split(".. code-block:: yaml", 1)[1]
    lines = []
    for line in block.splitlines()[1:]:
        if line and not line.startswith("    "):
            break
        lines.append(line)
    return textwrap.dedent("\n".join(lines))


def test_the_docstring_example_parses_connectors_included() -> None:
    text = _example()
    cfg = parse_edge_config(text, "config.py docstring")
    assert cfg.edge.id == "edge-1" and cfg.uplink.tls
    assert [c["type"] for c in cfg.connectors] == ["modbus", "opcua"]
    built = [build_connector(c) for c in cfg.connectors]
    assert [c.name for c in built] == ["presses", "machining"]
