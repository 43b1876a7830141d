"""``andon edge doctor`` against the virtual factory's protocol servers (Modbus TCP, OPC UA,
MTConnect), each with one deliberately wrong signal: every good signal shows its value, type
and good quality; each wrong one its exact problem; the command exits 1 (0 once the wrong
signals are gone)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from andon.edge.doctor import SignalCheck, check_connectors
from andon.sim.servers.modbus import ModbusImage, ModbusSimServer
from andon.sim.servers.mtconnect import MTConnectAgent
from andon.sim.servers.opcua import OpcUaSimServer


@dataclass
class Devices:
    modbus: dict[str, Any]
    opcua: dict[str, Any]
    mtconnect: dict[str, Any]


@asynccontextmanager
async def _devices() -> AsyncIterator[Devices]:
    img = ModbusImage()  # 256 addresses per table
    img.set("holding", 0, 21.5, "float32")
    img.set("input", 4, 1234)
    img.set("coil", 2, 1)
    modbus = ModbusSimServer({1: img})
    opcua = OpcUaSimServer({"vmc1": ["spindle_speed"]})
    agent = MTConnectAgent(
        "vmc1",
        [
            ("s1", "Sspeed", "SAMPLE", "SPINDLE_SPEED"),
            ("x1", "Xact", "SAMPLE", "POSITION"),
            ("ex", "exec", "EVENT", "EXECUTION"),
        ],
    )
    await modbus.start()
    await agent.start()
    try:
        await opcua.start()
        await opcua.set("vmc1", "spindle_speed", 1200.0)
        agent.observe("s1", 1250.0)
        agent.observe("x1", None)  # the wrong one: UNAVAILABLE
        agent.observe("ex", "ACTIVE")
        yield Devices(
            {
                "type": "modbus",
                "name": "presses",
                "devices": [
                    {
                        "name": "press-1",
                        "port": modbus.port,
                        "timeout_s": 1.0,
                        "retries": 0,
                        "points": [
                            {"signal": "s/a/l/press/temp", "address": 0, "type": "float32"},
                            {"signal": "s/a/l/press/count", "table": "input", "address": 4},
                            {"signal": "s/a/l/press/run", "table": "coil", "address": 2},
                            # the wrong one: past the device's 256 holding registers
                            {"signal": "s/a/l/press/ghost", "address": 300, "type": "int32"},
                        ],
                    }
                ],
            },
            {
                "type": "opcua",
                "name": "machining",
                "url": opcua.url,
                "timeout_s": 2.0,
                "nodes": [
                    {"node_id": opcua.node_id("vmc1", "spindle_speed"), "signal": "s/a/l/v/sp"},
                    {"node_id": f"ns={opcua.ns};s=vmc1.nope", "signal": "s/a/l/v/nope"},
                ],
            },
            {
                "type": "mtconnect",
                "name": "vmc",
                "url": f"http://127.0.0.1:{agent.port}",
                "timeout_s": 2.0,
                "items": {"s1": "s/a/l/v/speed", "x1": "s/a/l/v/x", "ex": "s/a/l/v/execution"},
            },
        )
    finally:
        await opcua.stop()
        await agent.stop()
        await modbus.stop()


def _by_signal(checks: list[SignalCheck]) -> dict[str, SignalCheck]:
    return {c.signal: c for c in checks}


def _site(tmp: Path, connectors: list[dict[str, Any]]) -> Path:
    doc = {
        "edge": {"id": "doctor-1"},
        "data_dir": str(tmp / "edge"),
        "uplink": {"key_env": "ANDON_DOCTOR_KEY_NOT_SET"},  # the doctor needs no key
        "connectors": connectors,
    }
    path = tmp / "site.yaml"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


async def _doctor(site: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "andon.cli",
        "edge",
        "doctor",
        str(site),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "250"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def test_doctor_names_each_wrong_signal_exactly() -> None:
    async def go() -> None:
        async with _devices() as d:
            got = _by_signal(await check_connectors([d.modbus, d.opcua, d.mtconnect], 5.0))

            # Modbus: values decoded as the agent would; the wrong address named exactly
            assert (got["s/a/l/press/temp"].value, got["s/a/l/press/temp"].type) == (
                21.5,
                "float32 (holding)",
            )
            assert got["s/a/l/press/count"].value == 1234.0
            assert (got["s/a/l/press/run"].value, got["s/a/l/press/run"].type) == (1.0, "coil")
            ghost = got["s/a/l/press/ghost"]
            assert ghost.problem == "illegal data address at holding 300–301"
            assert (ghost.value, ghost.quality) == (None, "bad")

            # OPC UA: the good node's value and type; the unknown node named with its status
            sp = got["s/a/l/v/sp"]
            assert (sp.value, sp.type, sp.quality, sp.ok) == (1200.0, "Double", "good", True)
            nope = got["s/a/l/v/nope"]
            node = d.opcua["nodes"][1]["node_id"]
            assert nope.problem == f"node {node} unknown (BadNodeIdUnknown)"
            assert (nope.value, nope.quality) == (None, "none")

            # MTConnect: a number, an event's text, and the UNAVAILABLE item
            assert (got["s/a/l/v/speed"].value, got["s/a/l/v/speed"].quality) == (1250.0, "good")
            assert (got["s/a/l/v/execution"].value, got["s/a/l/v/execution"].type) == (
                "ACTIVE",
                "text",
            )
            assert got["s/a/l/v/x"].problem == "MTConnect data item x1 UNAVAILABLE"

            bad = sorted(c.signal for c in got.values() if not c.ok)
            assert bad == ["s/a/l/press/ghost", "s/a/l/v/nope", "s/a/l/v/x"]

    asyncio.run(go())


@pytest.mark.slow
def test_doctor_command_table_and_exit_code(tmp_path: Path) -> None:
    """The command: a table with every signal and problem, exit 1; once the wrong signals
    are taken out of the site file, exit 0. A device that is not there: every one of its
    signals says so."""

    async def go() -> None:
        async with _devices() as d:
            site = _site(tmp_path, [d.modbus, d.opcua, d.mtconnect])
            rc, out, err = await _doctor(site)
            assert rc == 1, out + err
            for text in (
                "s/a/l/press/temp",
                "21.5",
                "illegal data address at holding 300–301",
                "(BadNodeIdUnknown)",
                "MTConnect data item x1 UNAVAILABLE",
                "9 signals, 3 with a problem",
            ):
                assert text in out, (text, out)

            d.modbus["devices"][0]["points"].pop()
            d.opcua["nodes"].pop()
            d.mtconnect["items"].pop("x1")
            rc, out, err = await _doctor(_site(tmp_path, [d.modbus, d.opcua, d.mtconnect]))
            assert rc == 0, out + err
            assert "6 signals, 0 with a problem" in out

            gone = dict(d.modbus, devices=[dict(d.modbus["devices"][0], port=1)])
            rc, out, err = await _doctor(_site(tmp_path, [gone]), "--json")
            assert rc == 1, out + err
            rows = json.loads(out)
            assert len(rows) == 3
            assert {r["problem"] for r in rows} == {"cannot connect to 127.0.0.1:1"}

    asyncio.run(go())


def test_doctor_refuses_an_invalid_site_file_with_where(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(
        "edge: {id: e}\ndata_dir: /tmp/x\nuplink: {key_env: K}\n"
        "connectors:\n  - {type: modbus, name: m, devices: [{name: d, points: []}]}\n",
        encoding="utf-8",
    )
    rc, _, err = asyncio.run(_doctor(site))
    assert rc == 2
    assert "site.yaml:5" in err and "points" in err, err
