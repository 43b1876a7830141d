"""The app gateway's reach, tested on the raw socket (decision 0900): an app instance reaches
exactly what its installation grants. Forged site ids, machines, signals and tenants, missing
permissions, broken frames and floods are each refused with their code and counted, and the
gateway keeps serving. The store holds the same paths for another site of the tenant and for
another tenant, with values that tell them apart."""

from __future__ import annotations

import asyncio
import contextlib
import io
import struct
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc
import pytest

from andon.apps.gateway import AppGateway, plant_sites, platform_sites
from andon.apps.grant import APP_PERMISSIONS, AppGrant
from andon.apps.manifest import AppManifest, parse_manifest
from andon.apps.sinks import MemorySink
from andon.bus import InProcessBus, PartsCounted, StateChanged
from andon.model.loader import load_plant
from andon.model.plant import Plant
from andon.model.types import PartBatch, SampleBatch, StateBatch
from andon.sdk import Feedback
from andon.sdk.protocol import encode_message, read_message
from andon.store.duckdb_store import DuckDBStore

DEMO = Path(__file__).resolve().parents[2] / "src" / "andon" / "sim" / "plants" / "demo.yaml"
S = 1_000_000
MC = "tc1/machining/L1/MC-01"
SIG = f"{MC}/power"
MC2 = "tc2/machining/L1/MC-01"
SIG2 = f"{MC2}/power"
VALUE = {("demo", "tc1"): 1.0, ("demo", "tc2"): 2.0, ("other", "tc1"): 9.0}
"""The power each (tenant, site) stored: a read shows whose rows it got."""

MANIFEST = """\
id: probe
name: {en: Probe, zh-TW: 探測}
vendor: tests
version: 1.0.0
licence: Apache-2.0
category: production
permissions: [telemetry:read, findings:write]
limits: {findings_per_min: 3}
finding_types:
  - {id: idle, name: {en: Idle, zh-TW: 閒置}}
price: {model: free}
entry: probe.app:main
"""


@pytest.fixture(scope="module")
def plants() -> dict[tuple[str, str], Plant]:
    a = load_plant(DEMO)
    a2 = a.model_copy(update={"site": a.site.model_copy(update={"id": "tc2"})})
    b = a.model_copy(update={"tenant": "other"})
    return {("demo", "tc1"): a, ("demo", "tc2"): a2, ("other", "tc1"): b}


@pytest.fixture
def store(tmp_path: Path, plants: dict[tuple[str, str], Plant]) -> Iterator[DuckDBStore]:
    s = DuckDBStore.open(tmp_path / "t.duckdb")

    async def fill() -> None:
        for (tenant, site), value in VALUE.items():
            mc = f"{site}/machining/L1/MC-01"
            await s.append(
                tenant,
                SampleBatch.build(
                    [f"{mc}/power"], [0] * 10, range(10 * S, 20 * S, S), [value] * 10
                ),
            )
            await s.append_states(
                tenant, StateBatch.build([mc], [0], [10 * S], [20 * S], [1], ["x"])
            )
            await s.append_parts(
                tenant, PartBatch.build([mc], [0], [15 * S], ["A-100"], [int(value)], [0])
            )

    asyncio.run(fill())
    yield s
    asyncio.run(s.close())


class Raw:
    """One raw connection: requests by hand, replies and pushed events as they come."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    async def send(self, method: str, params: dict[str, Any] | None = None) -> int:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        self.writer.write(encode_message(msg))
        await self.writer.drain()
        return self.next_id

    async def reply(self) -> tuple[dict[str, Any], bytes | None] | None:
        """The next reply (events on the way are kept in ``events``); None at the end."""
        while True:
            got = await asyncio.wait_for(read_message(self.reader), 10)
            if got is None or "sub" not in got[0]:
                return got
            self.events.append(got[0]["event"])

    async def ask(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        rid = await self.send(method, params)
        got = await self.reply()
        assert got is not None, f"{method}: connection closed"
        assert got[0]["id"] == rid
        return got[0]

    async def result(self, method: str, params: dict[str, Any] | None = None) -> Any:
        msg = await self.ask(method, params)
        assert "error" not in msg, msg
        return msg["result"]

    async def table(self, params: dict[str, Any]) -> pa.Table:
        await self.send("telemetry.read", params)
        got = await self.reply()
        assert got is not None and "error" not in got[0], got
        assert got[1] is not None
        with pa.ipc.open_stream(io.BytesIO(got[1])) as r:
            return r.read_all()

    async def ended(self) -> bool:
        """Whether the gateway closed the connection (waits up to 10 s for it)."""
        return await asyncio.wait_for(read_message(self.reader), 10) is None


@asynccontextmanager
async def gateway(
    store: DuckDBStore,
    plants: dict[tuple[str, str], Plant],
    tmp: Path,
    *,
    tenant: str = "demo",
    permissions: frozenset[str] = frozenset(APP_PERMISSIONS),
    manifest: AppManifest | None = None,
    bus: InProcessBus | None = None,
    sink: MemorySink | None = None,
    monotonic: Any = None,
    max_samples: int | None = None,
) -> AsyncIterator[tuple[AppGateway, Path]]:
    grant = AppGrant(tenant, "inst-1", "probe", "1.0.0", frozenset({"tc1"}), permissions, {"k": 1})
    extra: dict[str, Any] = {} if monotonic is None else {"monotonic": monotonic}
    if max_samples is not None:
        extra["max_samples_per_read"] = max_samples
    gw = AppGateway(
        grant, store, bus or InProcessBus(), sink or MemorySink(), lambda: 20 * S,
        manifest=manifest, sites=plant_sites(plants.values()), **extra,
    )  # fmt: skip
    path = tmp / "gw.sock"
    await gw.serve(path)
    try:
        yield gw, path
    finally:
        await gw.close()
        while _open:
            raw = _open.pop()
            raw.writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await raw.writer.wait_closed()


_open: list[Raw] = []
"""The connections a test made, closed when its gateway closes."""


async def connect(path: Path, hello: bool = True, app_id: str = "probe") -> Raw:
    reader, writer = await asyncio.open_unix_connection(str(path))
    raw = Raw(reader, writer)
    _open.append(raw)
    if hello:
        got = await raw.result("hello", {"protocol": 1, "app_id": app_id, "version": "1.0.0"})
        assert got["tenant"] and got["sites"]
    return raw


RANGE = {"start_us": 0, "end_us": 30 * S}


def _read(site: Any, *signals: str, **extra: Any) -> dict[str, Any]:
    return {"site": site, "signals": list(signals), **RANGE, **extra}


def _finding(**over: Any) -> dict[str, Any]:
    base = {"type": "idle", "site": "tc1", "start_us": 0, "end_us": 1, "score": 0.5, "title": "t"}
    return {**base, **over}


TEL, STATES, EMIT, ORDER = "telemetry.read", "states.read", "findings.emit", "workorders.propose"
FORGED: list[tuple[str, str, dict[str, Any], str]] = [
    ("another site of the tenant", TEL, _read("tc2", SIG2), "forbidden"),
    ("a signal of another site", TEL, _read("tc1", SIG2), "forbidden"),
    ("a path climbing out", TEL, _read("tc1", f"tc1/../{SIG2}"), "forbidden"),
    ("a site only another tenant has", TEL, _read("zz9", SIG), "forbidden"),
    ("a tenant named", TEL, _read("tc1", SIG, tenant="other"), "bad_request"),
    ("a list of sites", TEL, _read(["tc1", "tc2"], SIG), "bad_request"),
    ("a wildcard signal", TEL, _read("tc1", "tc1/>"), "forbidden"),
    ("machines of another site", "machines.list", {"site": "tc2"}, "forbidden"),
    ("states of another site's machine", STATES, {"site": "tc1", "machine": MC2, **RANGE},
     "forbidden"),
    ("states of another site", STATES, {"site": "tc2", **RANGE}, "forbidden"),
    ("parts of a machine not in the site", "parts.read",
     {"site": "tc1", "machine": f"{MC}X", **RANGE}, "forbidden"),
    ("KPIs of another site", "kpi.read", {"site": "tc2", **RANGE}, "forbidden"),
    ("live data of another site", "live.subscribe", {"site": "tc2"}, "forbidden"),
    ("a finding on another site", EMIT, _finding(site="tc2"), "forbidden"),
    ("a finding on another site's machine", EMIT, _finding(machine=MC2), "forbidden"),
    ("a finding drawing another site's signal", EMIT, _finding(signals=[SIG2]), "forbidden"),
    ("a finding naming a tenant", EMIT, _finding(tenant="other"), "bad_request"),
    ("a finding of an undeclared type", EMIT, _finding(type="nope"), "bad_request"),
    ("a finding scored 2", EMIT, _finding(score=2), "bad_request"),
    ("a work order for another site's machine", ORDER,
     {"site": "tc1", "machine": MC2, "title": "t"}, "forbidden"),
    ("a work order on another site", ORDER, {"site": "tc2", "machine": MC2, "title": "t"},
     "forbidden"),
    ("a range backwards", STATES, {"site": "tc1", "start_us": 5, "end_us": 1}, "bad_request"),
    ("no such method", "tenants.list", {}, "not_found"),
    ("a second hello", "hello", {"protocol": 1, "app_id": "other_app", "version": "1"},
     "not_found"),
    ("another instance's subscription", "live.unsubscribe", {"sub": 1}, "not_found"),
]  # fmt: skip


def test_forged_requests_are_refused_and_counted(
    store: DuckDBStore, plants: dict[tuple[str, str], Plant], tmp_path: Path
) -> None:
    manifest = parse_manifest(MANIFEST)

    async def body() -> None:
        async with gateway(store, plants, tmp_path, manifest=manifest) as (gw, path):
            raw = await connect(path)
            for name, method, params, code in FORGED:
                msg = await raw.ask(method, params)
                assert msg.get("error", {}).get("code") == code, f"{name}: {msg}"
                assert msg["error"]["message"], name
            # after all that, the connection still answers, with the tenant's own rows only
            table = await raw.table({"site": "tc1", "signals": [SIG], **RANGE})
            assert table.column("value").to_pylist() == [1.0] * 10
            stats = gw.stats()
            for code in ("forbidden", "bad_request", "not_found"):
                assert stats[code] == sum(1 for c in FORGED if c[3] == code), code
            assert stats["findings"] == 0 and stats["work_orders"] == 0
            assert stats["protocol_errors"] == 0

    asyncio.run(body())


@pytest.mark.parametrize("tenant", ["demo", "other"])
def test_each_tenant_reads_its_own_rows_of_the_same_paths(
    store: DuckDBStore, plants: dict[tuple[str, str], Plant], tmp_path: Path, tenant: str
) -> None:
    async def body() -> None:
        async with gateway(store, plants, tmp_path, tenant=tenant) as (_, path):
            raw = await connect(path)
            table = await raw.table({"site": "tc1", "signals": [SIG], **RANGE})
            assert table.column_names == ["signal", "ts", "value", "quality"]
            assert set(table.column("value").to_pylist()) == {VALUE[(tenant, "tc1")]}
            assert table.column("ts").to_pylist() == list(range(10 * S, 20 * S, S))
            states = await raw.result("states.read", {"site": "tc1", **RANGE})
            assert [(s["machine"], s["state"], s["reason"]) for s in states] == [
                (MC, "starved", "x")
            ]
            parts = await raw.result("parts.read", {"site": "tc1", "machine": MC, **RANGE})
            assert [p["good"] for p in parts] == [int(VALUE[(tenant, "tc1")])]

    asyncio.run(body())


def test_without_its_permission_a_method_is_forbidden(
    store: DuckDBStore, plants: dict[tuple[str, str], Plant], tmp_path: Path
) -> None:
    needing: list[tuple[str, dict[str, Any]]] = [
        ("telemetry.read", {"site": "tc1", "signals": [SIG], **RANGE}),
        ("states.read", {"site": "tc1", **RANGE}),
        ("parts.read", {"site": "tc1", **RANGE}),
        ("kpi.read", {"site": "tc1", **RANGE}),
        ("live.subscribe", {"site": "tc1"}),
        ("workorders.propose", {"site": "tc1", "machine": MC, "title": "t"}),
        ("feedback.list", {"since_us": 0}),
    ]
    free: list[tuple[str, dict[str, Any]]] = [
        ("time.now", {}),
        ("sites.list", {}),
        ("machines.list", {"site": "tc1"}),
        ("settings.get", {}),
        ("state.get", {"key": "a"}),
        ("log", {"level": "info", "message": "hi"}),
    ]

    async def body() -> None:
        perms = frozenset({"findings:write"})
        async with gateway(store, plants, tmp_path, permissions=perms) as (gw, path):
            raw = await connect(path)
            for method, params in needing:
                msg = await raw.ask(method, params)
                assert msg["error"]["code"] == "forbidden", method
                assert "permission" in msg["error"]["message"]
            for method, params in free:
                assert "result" in await raw.ask(method, params), method
            assert gw.stats()["forbidden"] == len(needing)
            assert (await raw.result("time.now"))["now_us"] == 20 * S
            assert await raw.result("settings.get") == {"k": 1}
            sites = await raw.result("sites.list")
            assert sites == [{"id": "tc1", "key": "tc1", "name": "Taichung plant 1"}]

    asyncio.run(body())


def test_hello_comes_first_and_names_this_app(
    store: DuckDBStore, plants: dict[tuple[str, str], Plant], tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway(store, plants, tmp_path) as (gw, path):
            raw = await connect(path, hello=False)
            msg = await raw.ask("telemetry.read", {"site": "tc1", "signals": [SIG], **RANGE})
            assert msg["error"]["code"] == "bad_request" and "hello" in msg["error"]["message"]
            assert await raw.ended()
            raw = await connect(path, hello=False)
            msg = await raw.ask("hello", {"protocol": 1, "app_id": "someone_else", "version": "1"})
            assert msg["error"]["code"] == "forbidden"
            assert await raw.ended()
            raw = await connect(path, hello=False)
            msg = await raw.ask("hello", {"protocol": 1, "app_id": "probe", "version": "0.9.0"})
            assert msg["error"]["code"] == "forbidden" and "probe 1.0.0" in msg["error"]["message"]
            assert await raw.ended()
            raw = await connect(path, hello=False)
            msg = await raw.ask("hello", {"protocol": 2, "app_id": "probe", "version": "1"})
            assert msg["error"]["code"] == "bad_request" and "protocol" in msg["error"]["message"]
            assert await raw.ended()
            raw = await connect(path)  # and a proper one still works
            assert (await raw.result("time.now"))["now_us"] == 20 * S
            assert gw.stats()["connections"] == 5

    asyncio.run(body())


BROKEN: list[tuple[str, bytes]] = [
    ("a frame over 16 MiB announced", struct.pack(">I", 16 * 1024 * 1024 + 1)),
    ("a request frame over 2 MiB announced", struct.pack(">I", 2 * 1024 * 1024 + 1)),
    ("a request with a binary part", encode_message({"id": 1, "method": "log"}, b"x")),
    ("not JSON", struct.pack(">I", 5) + b"hello"),
    ("not UTF-8", struct.pack(">I", 2) + b"\xff\xfe"),
    ("a JSON list", struct.pack(">I", 2) + b"[]"),
    ("a negative binary count", encode_message({"id": 1, "method": "log", "binary": -1})),
    ("no integer id", encode_message({"id": "1", "method": "time.now", "params": {}})),
]


@pytest.mark.parametrize(("name", "data"), BROKEN, ids=[b[0] for b in BROKEN])
def test_a_broken_frame_ends_that_connection_only(
    store: DuckDBStore, plants: dict[tuple[str, str], Plant], tmp_path: Path, name: str, data: bytes
) -> None:
    async def body() -> None:
        async with gateway(store, plants, tmp_path) as (gw, path):
            other = await connect(path)
            raw = await connect(path)
            raw.writer.write(data)
            await raw.writer.drain()
            got = await raw.reply()
            assert got is not None and got[0]["id"] is None
            assert got[0]["error"]["code"] == "bad_request"
            assert await raw.ended()
            assert gw.stats()["protocol_errors"] == 1
            assert (await other.result("time.now"))["now_us"] == 20 * S

    asyncio.run(body())


def test_findings_over_the_manifest_rate_are_refused(
    store: DuckDBStore, plants: dict[tuple[str, str], Plant], tmp_path: Path
) -> None:
    now = [0.0]
    sink = MemorySink()
    finding = {"type": "idle", "site": "tc1", "machine": MC, "signals": [SIG],
               "start_us": 10 * S, "end_us": 20 * S, "score": 0.5, "title": "idle"}  # fmt: skip

    async def body() -> None:
        manifest = parse_manifest(MANIFEST)
        async with gateway(
            store, plants, tmp_path, manifest=manifest, sink=sink, monotonic=lambda: now[0]
        ) as (gw, path):
            raw = await connect(path)
            codes = []
            for _ in range(5):
                msg = await raw.ask("findings.emit", finding)
                codes.append(msg.get("error", {}).get("code", "ok"))
            assert codes == ["ok", "ok", "ok", "rate_limited", "rate_limited"]
            now[0] += 61.0
            assert "finding_id" in await raw.result("findings.emit", finding)
            assert gw.stats()["rate_limited"] == 2 and gw.stats()["findings"] == 4
            assert [f.finding.machine for f in sink.findings] == [MC] * 4
            assert {f.tenant_id for f in sink.findings} == {"demo"}

    asyncio.run(body())


def test_a_read_over_the_sample_cap_is_refused_before_it_is_read(
    store: DuckDBStore, plants: dict[tuple[str, str], Plant], tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway(store, plants, tmp_path, max_samples=6) as (gw, path):
            raw = await connect(path)
            msg = await raw.ask(TEL, _read("tc1", SIG))
            assert msg["error"]["code"] == "bad_request"
            assert msg["error"]["message"].startswith("10 samples in the range, over the 6")
            table = await raw.table({**_read("tc1", SIG), "end_us": 16 * S})
            assert table.num_rows == 6
            assert gw.stats()["bad_request"] == 1

    asyncio.run(body())


def test_state_is_kept_per_instance_and_capped(
    store: DuckDBStore, plants: dict[tuple[str, str], Plant], tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway(store, plants, tmp_path) as (gw, path):
            raw = await connect(path)
            assert await raw.result("state.get", {"key": "k"}) == {"found": False, "value": None}
            await raw.result("state.set", {"key": "k", "value": {"until": 5, "xs": [1, 2]}})
            assert (await raw.result("state.get", {"key": "k"}))["value"] == {
                "until": 5,
                "xs": [1, 2],
            }
            big = "x" * (600 * 1024)
            await raw.result("state.set", {"key": "a", "value": big})
            msg = await raw.ask("state.set", {"key": "b", "value": big})
            assert msg["error"]["code"] == "bad_request" and "limit" in msg["error"]["message"]
            assert (await raw.result("state.get", {"key": "b"}))["found"] is False
            assert gw.stats()["bad_request"] == 1

    asyncio.run(body())


def test_live_events_come_from_the_granted_site_of_the_tenant_only(
    store: DuckDBStore, plants: dict[tuple[str, str], Plant], tmp_path: Path
) -> None:
    bus = InProcessBus()

    async def body() -> None:
        async with gateway(store, plants, tmp_path, bus=bus) as (_, path):
            raw = await connect(path)
            sub = (await raw.result("live.subscribe", {"site": "tc1"}))["sub"]
            await bus.publish("demo", ("site", "tc1", "parts"), PartsCounted(MC, 1, 1, 0))
            await bus.publish("demo", ("site", "tc2", "parts"), PartsCounted(MC2, 2, 2, 0))
            await bus.publish("other", ("site", "tc1", "parts"), PartsCounted(MC, 3, 9, 0))
            await bus.publish("demo", ("site", "tc1", "states"), StateChanged(MC, 3, 4))
            deadline = asyncio.get_running_loop().time() + 10
            while len(raw.events) < 2:
                assert asyncio.get_running_loop().time() < deadline, raw.events
                got = await asyncio.wait_for(read_message(raw.reader), 10)
                assert got is not None and got[0]["sub"] == sub
                raw.events.append(got[0]["event"])
            assert [(e["type"], e.get("good")) for e in raw.events] == [
                ("parts", 1),
                ("state", None),
            ]
            assert await raw.result("live.unsubscribe", {"sub": sub}) == {}
            await bus.publish("demo", ("site", "tc1", "parts"), PartsCounted(MC, 5, 1, 0))
            assert (await raw.result("time.now"))["now_us"] == 20 * S  # nothing pushed since
            assert len(raw.events) == 2

    asyncio.run(body())


def test_live_events_an_app_does_not_keep_up_with_are_dropped_and_counted(
    store: DuckDBStore, plants: dict[tuple[str, str], Plant], tmp_path: Path
) -> None:
    bus = InProcessBus()

    async def body() -> None:
        async with gateway(store, plants, tmp_path, bus=bus) as (gw, path):
            raw = await connect(path)
            await raw.result("live.subscribe", {"site": "tc1"})
            for i in range(1500):  # no await yields: the pump has no chance to take any
                await bus.publish("demo", ("site", "tc1", "parts"), PartsCounted(MC, i, 1, 0))
            stats = gw.stats()
            assert (stats["subscriptions"], stats["events_dropped"]) == (1, 500)

    asyncio.run(body())


def test_feedback_and_work_orders_go_through_the_sink(
    store: DuckDBStore, plants: dict[tuple[str, str], Plant], tmp_path: Path
) -> None:
    sink = MemorySink()

    async def body() -> None:
        async with gateway(store, plants, tmp_path, sink=sink) as (gw, path):
            raw = await connect(path)
            emitted = await raw.result("findings.emit", _finding(type="any"))
            fid = emitted["finding_id"]
            sink.add_feedback("inst-1", Feedback(fid, "rejected", "a break", "op:1", 7))
            rows = await raw.result("feedback.list", {"since_us": 5})
            assert rows == [{"finding_id": fid, "verdict": "rejected", "comment": "a break",
                             "by": "op:1", "at_us": 7}]  # fmt: skip
            assert await raw.result("feedback.list", {"since_us": 8}) == []
            wid = await raw.result(
                "workorders.propose", {"site": "tc1", "machine": MC, "title": "fix"}
            )
            assert sink.work_orders[0].id == wid["work_order_id"]
            assert sink.work_orders[0].order.machine == MC
            assert gw.stats()["work_orders"] == 1

    asyncio.run(body())


def test_an_instance_holds_a_few_connections_at_most(
    store: DuckDBStore, plants: dict[tuple[str, str], Plant], tmp_path: Path
) -> None:
    async def body() -> None:
        async with gateway(store, plants, tmp_path) as (gw, path):
            held = [await connect(path) for _ in range(4)]
            extra = await connect(path, hello=False)
            got = await extra.reply()
            assert got is not None and got[0]["error"]["code"] == "rate_limited"
            assert await extra.ended()
            assert gw.stats()["connections_refused"] == 1
            assert (await held[0].result("time.now"))["now_us"] == 20 * S

    asyncio.run(body())


def test_platform_sites_are_the_tenants_own_by_their_ids(
    store: DuckDBStore, plants: dict[tuple[str, str], Plant], tmp_path: Path
) -> None:
    """Sites of the metadata database: the app names a site by its id, the gateway reads its
    stored plant model (key, machines, signals); another tenant's site id resolves to
    nothing, so the grant's forged site is refused as any other."""
    from andon.platform import Database
    from andon.platform.service import Platform

    async def body() -> None:
        db = Database(f"sqlite:///{tmp_path / 'meta.db'}")
        platform = Platform(db, lambda: 0)
        try:
            await platform.start()
            yaml = DEMO.read_text(encoding="utf-8")
            await platform.create_tenant("demo", "Demo")
            await platform.create_tenant("other", "Other")
            mine = await platform.create_site("demo", yaml)
            theirs = await platform.create_site("other", yaml)
            resolve = platform_sites(platform)
            info = await resolve("demo", mine["id"])
            assert info is not None and (info.id, info.key) == (mine["id"], "tc1")
            assert SIG in info.signals and info.machine(MC) is not None
            assert await resolve("demo", theirs["id"]) is None
            assert await resolve("demo", "no-such-site") is None
            both = frozenset({mine["id"], theirs["id"]})
            grant = AppGrant("demo", "i", "probe", "1.0.0", both, frozenset(APP_PERMISSIONS))
            gw = AppGateway(grant, store, InProcessBus(), MemorySink(), lambda: 0, sites=resolve)
            await gw.serve(tmp_path / "p.sock")
            try:
                raw = await connect(tmp_path / "p.sock")
                table = await raw.table(_read(mine["id"], SIG))
                assert set(table.column("value").to_pylist()) == {VALUE[("demo", "tc1")]}
                msg = await raw.ask(TEL, _read(theirs["id"], SIG))  # granted by mistake
                assert msg["error"]["code"] == "not_found"  # not the tenant's: no such site
            finally:
                await gw.close()
                while _open:
                    _open.pop().writer.close()
        finally:
            await db.close()

    asyncio.run(body())


def test_each_reading_permission_is_a_platform_permission() -> None:
    """The app permissions checked per site map onto the platform's own permissions."""
    from andon.apps.grant import PLATFORM_PERMISSION
    from andon.platform.permissions import KEY_KIND_PERMISSIONS, KeyKind, Permission

    assert set(PLATFORM_PERMISSION) <= set(APP_PERMISSIONS)
    mapped = {Permission(v) for v in PLATFORM_PERMISSION.values()}
    assert mapped <= KEY_KIND_PERMISSIONS[KeyKind.APP]  # no more than an app API key reads
