"""OPC UA browse against the virtual factory's asyncua server: every machine object and
signal variable is found with its node id and data type, the suggested mapping reads the
plant back, and ``andon edge browse`` prints it (table, JSON, a site-file entry)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from importlib.resources import as_file, files

import pytest
import yaml
from typer.testing import CliRunner

from andon.cli import app
from andon.connect.opcua import BrowseTarget, OpcUaConnector, browse, suggested_connector
from andon.connect.registry import build_connector
from andon.model.loader import load_plant
from andon.model.types import SampleBatch
from andon.sim.servers.bridge import assign
from andon.sim.servers.opcua import OpcUaSimServer


def _machines() -> dict[str, list[str]]:
    with as_file(files("andon.sim") / "plants" / "demo.yaml") as p:
        plant = load_plant(p)
    out: dict[str, list[str]] = {}
    for m, s in assign(plant).opcua.values():
        out.setdefault(m, []).append(s)
    return out


def test_browse_finds_every_signal_with_type_and_a_mapping_that_reads() -> None:
    machines = _machines()

    async def go() -> None:
        server = OpcUaSimServer(machines)
        await server.start()
        try:
            target = BrowseTarget(server.url)
            nodes = await browse(target, depth=2, prefix="plant/cell")
            by_id = {n.node_id: n for n in nodes}
            for m, signals in machines.items():
                objects = [n for n in nodes if n.browse_name == m and n.node_class == "Object"]
                assert len(objects) == 1 and objects[0].depth == 1
                for s in signals:
                    n = by_id[server.node_id(m, s)]
                    assert (n.node_class, n.data_type, n.depth) == ("Variable", "Double", 2)
                    assert n.path == (m, s)
                    assert n.signal == f"plant/cell/{m.lower()}/{s}"
            assert not any(n.browse_name == "Server" for n in nodes)
            assert len([n for n in nodes if n.signal]) == sum(len(s) for s in machines.values())
            # depth 1: objects only; a start node limits the walk to one machine
            assert {n.depth for n in await browse(target, depth=1)} == {1}
            m0 = next(iter(machines))
            start = next(n.node_id for n in nodes if n.browse_name == m0 and n.depth == 1)
            one = await browse(target, node=start, depth=1)
            assert sorted(n.browse_name for n in one) == sorted(machines[m0])
            # the suggested entry is a working connector
            entry = suggested_connector(nodes, target)
            c = build_connector(entry)
            assert isinstance(c, OpcUaConnector)
            m, s = m0, machines[m0][0]
            await server.set(m, s, 42.25)
            got: list[SampleBatch] = []

            async def consume() -> None:
                async for b, _ in c.batches(None):
                    got.append(b)

            task = asyncio.create_task(consume())
            try:
                want = f"plant/cell/{m.lower()}/{s}"
                deadline = asyncio.get_running_loop().time() + 20
                while not any(
                    b.signal_at(i) == want and b.value[i] == 42.25
                    for b in got
                    for i in range(len(b))
                ):
                    assert asyncio.get_running_loop().time() < deadline, "value not read"
                    await asyncio.sleep(0.02)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        finally:
            await server.stop()

    asyncio.run(go())


def test_a_bad_start_node_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not an OPC UA node id"):
        asyncio.run(browse(BrowseTarget("opc.tcp://127.0.0.1:1/"), node="no such thing"))


@pytest.fixture
def served() -> Iterator[OpcUaSimServer]:
    """The factory's OPC UA server on its own thread and loop (the CLI runs its own)."""
    server = OpcUaSimServer({"vmc-1": ["spindle_speed", "spindle_load"]})
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()

    async def main() -> None:
        await server.start()
        ready.set()
        await stop.wait()
        await server.stop()

    t = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    t.start()
    assert ready.wait(30), "server did not start"
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(stop.set)
        t.join(30)
        loop.close()


def test_edge_browse_cli(served: OpcUaSimServer) -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["edge", "browse", served.url, "--json", "--prefix", "s/a/l"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert {x["signal"] for x in rows if x["signal"]} == {
        "s/a/l/vmc-1/spindle_speed",
        "s/a/l/vmc-1/spindle_load",
    }
    r = runner.invoke(app, ["edge", "browse", served.url, "--yaml"])
    assert r.exit_code == 0, r.output
    entry = yaml.safe_load(r.output)["connectors"][0]
    assert entry["type"] == "opcua" and entry["url"] == served.url
    assert [n["node_id"] for n in entry["nodes"]] == [
        served.node_id("vmc-1", "spindle_speed"),
        served.node_id("vmc-1", "spindle_load"),
    ]
    r = runner.invoke(app, ["edge", "browse", served.url, "--depth", "1"])
    assert r.exit_code == 0 and "vmc-1" in r.output and "0 numeric variables" in r.output
    r = runner.invoke(app, ["edge", "browse", "opc.tcp://127.0.0.1:9/", "--timeout", "1"])
    assert r.exit_code == 2 and "cannot browse opc.tcp://127.0.0.1:9/" in r.output
