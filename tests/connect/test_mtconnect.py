"""MTConnect: sequence tracking across polls, gap detection, agent restarts, resume."""

from __future__ import annotations

import asyncio
import math
import socket
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

import uvicorn
from lxml import etree

from andon.connect.mtconnect import MTConnectConfig, MTConnectConnector, parse_streams
from andon.model.loader import load_plant
from andon.model.signals import SIGNAL_TYPES
from andon.model.types import Quality, SampleBatch
from andon.sim.servers.bridge import FactoryServers
from andon.sim.servers.mtconnect import MTConnectAgent, data_item
from tests.connect.pki import make_ca, tls_leaf

ITEMS = [("s1", "S", "SAMPLE", "SPINDLE_SPEED")]


async def _take(it: object, n: int) -> list[tuple[SampleBatch, str | None]]:
    return [await asyncio.wait_for(it.__anext__(), 5) for _ in range(n)]  # type: ignore[attr-defined]


def test_sequence_tracking_gap_restart_and_resume() -> None:
    async def go() -> None:
        agent = MTConnectAgent("vmc1", ITEMS, buffer_size=8)
        await agent.start()
        cfg = MTConnectConfig(
            name="m", url=f"http://127.0.0.1:{agent.port}", items={"s1": "s/x"}, poll_s=0.01
        )
        c = MTConnectConnector(cfg)
        it = c.batches(None).__aiter__()
        try:
            agent.observe("s1", 1.0)
            ((b, cur),) = await _take(it, 1)  # /current
            assert b.value.tolist() == [1.0] and cur == f"{agent.instance_id}:2"
            for v in (2.0, 3.0, 4.0):
                agent.observe("s1", v)
            seen: list[float] = []
            while len(seen) < 3:
                ((b, cur),) = await _take(it, 1)
                seen += b.value.tolist()
            assert seen == [2.0, 3.0, 4.0] and cur == f"{agent.instance_id}:5"
            # resume from a stored cursor: nothing is read twice
            c2 = MTConnectConnector(cfg)
            it2 = c2.batches(cur).__aiter__()
            agent.observe("s1", 5.0)
            got: list[float] = []
            while not got:
                ((b, _),) = await _take(it2, 1)
                got += b.value.tolist()
            assert got == [5.0]
            await it2.aclose()  # type: ignore[attr-defined]
            # the reader falls behind the agent's 8-observation buffer: the gap is counted
            await it.aclose()  # type: ignore[attr-defined]
            for v in range(20):
                agent.observe("s1", float(v))
            c3 = MTConnectConnector(cfg)
            it3 = c3.batches(cur).__aiter__()
            await _take(it3, 1)
            assert c3.lost == 25 - 8 - 4  # sequences 5..17 overwritten (buffer holds 18..25)
            assert c3.health.device(cfg.url).rejected == {"sequence_gap": 13}
            # an agent restart (new instanceId) is detected and the reader resyncs
            agent.restart()
            agent.observe("s1", math.pi)
            vals: list[float] = []
            while math.pi not in vals:
                ((b, _),) = await _take(it3, 1)
                vals += b.value.tolist()
            assert c3.health.device(cfg.url).rejected["agent_restarted"] == 1
            await it3.aclose()  # type: ignore[attr-defined]
        finally:
            await agent.stop()

    asyncio.run(go())


# -- issue 12 ------------------------------------------------------------------------------------

XSD = Path(__file__).parent.parent / "data" / "mtconnect"


def _schema(kind: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD / f"MTConnect{kind}_2.0_1.0.xsd")))


def test_virtual_factory_documents_validate_against_the_mtconnect_xsds() -> None:
    """Probe, current, sample and error documents of the virtual factory's agent (all
    categories, and the items the factory bridge serves) against the official XSDs."""
    with as_file(files("andon.sim") / "plants" / "demo.yaml") as p:
        plant = load_plant(p)
    bridge = FactoryServers(plant, mqtt_port=1)
    agent = bridge.mtconnect
    agent.items += [
        ("ex", "execution", "EVENT", "EXECUTION"),
        ("sys", "system", "CONDITION", "SYSTEM"),
    ]
    # MC-02's own items: the first is a LOAD, then numbers, a PART_COUNT, and two text
    # events (its Execution and Program, issue 12)
    texts = {"MC-02.execution": "ACTIVE", "MC-02.program": "A-100"}
    assert set(texts) <= {i for i, *_ in agent.items}
    for k, (item, *_) in enumerate(agent.items[:-2]):
        agent.observe(item, texts.get(item, 12.0 if k else 1.5))
    for v in ("ACTIVE", None):
        agent.observe("ex", v)
    for v in ("NORMAL", "FAULT", None):
        agent.observe("sys", v)
    docs = [
        ("Devices", agent.probe()),
        ("Streams", agent.respond("/current")[1]),
        ("Streams", agent.respond("/sample?from=1&count=100")[1]),
        ("Error", agent.respond("/sample?from=0")[1]),
    ]
    for kind, doc in docs:
        schema = _schema(kind)
        assert schema.validate(etree.fromstring(doc.encode())), (kind, schema.error_log)


_TEXT = {"execution": "ACTIVE", "availability": "AVAILABLE", "controller_mode": "AUTOMATIC"}


def test_every_signal_type_is_a_standard_data_item_that_validates_and_reads_back() -> None:
    """Each type of the catalogue served by the agent: probe and streams validate against the
    official XSDs (no element outside them), and andon's reader gets every value back."""
    items = [data_item(f"i{k}", n, n, t.units[0]) for k, (n, t) in enumerate(SIGNAL_TYPES.items())]
    assert not [d for d in items if ":" in d.type]  # standard types; x: only in subType
    agent = MTConnectAgent("vmc1", items)
    sent: dict[str, float | str] = {}
    for d in items:
        kind = SIGNAL_TYPES[d.name].kind
        v: float | str = (
            _TEXT.get(d.name, f"{d.name} Ø1")
            if kind == "text"
            else (12.0 if d.category == "EVENT" else 1.5)
        )
        agent.observe(d.id, v)
        sent[f"s/{d.name}"] = v
    for kind, doc in [("Devices", agent.probe()), ("Streams", agent.respond("/current")[1])]:
        schema = _schema(kind)
        assert schema.validate(etree.fromstring(doc.encode())), (kind, schema.error_log)

    async def go() -> dict[str, float | str]:
        await agent.start()
        cfg = MTConnectConfig(
            name="m",
            url=f"http://127.0.0.1:{agent.port}",
            items={d.id: f"s/{d.name}" for d in items},
            poll_s=0.01,
        )
        it = MTConnectConnector(cfg).batches(None).__aiter__()
        try:
            ((b, _),) = await _take(it, 1)
        finally:
            await it.aclose()  # type: ignore[attr-defined]
            await agent.stop()
        got: dict[str, float | str] = {
            b.names[i]: v for i, v in zip(b.index, b.value.tolist(), strict=True)
        }
        if b.text is not None:
            got.update(
                {b.text.names[i]: v for i, v in zip(b.text.index, b.text.value, strict=True)}
            )
        return got

    assert asyncio.run(go()) == sent


FOREIGN = b"""<?xml version="1.0"?>
<MTConnectStreams xmlns="urn:mtconnect.org:MTConnectStreams:2.0"><Header instanceId="9"
 firstSequence="1" nextSequence="11"/><Streams><DeviceStream name="d" uuid="d">
<ComponentStream component="Path" componentId="p"><Samples>
<PathPosition dataItemId="pos" sequence="1" timestamp="2026-01-01T00:00:00Z">1.5 -2 3</PathPosition>
<DisplacementTimeSeries dataItemId="ts" sequence="2" timestamp="2026-01-01T00:00:00Z"
 sampleCount="3" sampleRate="100">1 2 3</DisplacementTimeSeries>
<Load dataItemId="load" sequence="3" timestamp="2026-13-01T00:00:00Z">50</Load>
<Load dataItemId="load" sequence="4" timestamp="2026-01-01T00:00:01Z">51</Load>
</Samples><Events>
<Execution dataItemId="ex" sequence="5" timestamp="2026-01-01T00:00:00Z">ACTIVE</Execution>
<Availability dataItemId="av" sequence="6" timestamp="2026-01-01T00:00:00Z">UNAVAILABLE
</Availability>
<PartCount dataItemId="pc" sequence="7" timestamp="2026-01-01T00:00:00Z">12</PartCount>
</Events><Condition>
<Normal dataItemId="sys" sequence="8" timestamp="2026-01-01T00:00:00Z" type="SYSTEM"/>
<Fault dataItemId="temp" sequence="9" timestamp="2026-01-01T00:00:00Z" type="TEMPERATURE"
 nativeCode="E1">Overheat</Fault>
<Unavailable dataItemId="hyd" sequence="10" timestamp="2026-01-01T00:00:00Z" type="HYDRAULIC"/>
</Condition></ComponentStream></DeviceStream></Streams></MTConnectStreams>"""


def test_non_numeric_observations_map_or_are_refused_with_a_reason() -> None:
    doc = parse_streams(FOREIGN)
    got = {(o.item, o.component): o.value for o in doc.observations}
    texts = {o.item: o.text for o in doc.observations if o.text is not None}
    assert texts == {"ex": "ACTIVE"}  # an event's text travels as text (decision 0202)
    assert got == {
        ("ex", None): None,
        ("pos", "x"): 1.5,
        ("pos", "y"): -2.0,
        ("pos", "z"): 3.0,
        ("load", None): 51.0,  # the observation with a bad timestamp alone is refused
        ("av", None): None,  # UNAVAILABLE: a bad sample
        ("pc", None): 12.0,
        ("sys", None): 0.0,  # a Normal condition is a good 0, not BAD
        ("temp", None): 2.0,  # Fault
        ("hyd", None): None,
    }
    assert [(i, r) for i, r, _ in doc.refused] == [
        ("ts", "time_series"),
        ("load", "bad_timestamp"),
    ]


def test_categories_through_the_connector_events_as_text_conditions_as_levels() -> None:
    async def go() -> None:
        items = [
            ("ex", "execution", "EVENT", "EXECUTION"),
            ("pg", "program", "EVENT", "PROGRAM"),
            ("pc", "part_count", "EVENT", "PART_COUNT"),
            ("sys", "system", "CONDITION", "SYSTEM"),
            ("ld", "load", "SAMPLE", "LOAD"),
        ]
        agent = MTConnectAgent("vmc1", items)
        await agent.start()
        cfg = MTConnectConfig(
            name="m",
            url=f"http://127.0.0.1:{agent.port}",
            items={"ex": "s/ex", "pg": "s/pg", "pc": "s/pc", "sys": "s/sys", "ld": "s/ld"},
            poll_s=0.01,
        )
        c = MTConnectConnector(cfg)
        it = c.batches(None).__aiter__()
        try:
            agent.observe("ex", "ACTIVE")
            agent.observe("pg", "O1234 (ROUGH) Ø12")
            agent.observe("pc", 7)
            agent.observe("sys", "NORMAL")
            agent.observe("ld", "HIGH")  # text in a sample: refused, counted
            ((b, _),) = await _take(it, 1)
            assert sorted(zip([b.names[i] for i in b.index], b.value.tolist(), strict=True)) == [
                ("s/pc", 7.0),
                ("s/sys", 0.0),
            ]
            assert b.text is not None
            assert dict(
                zip([b.text.names[i] for i in b.text.index], b.text.value, strict=True)
            ) == {
                "s/ex": "ACTIVE",
                "s/pg": "O1234 (ROUGH) Ø12",
            }
            for item in ("sys", "ex", "pc"):
                agent.observe(item, None)
            nums: list[tuple[str, int]] = []
            texts: list[tuple[str, str, int]] = []
            while len(nums) + len(texts) < 3:
                ((b, _),) = await _take(it, 1)
                nums += [(b.names[i], int(q)) for i, q in zip(b.index, b.quality, strict=True)]
                if b.text is not None:
                    t = b.text
                    texts += [
                        (t.names[i], v, int(q))
                        for i, v, q in zip(t.index, t.value, t.quality, strict=True)
                    ]
            # an event's UNAVAILABLE is a bad text value, unless it was numeric (a count)
            assert sorted(nums) == [("s/pc", Quality.BAD), ("s/sys", Quality.BAD)]
            assert texts == [("s/ex", "UNAVAILABLE", Quality.BAD)]
            health = c.health.device(cfg.url)
            assert health.rejected == {"non_numeric": 1}
            assert health.text_points == 3
        finally:
            await it.aclose()  # type: ignore[attr-defined]
            await agent.stop()

    asyncio.run(go())


def test_https_and_chunked_answers_from_uvicorn(tmp_path: Path) -> None:
    """The agent's documents served by uvicorn over TLS in chunks (no Content-Length)."""
    ca = make_ca(tmp_path)
    leaf = tls_leaf(tmp_path, ca, "agent")
    agent = MTConnectAgent("vmc1", ITEMS)
    chunked: list[bool] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        target = scope["path"] + (
            "?" + scope["query_string"].decode() if scope["query_string"] else ""
        )
        status, body = agent.respond(target)
        await send({"type": "http.response.start", "status": status, "headers": []})
        data = body.encode()
        for k in range(0, len(data), 64):
            await send({"type": "http.response.body", "body": data[k : k + 64], "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        chunked.append(True)

    async def go() -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                log_level="warning",
                lifespan="off",
                ssl_certfile=str(leaf.cert),
                ssl_keyfile=str(leaf.key),
            )
        )
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            deadline = asyncio.get_running_loop().time() + 10
            while not server.started:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.01)
            agent.observe("s1", 7.5)
            cfg = MTConnectConfig(
                name="m",
                url=f"https://127.0.0.1:{port}",
                items={"s1": "s/x"},
                poll_s=0.01,
                ca_file=str(ca.cert),
            )
            c = MTConnectConnector(cfg)
            it = c.batches(None).__aiter__()
            ((b, _),) = await _take(it, 1)
            assert b.value.tolist() == [7.5] and chunked
            await it.aclose()  # type: ignore[attr-defined]
            # without the CA the agent's certificate is refused: TLS is really used
            bad = MTConnectConnector(cfg.model_copy(update={"ca_file": None}))
            it = bad.batches(None).__aiter__()
            task2 = asyncio.ensure_future(it.__anext__())
            while not bad.health.device(cfg.url).errors:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.01)
            assert "CERTIFICATE_VERIFY_FAILED" in bad.health.device(cfg.url).last_error
            task2.cancel()
        finally:
            server.should_exit = True
            await task

    asyncio.run(go())


class _BrokenSampleAgent(MTConnectAgent):
    """Answers /sample with a cut-off document (as a crashing agent or proxy may)."""

    def respond(self, target: str) -> tuple[int, str]:
        status, body = super().respond(target)
        return (status, body[: len(body) // 2]) if "/sample" in target else (status, body)


def test_an_unreadable_answer_is_not_asked_for_forever() -> None:
    async def go() -> None:
        agent = _BrokenSampleAgent("vmc1", ITEMS)
        await agent.start()
        cfg = MTConnectConfig(
            name="m", url=f"http://127.0.0.1:{agent.port}", items={"s1": "s/x"}, poll_s=0.01
        )
        c = MTConnectConnector(cfg)
        it = c.batches(None).__aiter__()
        try:
            agent.observe("s1", 1.0)
            await _take(it, 1)  # /current
            agent.observe("s1", 2.0)
            agent.observe("s1", 3.0)
            # three cut-off /sample answers, then a resync through /current, which holds the
            # last value only: the observation before it is counted lost
            ((b, _),) = await _take(it, 1)
            assert b.value.tolist() == [3.0]
            h = c.health.device(cfg.url)
            assert h.rejected == {"unreadable_document": 1, "sequence_gap": 1} and h.errors == 3
            assert c.lost == 1
        finally:
            await it.aclose()  # type: ignore[attr-defined]
            await agent.stop()

    asyncio.run(go())
