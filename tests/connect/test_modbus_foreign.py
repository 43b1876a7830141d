"""The Modbus connector against a Modbus TCP server andon does not use (pyModbusTCP), and the
virtual factory's server against a client andon does not use: exception responses, holes in
the register map, reconnect pacing, coils and discrete inputs."""

from __future__ import annotations

import asyncio
import functools
import json
import math
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from andon.connect.modbus import ModbusConfig, ModbusConnector
from andon.model.types import Quality, SampleBatch

HOLE = range(9, 15)  # holding registers 9..14 do not exist on the device


def _pymodbustcp() -> Any:
    try:
        import pyModbusTCP.server as srv  # type: ignore[import-untyped]
    except ImportError:
        r = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "pyModbusTCP==0.3.1"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if r.returncode:
            pytest.skip(f"cannot install pyModbusTCP from PyPI: {r.stderr.strip()[-300:]}")
        import pyModbusTCP.server as srv
    return srv


def sync(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Runs an async test on a fresh event loop (the project has no asyncio test plugin)."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))

    return run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def foreign() -> Iterator[tuple[int, Any]]:
    """A pyModbusTCP server whose holding registers 9..14 are a hole (illegal data address)."""
    srv = _pymodbustcp()
    from pyModbusTCP.constants import EXP_DATA_ADDRESS  # type: ignore[import-untyped]

    class Holes(srv.DataHandler):  # type: ignore[misc, name-defined]
        def read_h_regs(self, address: int, count: int, srv_info: Any) -> Any:
            if set(range(address, address + count)) & set(HOLE):
                return srv.DataHandler.Return(exp_code=EXP_DATA_ADDRESS)
            return super().read_h_regs(address, count, srv_info)

    bank = srv.DataBank()
    bank.set_holding_registers(0, [100 + i for i in range(32)])
    port = _free_port()
    server = srv.ModbusServer("127.0.0.1", port, no_block=True, data_hdl=Holes(bank))
    server.start()
    try:
        yield port, server
    finally:
        server.stop()


def _connector(port: int, addresses: list[int], **dev: Any) -> ModbusConnector:
    points = [{"signal": f"s/a/l/m/r{a}", "address": a} for a in addresses]
    cfg = {
        "name": "plc",
        "devices": [
            {"name": "dev", "port": port, "poll_s": 0.05, "timeout_s": 0.5, **dev, "points": points}
        ],
    }
    return ModbusConnector(ModbusConfig.model_validate(cfg))


async def _collect(c: ModbusConnector, polls: int, deadline_s: float = 5.0) -> list[SampleBatch]:
    out: list[SampleBatch] = []
    agen: Any = c.batches(None)
    end = time.monotonic() + deadline_s
    try:
        while len(out) < polls and time.monotonic() < end:
            batch, _ = await asyncio.wait_for(agen.__anext__(), end - time.monotonic())
            out.append(batch)
    finally:
        await agen.aclose()
    return out


def _by_signal(b: SampleBatch) -> dict[str, tuple[float, int]]:
    rows = zip(b.index.tolist(), b.value.tolist(), b.quality.tolist(), strict=True)
    return {b.names[i]: (v, q) for i, v, q in rows}


@sync
async def test_exception_response_marks_points_bad_and_keeps_the_connection(
    foreign: tuple[int, Any],
) -> None:
    port, _ = foreign
    # 10 sits in the hole; 8 and 16 are good neighbours a gap of 8 would merge across it
    c = _connector(port, [8, 10, 16], max_gap=8)
    batches = await _collect(c, 5)
    assert len(batches) == 5
    last = _by_signal(batches[-1])
    assert last["s/a/l/m/r8"] == (108.0, Quality.GOOD)
    assert last["s/a/l/m/r16"] == (116.0, Quality.GOOD)
    v, q = last["s/a/l/m/r10"]
    assert math.isnan(v) and q == Quality.BAD
    d = c.health.devices["dev"]
    assert d.reconnects == 0, "an exception response is not a lost connection"
    assert d.connected
    assert d.rejected.get("illegal data address", 0) >= 5
    assert "illegal data address at holding 10" in d.last_error, d.last_error
    assert "ModbusException" not in d.last_error and "ExceptionResponse" not in d.last_error


@sync
async def test_a_merged_read_over_a_hole_is_split_and_remembered(
    foreign: tuple[int, Any],
) -> None:
    port, _ = foreign
    c = _connector(port, [8, 16], max_gap=8)  # one read 8..16 spans the hole
    batches = await _collect(c, 4)
    d = c.health.devices["dev"]
    assert d.rejected == {"illegal data address": 1}, "split once, then remembered"
    assert "illegal data address at holding 8–16 (merged read)" in d.last_error, d.last_error
    assert _by_signal(batches[-1]) == {
        "s/a/l/m/r8": (108.0, Quality.GOOD),
        "s/a/l/m/r16": (116.0, Quality.GOOD),
    }
    assert d.reconnects == 0


@sync
async def test_default_planning_does_not_read_across_unmapped_registers(
    foreign: tuple[int, Any],
) -> None:
    port, _ = foreign
    c = _connector(port, [7, 8, 15, 16])
    batches = await _collect(c, 3)
    assert all(q == Quality.GOOD for _, q in _by_signal(batches[-1]).values())
    assert c.health.devices["dev"].rejected == {}


@sync
async def test_reconnects_back_off_against_a_peer_that_drops_every_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    accepted = 0

    async def slam(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        w.close()

    server = await asyncio.start_server(slam, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    c = _connector(port, [0], timeout_s=0.1, retries=0)
    agen: Any = c.batches(None)
    task = asyncio.ensure_future(agen.__anext__())
    caplog.set_level("WARNING", logger="andon.connect.modbus")
    try:
        await asyncio.sleep(1.5)  # measuring a rate over a fixed window
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await agen.aclose()
        server.close()
        await server.wait_closed()
    # backoff 0.1, 0.2, 0.4, 0.8 s (±20 %): at most six attempts in 1.5 s
    assert 1 <= accepted <= 6, accepted
    warnings = [r for r in caplog.records if r.name == "andon.connect.modbus"]
    assert len(warnings) <= accepted


@pytest.mark.parametrize("size", [10, 16, 100, 256])
@sync
async def test_the_virtual_factory_serves_coils_and_discrete_inputs_to_a_foreign_client(
    size: int,
) -> None:
    _pymodbustcp()
    from pyModbusTCP.client import ModbusClient  # type: ignore[import-untyped]

    from andon.sim.servers.modbus import ModbusImage, ModbusSimServer

    img = ModbusImage(size)
    for a in (1, 5, size - 1):
        img.set("coil", a, 1)
    img.set("discrete", 3, 1)
    img.set("holding", 2, 77)
    server = ModbusSimServer({1: img})
    await server.start()
    try:

        def read() -> tuple[Any, Any, Any, Any]:
            c = ModbusClient("127.0.0.1", server.port, unit_id=1, timeout=2.0, auto_open=True)
            try:
                return (
                    c.read_coils(0, size),
                    c.read_coils(5, 2),
                    c.read_discrete_inputs(2, 3),
                    c.read_holding_registers(2, 1),
                )
            finally:
                c.close()

        all_coils, coils, discrete, holding = await asyncio.to_thread(read)
    finally:
        await server.stop()
    assert all_coils == [a in (1, 5, size - 1) for a in range(size)]
    assert coils == [True, False]
    assert discrete == [False, True, False]
    assert holding == [77]


@sync
async def test_edge_status_shows_what_was_not_read_and_why(
    foreign: tuple[int, Any], tmp_path: Path
) -> None:
    from dataclasses import asdict

    from typer.testing import CliRunner

    from andon.cli import app
    from andon.edge.agent import STATUS_FILE
    from andon.edge.uplink import UplinkStats

    port, _ = foreign
    c = _connector(port, [8, 10])
    await _collect(c, 2)
    doc = {
        "edge": "e1",
        "time_us": time.time_ns() // 1000,
        "pid": 1,
        "uplink": asdict(UplinkStats()),
        "buffer": {"pending_points": 0, "pending_bytes": 0, "max_bytes": 1, "acked_points": 0,
                   "dropped_points": 0},
        "connectors": [c.health.as_dict()],
    }  # fmt: skip
    (tmp_path / STATUS_FILE).write_text(json.dumps(doc))
    r = CliRunner().invoke(app, ["edge", "status", "--data-dir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "plc dev: not read: illegal data address 2" in r.output, r.output
    assert "illegal data address at holding 10 (s/a/l/m/r10)" in r.output
