"""The app SDK: the protocol's frames byte by byte, the types' checks, the client and the
Context against a real gateway over a real socket, and how an app is started."""

from __future__ import annotations

import asyncio
import json
import os
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import andon.sdk
from andon.apps.gateway import AppGateway, plant_sites
from andon.apps.grant import APP_PERMISSIONS, AppGrant
from andon.apps.sinks import MemorySink
from andon.bus import InProcessBus, PartsCounted
from andon.model.loader import load_plant
from andon.model.types import SampleBatch, StateBatch
from andon.sdk import (
    MAX_FRAME,
    BadRequest,
    Context,
    Feedback,
    Finding,
    Forbidden,
    FrameTooLarge,
    ProtocolError,
    RemoteError,
    WorkOrder,
    load_entry,
)
from andon.sdk.protocol import decode_header, encode_message, error_for, read_message
from andon.sdk.runner import connect
from andon.store.duckdb_store import DuckDBStore

DEMO = Path(__file__).resolve().parents[2] / "src" / "andon" / "sim" / "plants" / "demo.yaml"
S = 1_000_000
MC = "tc1/machining/L1/MC-01"


def test_the_public_names_are_pinned() -> None:
    assert sorted(andon.sdk.__all__) == sorted(
        [
            "MAX_FRAME", "PROTOCOL_VERSION", "SOCKET_ENV", "BadRequest", "Client", "Context",
            "EventStream", "Feedback", "Finding", "Forbidden", "FrameTooLarge", "Internal",
            "Machine", "NotFound", "Part", "ProtocolError", "RateLimited", "RemoteError", "Site",
            "State", "WorkOrder", "load_entry", "run",
        ]
    )  # fmt: skip


def test_importing_the_sdk_loads_nothing_else_of_andon() -> None:
    code = "import sys, andon.sdk; print([m for m in sys.modules if m.startswith('andon')])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = eval(out.stdout)  # a list literal printed by the child
    assert loaded and all(m == "andon" or m.startswith("andon.sdk") for m in loaded), loaded


# --- frames ------------------------------------------------------------------------------------
FRAMES: list[tuple[dict[str, Any], bytes | None, bytes]] = [
    ({"id": 1, "result": {}}, None, b'\x00\x00\x00\x14{"id":1,"result":{}}'),
    ({"sub": 2, "event": {"a": "é"}}, None, b'\x00\x00\x00\x1c{"sub":2,"event":{"a":"\xc3\xa9"}}'),
    ({"id": 3, "result": {}}, b"\x01\x02",
     b'\x00\x00\x00\x1f{"id":3,"result":{},"binary":2}\x00\x00\x00\x02\x01\x02'),
    ({"id": 4, "result": []}, b"",
     b'\x00\x00\x00\x1f{"id":4,"result":[],"binary":0}\x00\x00\x00\x00'),
]  # fmt: skip
"""Messages and their exact bytes: a big-endian length, the JSON, then the binary frame."""


async def _reader(data: bytes) -> asyncio.StreamReader:
    r = asyncio.StreamReader()
    r.feed_data(data)
    r.feed_eof()
    return r


async def _read(data: bytes) -> tuple[dict[str, Any], bytes | None] | None:
    return await read_message(await _reader(data))


@pytest.mark.parametrize(("obj", "binary", "data"), FRAMES)
def test_messages_encode_to_these_bytes_and_back(
    obj: dict[str, Any], binary: bytes | None, data: bytes
) -> None:
    assert encode_message(obj, binary) == data

    async def back() -> None:
        reader = await _reader(data + data)
        assert await read_message(reader) == await read_message(reader)
        got = await _read(data)
        assert got is not None
        msg, blob = got
        assert blob == binary
        assert {k: v for k, v in msg.items() if k != "binary"} == obj

    asyncio.run(back())


BROKEN: list[tuple[str, bytes, str]] = [
    ("over the cap", struct.pack(">I", MAX_FRAME + 1), "over the 16,777,216-byte cap"),
    ("cut in the header", b"\x00\x00", "inside a frame header"),
    ("cut in the body", struct.pack(">I", 10) + b"{}", "after 2 of a frame's 10 bytes"),
    ("not JSON", struct.pack(">I", 3) + b"{a}", "not JSON"),
    ("not UTF-8", struct.pack(">I", 3) + b'"\xff"', "not UTF-8"),
    ("a number", struct.pack(">I", 1) + b"7", "a message is a JSON object, got int"),
    ("binary count wrong type", encode_message({"binary": "2"}), "'binary' must be a byte count"),
    ("binary missing", encode_message({"id": 1}, b"ab")[:-6], "closed before the binary part"),
    ("binary shorter", encode_message({"binary": 3}) + struct.pack(">I", 2) + b"ab",
     "2 bytes, 3 announced"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "data", "why"), BROKEN, ids=[b[0] for b in BROKEN])
def test_a_broken_stream_is_a_protocol_error_saying_what(name: str, data: bytes, why: str) -> None:
    with pytest.raises(ProtocolError, match=why.replace("(", r"\(")):
        asyncio.run(_read(data))


def test_a_clean_end_is_no_message_and_too_much_is_refused_before_sending() -> None:
    assert asyncio.run(_read(b"")) is None
    assert decode_header(struct.pack(">I", MAX_FRAME)) == MAX_FRAME
    with pytest.raises(FrameTooLarge, match="binary part of 16,777,217 bytes"):
        encode_message({"id": 1}, bytes(MAX_FRAME + 1))
    with pytest.raises(ProtocolError, match="cannot be sent as JSON"):
        encode_message({"id": 1, "v": float("nan")})


def test_error_codes_map_to_their_exceptions() -> None:
    assert isinstance(error_for("forbidden", "x"), Forbidden)
    assert isinstance(error_for("bad_request", "x"), BadRequest)
    odd = error_for("teapot", "short and stout")
    assert isinstance(odd, RemoteError) and odd.code == "teapot"
    assert str(error_for("forbidden", "site 'b'")) == "forbidden: site 'b'"


# --- types -------------------------------------------------------------------------------------
GOOD = {"type": "t", "site": "s", "start_us": 0, "end_us": 5, "score": 0.5, "title": "x"}
BAD_FINDINGS: list[tuple[dict[str, Any], str]] = [
    ({**GOOD, "score": 1.5}, "finding score: 1.5 is not within 0..1"),
    ({**GOOD, "score": float("nan")}, "finding score: nan is not within 0..1"),
    ({**GOOD, "score": True}, "finding score: expected a number"),
    ({**GOOD, "end_us": -1}, "finding end_us: -1 is before start_us 0"),
    ({**GOOD, "start_us": 1.5}, "finding start_us: expected an integer"),
    ({**GOOD, "title": " "}, "finding title: must not be empty"),
    ({**GOOD, "title": "x" * 201}, "finding title: 201 characters, at most 200"),
    ({**GOOD, "signals": "s/a"}, "finding signals: expected a list"),
    ({**GOOD, "signals": ["s"] * 51}, "finding signals: 51, at most 50"),
    ({**GOOD, "evidence": {"v": float("inf")}}, "finding evidence: not JSON"),
    ({**GOOD, "evidence": {"v": "x" * 70_000}}, "finding evidence: 70,008 bytes, at most 65,536"),
    ({**GOOD, "evidence": [1]}, "finding evidence: expected a JSON object"),
    ({**GOOD, "colour": "red"}, "finding: unknown field 'colour'"),
    ({k: v for k, v in GOOD.items() if k != "site"}, "finding site: required field is missing"),
]


@pytest.mark.parametrize(("obj", "why"), BAD_FINDINGS, ids=[b[1][:40] for b in BAD_FINDINGS])
def test_a_bad_finding_names_its_field(obj: dict[str, Any], why: str) -> None:
    with pytest.raises(ValueError, match=why.replace("(", r"\(")):
        Finding.from_json(obj)


def test_findings_work_orders_and_feedback_round_trip() -> None:
    f = Finding.from_json({**GOOD, "machine": "s/a/l/m", "signals": ["s/a/l/m/p"],
                           "evidence": {"kwh": 1.5}})  # fmt: skip
    assert Finding.from_json(json.loads(json.dumps(f.to_json()))) == f
    w = WorkOrder("s", "s/a/l/m", "fix", "now", 7)
    assert WorkOrder.from_json(w.to_json()) == w
    with pytest.raises(ValueError, match="work order title: required field is missing"):
        WorkOrder.from_json({"site": "s", "machine": "m"})
    fb = Feedback("f1", "confirmed", "yes", "user:1", 9)
    assert Feedback.from_json(fb.to_json()) == fb
    with pytest.raises(ValueError, match="feedback verdict: 'maybe'"):
        Feedback.from_json({**fb.to_json(), "verdict": "maybe"})


# --- the client and the Context over a real socket ---------------------------------------------
@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[DuckDBStore, Path]]:
    store = DuckDBStore.open(tmp_path / "t.duckdb")
    sig = f"{MC}/power"

    async def fill() -> None:
        await store.append("demo", SampleBatch.build([sig], [0] * 5, range(0, 5 * S, S), [3.0] * 5))
        await store.append_states("demo", StateBatch.build([MC], [0], [0], [5 * S], [0]))

    asyncio.run(fill())
    yield store, tmp_path
    asyncio.run(store.close())


def test_a_context_reads_writes_and_follows_through_the_gateway(
    world: tuple[DuckDBStore, Path],
) -> None:
    store, tmp = world
    plant = load_plant(DEMO)
    sink, bus = MemorySink(), InProcessBus()
    grant = AppGrant("demo", "i1", "probe", "1.0.0", frozenset({"tc1"}),
                     frozenset(APP_PERMISSIONS), {"x": 2})  # fmt: skip

    async def body() -> None:
        gw = AppGateway(
            grant, store, bus, sink, lambda: 5 * S, sites=plant_sites([plant]), once=True
        )
        await gw.serve(tmp / "s.sock")
        ctx = await connect(str(tmp / "s.sock"), "probe", "1.0.0")
        try:
            assert isinstance(ctx, Context)
            assert (ctx.tenant, ctx.sites, ctx.once, ctx.settings) == (
                "demo",
                ("tc1",),
                True,
                {"x": 2},
            )
            assert await ctx.now() == 5 * S
            assert [s.key for s in await ctx.list_sites()] == ["tc1"]
            mc = next(m for m in await ctx.machines("tc1") if m.path == MC)
            assert mc.signal_of_type("power") == f"{MC}/power" and mc.signal_of_type("x") is None
            table = await ctx.telemetry("tc1", [f"{MC}/power"], 0, 5 * S)
            assert table.column("value").to_pylist() == [3.0] * 5
            assert [(s.state, s.end_us) for s in await ctx.states("tc1", 0, 10 * S)] == [
                ("running", 5 * S)
            ]
            assert await ctx.parts("tc1", 0, 10 * S) == []
            with pytest.raises(Forbidden, match="site 'tc2' is not granted"):
                await ctx.states("tc2", 0, 10 * S)
            fid = await ctx.emit(Finding(type="t", site="tc1", machine=MC, start_us=0, end_us=S,
                                         score=0.3, title="t"))  # fmt: skip
            sink.add_feedback("i1", Feedback(fid, "confirmed", "", "u", 3))
            assert [f.verdict for f in await ctx.feedback(0)] == ["confirmed"]
            assert await ctx.propose_work_order("tc1", MC, "fix") == "w1"
            await ctx.set_state("k", [1, 2])
            assert await ctx.get_state("k") == [1, 2] and await ctx.get_state("z", 7) == 7
            assert await ctx.get_settings() == {"x": 2}
            await ctx.log("warning", "careful")
            assert [x.message for x in gw.logs()] == ["careful"]
            async with ctx.live("tc1") as events:
                await bus.publish("demo", ("site", "tc1", "parts"), PartsCounted(MC, 1, 4, 0))
                event = await events.next(timeout=10)
                assert event is not None and event["good"] == 4
            with pytest.raises(BadRequest, match="level"):
                await ctx.log("loud", "x")
        finally:
            await ctx.client.close()
            await gw.close()
        with pytest.raises(ConnectionError, match="no app gateway"):
            await connect(str(tmp / "s.sock"), "probe", "1.0.0")
        gw2 = AppGateway(grant, store, bus, sink, lambda: 0)
        await gw2.serve(tmp / "s.sock")
        try:
            with pytest.raises(Forbidden, match="serves app 'probe', not 'other'"):
                await connect(str(tmp / "s.sock"), "other", "1.0.0")
        finally:
            await gw2.close()

    asyncio.run(body())


def test_a_lost_gateway_fails_pending_calls(world: tuple[DuckDBStore, Path]) -> None:
    store, tmp = world
    grant = AppGrant("demo", "i1", "probe", "1.0.0", frozenset({"tc1"}), frozenset())

    async def body() -> None:
        gw = AppGateway(grant, store, InProcessBus(), MemorySink(), lambda: 0)
        await gw.serve(tmp / "s.sock")
        ctx = await connect(str(tmp / "s.sock"), "probe", "1.0.0")
        await gw.close()
        deadline = asyncio.get_running_loop().time() + 10
        while True:  # the close reaches the client within a call or two
            try:
                await ctx.now()
            except ConnectionError:
                break
            assert asyncio.get_running_loop().time() < deadline
        await ctx.client.close()

    asyncio.run(body())


# --- starting an app ---------------------------------------------------------------------------
def test_an_entry_is_an_async_function_in_a_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "myapp"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "app.py").write_text("async def main(ctx):\n    pass\n\ndef sync(ctx):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_entry("myapp.app:main").__name__ == "main"
    for entry, why in [
        ("myapp.app", "expected 'package.module:function'"),
        ("nothere.app:main", "cannot import 'nothere.app'"),
        ("myapp.app:absent", "has no 'absent'"),
        ("myapp.app:sync", "must be an 'async def' function"),
    ]:
        with pytest.raises(ValueError, match=why):
            load_entry(entry)


def test_python_m_andon_sdk_says_what_is_missing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANDON_APP")}
    bad = subprocess.run([sys.executable, "-m", "andon.sdk", "nope.app:main"], capture_output=True,
                         text=True, env=env, cwd=tmp_path)  # fmt: skip
    assert bad.returncode == 2 and "cannot import 'nope.app'" in bad.stderr
    (tmp_path / "ok.py").write_text("async def main(ctx):\n    pass\n")
    unset = subprocess.run([sys.executable, "-m", "andon.sdk", "ok:main"], capture_output=True,
                           text=True, env=env, cwd=tmp_path)  # fmt: skip
    assert unset.returncode == 1 and "ANDON_APP_SOCKET is not set" in unset.stderr


def test_the_guides_example_app_runs(world: tuple[DuckDBStore, Path]) -> None:
    """The example of docs/apps.md ("The SDK"), run as an app: MC-01 drew 3 kW then 25 kW."""
    store, tmp = world
    guide = (Path(__file__).resolve().parents[2] / "docs" / "apps.md").read_text("utf-8")
    code = guide.split("## The SDK", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/apps.md", "exec"), namespace)
    plant = load_plant(DEMO)
    sink = MemorySink()
    grant = AppGrant("demo", "i1", "probe", "1.0.0", frozenset({"tc1"}),
                     frozenset({"telemetry:read", "findings:write"}))  # fmt: skip

    async def body() -> None:
        sig = f"{MC}/power"
        await store.append("demo", SampleBatch.build([sig], [0], [30 * S], [25.0]))
        now = 3_600_000_000 + 10 * S
        gw = AppGateway(grant, store, InProcessBus(), sink, lambda: now, sites=plant_sites([plant]))
        await gw.serve(tmp / "s.sock")
        ctx = await connect(str(tmp / "s.sock"), "probe", "1.0.0")
        try:
            await namespace["main"](ctx)
        finally:
            await ctx.client.close()
            await gw.close()
        assert [(f.finding.type, f.finding.machine) for f in sink.findings] == [("overload", MC)]
        assert gw.stats()["forbidden"] == 0

    asyncio.run(body())
