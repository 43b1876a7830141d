"""The OPC UA connector against a server andon does not use (node-opcua, from npm, started on
loopback): node ids in any valid spelling, namespaces by URI, unknown nodes, arrays and
strings, and browse suggestions."""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from andon.connect.opcua import OpcUaConfig, OpcUaConnector
from andon.connect.opcua.browse import BrowseTarget, browse, suggested_connector
from andon.model.types import Quality

VERSION = "2.186.4"
SCRIPT = Path(__file__).parent / "foreign" / "opcua_server.js"
NS = "urn:andon:test:foreign"
pytestmark = pytest.mark.slow  # starting node-opcua takes 5-10 s (the tests themselves 2 s)

GUID = "72962B91-FA75-4AE6-8D28-B404DC7DAF63"


def _node_modules() -> Path:
    """node-opcua installed once into a cache directory (about 20 s the first time)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for the node-opcua server")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    root = cache / "andon-tests" / f"node-opcua-{VERSION}"
    mods = root / "node_modules"
    if not (mods / "node-opcua-server").is_dir():
        root.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--omit=optional", "--prefix", str(root),
             f"node-opcua-server@{VERSION}", f"node-opcua-variant@{VERSION}"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if r.returncode:
            pytest.skip(f"cannot install node-opcua from npm: {r.stderr.strip()[-300:]}")
    return mods


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    mods = _node_modules()
    port = _free_port()
    env = {**os.environ, "NODE_PATH": str(mods)}
    proc = subprocess.Popen(
        ["node", str(SCRIPT), str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        line = ""
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("READY") or not line:
                break
        assert line.startswith("READY"), f"node-opcua server did not start: {line!r}"
        yield f"opc.tcp://127.0.0.1:{port}/UA/foreign"
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def _connector(url: str, nodes: dict[str, str], **kw: Any) -> OpcUaConnector:
    cfg = {
        "name": "foreign",
        "url": url,
        "publishing_ms": 50,
        "timeout_s": 2.0,
        **kw,
        "nodes": [{"node_id": n, "signal": s, "sampling_ms": 50} for s, n in nodes.items()],
    }
    return OpcUaConnector(OpcUaConfig.model_validate(cfg))


async def _collect(
    c: OpcUaConnector,
    done: Any,
    deadline_s: float = 10.0,
    texts: dict[str, list[tuple[str, float, int]]] | None = None,
) -> dict[str, list[tuple[float, int]]]:
    """Samples per signal until ``done(samples)`` or the deadline; text values (with their
    enumeration codes) into ``texts``."""
    seen: dict[str, list[tuple[float, int]]] = {}
    agen: Any = c.batches(None)
    end = time.monotonic() + deadline_s
    try:
        while not done(seen) and time.monotonic() < end:
            try:
                batch, _ = await asyncio.wait_for(agen.__anext__(), end - time.monotonic())
            except TimeoutError:
                break
            for i, v, q in zip(batch.index, batch.value, batch.quality, strict=True):
                seen.setdefault(batch.names[i], []).append((float(v), int(q)))
            t = batch.text
            if t is not None and texts is not None:
                for i, s, c_, q in zip(t.index, t.value, t.code, t.quality, strict=True):
                    texts.setdefault(t.names[i], []).append((s, float(c_), int(q)))
    finally:
        await agen.aclose()
    return seen


def _good(samples: list[tuple[float, int]]) -> int:
    return sum(1 for v, q in samples if q == Quality.GOOD and math.isfinite(v))


def test_node_ids_in_any_valid_spelling_get_data_in_subscription_mode(server: str) -> None:
    nodes = {
        "s/a/l/m/service_level": "ns=0;i=2267",
        "s/a/l/m/temp": f"ns=2;g={GUID}",
        "s/a/l/m/speed": f"nsu={NS};s=speed",
        "s/a/l/m/count": f"nsu={NS};i=1001",
    }
    c = _connector(server, nodes)
    seen = asyncio.run(
        _collect(c, lambda s: all(s.get(k) and _good(s[k]) >= 2 for k in nodes if "level" not in k)
                 and _good(s.get("s/a/l/m/service_level", [])) >= 1)
    )  # fmt: skip
    for signal in nodes:
        assert _good(seen.get(signal, [])) >= 1, (signal, seen.get(signal))
    assert seen["s/a/l/m/service_level"][0] == (255.0, Quality.GOOD)
    assert c.sessions == 1


def test_unknown_nodes_and_arrays_are_counted_strings_read_as_text_the_rest_subscribed(
    server: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="andon.connect.opcua")
    nodes = {
        "s/a/l/m/speed": "ns=2;s=speed",
        "s/a/l/m/missing": "ns=2;s=no_such_node",
        "s/a/l/m/elsewhere": "nsu=urn:nobody;s=speed",
        "s/a/l/m/profile": "ns=2;s=profile",
        "s/a/l/m/program": "ns=2;s=program",
        "s/a/l/m/state": "ns=2;s=state",
    }
    c = _connector(server, nodes)
    texts: dict[str, list[tuple[str, float, int]]] = {}
    seen = asyncio.run(
        _collect(
            c,
            lambda s: _good(s.get("s/a/l/m/speed", [])) >= 5 and len(texts) == 2,
            texts=texts,
        )
    )
    assert _good(seen["s/a/l/m/speed"]) >= 5
    for bad in ("s/a/l/m/missing", "s/a/l/m/elsewhere"):
        assert seen[bad] and all(q == Quality.BAD for _, q in seen[bad]), seen.get(bad)
    assert not {"s/a/l/m/profile", "s/a/l/m/program", "s/a/l/m/state"} & set(seen)
    # a String variable travels unchanged as text; an enumeration as its label and code
    (program,) = texts["s/a/l/m/program"]
    assert (program[0], program[2]) == ("O1234 (ROUGH) Ø12", Quality.GOOD)
    assert math.isnan(program[1])
    assert texts["s/a/l/m/state"] == [("Failed", 1.0, Quality.GOOD)]
    d = c.health.devices[server]
    assert d.rejected == {"unknown node": 1, "unknown namespace": 1, "array value": 1}
    assert d.text_points == 2
    text = caplog.text
    assert "polling" not in text and "subscription refused" not in text
    assert "urn:nobody" in text and "ns=2;s=no_such_node" in text and "ns=2;s=profile" in text
    assert c.sessions == 1


def test_browse_suggests_no_array_variables(server: str) -> None:
    target = BrowseTarget(server)
    found = asyncio.run(browse(target, depth=2, prefix="s/a/l"))
    entry = suggested_connector(found, target)
    ids = {n["node_id"] for n in entry["nodes"]}
    assert "ns=2;s=speed" in ids
    assert "ns=2;s=profile" not in ids and "ns=2;s=program" not in ids


def test_a_malformed_node_id_is_refused_at_config() -> None:
    with pytest.raises(ValidationError, match=r"(?s)nodes\.0\.node_id.*not an OPC UA node id"):
        OpcUaConfig.model_validate(
            {
                "name": "x",
                "url": "opc.tcp://h:4840",
                "nodes": [{"node_id": "ns=2;q=1", "signal": "s"}],
            }
        )
