"""Sparkplug B: payload bytes (hand tables, cross-checked with a second, minimal schema
built in the test) and the host application's state machine."""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as paho
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from paho.mqtt.enums import CallbackAPIVersion

from andon.connect.sparkplug.connector import SparkplugConfig, SparkplugConnector
from andon.connect.sparkplug.host import SparkplugHost
from andon.connect.sparkplug.payload import (
    BOOLEAN,
    DOUBLE,
    FLOAT,
    INT8,
    INT32,
    INT64,
    STRING,
    UINT32,
    Metric,
    Payload,
    PayloadError,
    decode_payload,
    encode_payload,
)
from andon.model.types import Quality
from tests.edge.broker import Broker

NOW_US = 1_767_225_600_000_000
NOW_MS = NOW_US // 1000

# (payload, its protobuf bytes)
TABLE = [
    (Payload(timestamp=1), bytes.fromhex("0801")),
    (Payload(seq=255), bytes.fromhex("18ff01")),
    (
        Payload(metrics=[Metric(alias=3, datatype=DOUBLE, value=2.5)]),
        bytes.fromhex("120d" + "1003" + "200a" + "690000000000000440"),
    ),
    (
        Payload(metrics=[Metric(name="t", datatype=FLOAT, value=1.0)]),
        bytes.fromhex("120a" + "0a0174" + "2009" + "650000803f"),
    ),
    (  # negative Int8 travels as a two's-complement uint32
        Payload(metrics=[Metric(alias=1, datatype=INT8, value=-1)]),
        bytes.fromhex("120a" + "1001" + "2001" + "50ffffffff0f"),
    ),
    (
        Payload(metrics=[Metric(alias=1, datatype=INT64, value=-2)]),
        bytes.fromhex("120f" + "1001" + "2004" + "58feffffffffffffffff01"),
    ),
    (
        Payload(metrics=[Metric(alias=7, datatype=BOOLEAN, value=True, is_historical=True)]),
        bytes.fromhex("1208" + "1007" + "200b" + "2801" + "7001"),
    ),
    (
        Payload(metrics=[Metric(alias=2, datatype=UINT32, is_null=True)]),
        bytes.fromhex("1206" + "1002" + "2007" + "3801"),
    ),
]


def _google_payload_class() -> type:
    """The Sparkplug B Payload message, built from its schema with protobuf's descriptor API."""
    f = descriptor_pb2.FileDescriptorProto(name="spb_test.proto", package="spb", syntax="proto2")
    payload = f.message_type.add(name="Payload")
    T = descriptor_pb2.FieldDescriptorProto
    opt = T.LABEL_OPTIONAL
    for name, num, typ in [
        ("timestamp", 1, T.TYPE_UINT64),
        ("seq", 3, T.TYPE_UINT64),
        ("uuid", 4, T.TYPE_STRING),
        ("body", 5, T.TYPE_BYTES),
    ]:
        payload.field.add(name=name, number=num, type=typ, label=opt)
    payload.field.add(
        name="metrics",
        number=2,
        type=T.TYPE_MESSAGE,
        label=T.LABEL_REPEATED,
        type_name=".spb.Payload.Metric",
    )
    metric = payload.nested_type.add(name="Metric")
    for name, num, typ in [
        ("name", 1, T.TYPE_STRING),
        ("alias", 2, T.TYPE_UINT64),
        ("timestamp", 3, T.TYPE_UINT64),
        ("datatype", 4, T.TYPE_UINT32),
        ("is_historical", 5, T.TYPE_BOOL),
        ("is_transient", 6, T.TYPE_BOOL),
        ("is_null", 7, T.TYPE_BOOL),
        ("int_value", 10, T.TYPE_UINT32),
        ("long_value", 11, T.TYPE_UINT64),
        ("float_value", 12, T.TYPE_FLOAT),
        ("double_value", 13, T.TYPE_DOUBLE),
        ("boolean_value", 14, T.TYPE_BOOL),
        ("string_value", 15, T.TYPE_STRING),
    ]:
        metric.field.add(name=name, number=num, type=typ, label=opt)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    cls: type = message_factory.GetMessageClass(pool.FindMessageTypeByName("spb.Payload"))
    return cls


@pytest.mark.parametrize(("payload", "raw"), TABLE)
def test_payload_bytes(payload: Payload, raw: bytes) -> None:
    assert encode_payload(payload) == raw
    assert decode_payload(raw) == payload
    # Google's runtime reads our bytes the same way
    g = _google_payload_class()()
    g.ParseFromString(raw)
    assert g.SerializeToString() == raw


def test_google_encoded_birth_decodes() -> None:
    g = _google_payload_class()(timestamp=NOW_MS, seq=0)
    m = g.metrics.add(name="Motor/Speed", alias=5, datatype=DOUBLE, double_value=1450.5)
    m2 = g.metrics.add(name="count", alias=6, datatype=INT32, int_value=(-5) & 0xFFFFFFFF)
    assert m.alias == 5 and m2.alias == 6
    p = decode_payload(g.SerializeToString())
    assert [(x.name, x.alias, x.value) for x in p.metrics] == [
        ("Motor/Speed", 5, 1450.5),
        ("count", 6, -5),
    ]


MALFORMED = [
    ("truncated varint", bytes.fromhex("08ff"), "malformed_payload"),
    ("truncated metric", bytes.fromhex("120d1003"), "malformed_payload"),
    ("wrong wire type for seq", bytes.fromhex("1a0101"), "wrong_type"),
    ("double with wire type varint", bytes.fromhex("1204" + "1003" + "6801"), "wrong_type"),
    ("bad wire type", bytes.fromhex("0f"), "malformed_payload"),
    ("field zero", bytes.fromhex("0001"), "malformed_payload"),
    ("name not utf-8", bytes.fromhex("1203" + "0a01ff"), "malformed_payload"),
]


@pytest.mark.parametrize(("case", "raw", "reason"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_payloads(case: str, raw: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as info:
        decode_payload(raw)
    assert info.value.reason == reason, case


# -- host application --------------------------------------------------------------------------

G = "spBv1.0/g"


def _birth(bd: int = 0) -> bytes:
    return encode_payload(
        Payload(timestamp=NOW_MS, seq=0, metrics=[Metric("bdSeq", datatype=INT64, value=bd)])
    )


def _dbirth(seq: int) -> bytes:
    return encode_payload(
        Payload(
            timestamp=NOW_MS,
            seq=seq,
            metrics=[
                Metric("speed", 1, datatype=DOUBLE, value=1.5),
                Metric("mode", 2, datatype=STRING, value="auto"),
                Metric("on", 3, datatype=BOOLEAN, value=True),
            ],
        )
    )


def _ddata(seq: int, *metrics: Metric, ts: int = NOW_MS) -> bytes:
    return encode_payload(Payload(timestamp=ts, seq=seq, metrics=list(metrics)))


def _host() -> SparkplugHost:
    h = SparkplugHost("g", "s/a", {"n1/d1/on": "s/a/d1/running"})
    h.handle(f"{G}/NBIRTH/n1", _birth(), NOW_US)
    return h


def test_births_and_data_by_alias() -> None:
    h = _host()
    b, cmds = h.handle(f"{G}/DBIRTH/n1/d1", _dbirth(1), NOW_US)
    assert cmds == [] and sorted(b.names) == ["s/a/d1/running", "s/a/d1/speed"]
    assert h.rejected == {}
    assert b.text is not None  # the String metric travels as text (decision 0202)
    assert (b.text.names, b.text.value, b.text.quality.tolist()) == (
        ("s/a/d1/mode",),
        ("auto",),
        [0],
    )
    # by alias, without its datatype: still text, unchanged
    b, _ = h.handle(f"{G}/DDATA/n1/d1", _ddata(2, Metric(alias=2, value="Ø12 manual ✓")), NOW_US)
    assert len(b) == 0 and b.text is not None and b.text.value == ("Ø12 manual ✓",)
    b, _ = h.handle(
        f"{G}/DDATA/n1/d1", _ddata(3, Metric(alias=2, is_null=True, datatype=STRING)), NOW_US
    )
    assert b.text is not None and (b.text.value, b.text.quality.tolist()) == (("",), [2])
    b, cmds = h.handle(
        f"{G}/DDATA/n1/d1", _ddata(4, Metric(alias=1, value=2.5, datatype=DOUBLE)), NOW_US
    )
    assert (b.names, b.value.tolist(), b.ts.tolist(), cmds) == (
        ("s/a/d1/speed",),
        [2.5],
        [NOW_US],
        [],
    )


def test_seq_gap_asks_for_rebirth_once_and_refuses_until_born() -> None:
    h = _host()
    h.handle(f"{G}/DBIRTH/n1/d1", _dbirth(1), NOW_US)
    b, cmds = h.handle(f"{G}/DDATA/n1/d1", _ddata(5, Metric(alias=1, value=1.0)), NOW_US)
    assert len(b) == 0 and [c.topic for c in cmds] == [f"{G}/NCMD/n1"]
    rebirth = decode_payload(cmds[0].payload)
    assert [(m.name, m.value) for m in rebirth.metrics] == [("Node Control/Rebirth", True)]
    b, cmds = h.handle(f"{G}/DDATA/n1/d1", _ddata(6, Metric(alias=1, value=1.0)), NOW_US)
    assert len(b) == 0 and cmds == []  # asked once until the node is born again
    assert h.rejected["seq_gap"] == 1 and h.rejected["before_birth"] == 1
    h.handle(f"{G}/NBIRTH/n1", _birth(1), NOW_US)
    h.handle(f"{G}/DBIRTH/n1/d1", _dbirth(1), NOW_US)
    b, _ = h.handle(f"{G}/DDATA/n1/d1", _ddata(2, Metric(alias=1, value=7.0)), NOW_US)
    assert b.value.tolist() == [7.0]


def test_seq_wraps_at_256() -> None:
    h = _host()
    h.handle(f"{G}/DBIRTH/n1/d1", _dbirth(1), NOW_US)
    for s in [*range(2, 256), 0, 1]:
        b, cmds = h.handle(f"{G}/DDATA/n1/d1", _ddata(s, Metric(alias=1, value=s)), NOW_US)
        assert len(b) == 1 and not cmds
    assert h.rejected == {}


def test_malformed_and_suspicious_metrics_are_counted_and_the_rest_kept() -> None:
    h = _host()
    h.handle(f"{G}/DBIRTH/n1/d1", _dbirth(1), NOW_US)
    b, cmds = h.handle(
        f"{G}/DDATA/n1/d1",
        _ddata(
            2,
            Metric(alias=1, value=1.0, datatype=DOUBLE),
            Metric(alias=99, value=1.0, datatype=DOUBLE),  # unknown alias
            Metric(alias=1, value=math.nan, datatype=DOUBLE, timestamp=NOW_MS + 1),  # NaN
            Metric(alias=1, value=3.0, datatype=DOUBLE, timestamp=NOW_MS + 86_400_000),  # future
            Metric(alias=1, value=4.0, datatype=DOUBLE, timestamp=NOW_MS - 10 * 365 * 86_400_000),
            Metric(alias=3, is_null=True, datatype=BOOLEAN, timestamp=NOW_MS + 2),
            Metric(
                alias=1, value=5.0, datatype=DOUBLE, timestamp=NOW_MS - 60_000, is_historical=True
            ),
        ),
        NOW_US,
    )
    assert not cmds
    finite = np.isfinite(b.value)
    assert sorted(b.value[finite].tolist()) == [1.0, 5.0]
    assert b.quality[finite].tolist() == [Quality.GOOD] * 2
    assert b.quality[~finite].tolist() == [Quality.BAD]  # the null boolean: no value, bad
    assert h.historical == 1
    assert h.rejected == {
        "unknown_alias": 1,
        "non_finite_value": 1,
        "bad_timestamp": 2,
    }
    # a truncated payload is counted and asks for a rebirth; the stream goes on after it
    b, cmds = h.handle(f"{G}/DDATA/n1/d1", b"\x12\x0d\x10", NOW_US)
    assert len(b) == 0 and h.rejected["malformed_payload"] == 1 and len(cmds) == 1


def test_deaths_mark_metrics_bad_and_stale_deaths_are_ignored() -> None:
    h = _host()
    h.handle(f"{G}/DBIRTH/n1/d1", _dbirth(1), NOW_US)
    b, _ = h.handle(f"{G}/DDEATH/n1/d1", _ddata(2, ts=NOW_MS + 5), NOW_US)
    assert sorted(b.names) == ["s/a/d1/running", "s/a/d1/speed"]
    assert bool(np.all(b.quality == Quality.BAD)) and bool(np.all(np.isnan(b.value)))
    assert b.ts.tolist() == [NOW_US + 5000] * 2
    # an NDEATH from an older session (bdSeq 7, current is 0) is ignored
    death = encode_payload(Payload(metrics=[Metric("bdSeq", datatype=INT64, value=7)]))
    b, _ = h.handle(f"{G}/NDEATH/n1", death, NOW_US)
    assert len(b) == 0 and h.rejected["stale_death"] == 1
    death = encode_payload(Payload(metrics=[Metric("bdSeq", datatype=INT64, value=0)]))
    h.handle(f"{G}/NDEATH/n1", death, NOW_US)
    b, cmds = h.handle(f"{G}/DDATA/n1/d1", _ddata(3, Metric(alias=1, value=1.0)), NOW_US)
    assert len(b) == 0 and len(cmds) == 1  # dead node: refused, rebirth asked


def test_data_before_any_birth_asks_for_rebirth() -> None:
    h = SparkplugHost("g", "s/a")
    b, cmds = h.handle(f"{G}/NDATA/n9", _ddata(4, Metric(alias=1, value=1.0)), NOW_US)
    assert len(b) == 0 and [c.topic for c in cmds] == [f"{G}/NCMD/n9"]
    assert h.rejected == {"before_birth": 1}


# -- issue 12: payloads written by Google's protobuf runtime, as other vendors' nodes do ---------


def _g_payload(seq: int | None, ts: int = NOW_MS) -> Any:
    g = _google_payload_class()(timestamp=ts)
    if seq is not None:
        g.seq = seq
    return g


def test_alias_without_datatype_takes_the_birth_datatype() -> None:
    h = _host()
    birth = _g_payload(1)
    birth.metrics.add(name="i8", alias=1, datatype=INT8, int_value=0)
    birth.metrics.add(name="i32", alias=2, datatype=INT32, int_value=0)
    birth.metrics.add(name="i64", alias=3, datatype=INT64, long_value=0)
    birth.metrics.add(name="at", alias=4, datatype=13, long_value=NOW_MS)  # DateTime
    b, _ = h.handle(f"{G}/DBIRTH/n1/d1", birth.SerializeToString(), NOW_US)
    assert len(b) == 4 and h.rejected == {}
    data = _g_payload(2)
    data.metrics.add(alias=1, int_value=(-1) & 0xFFFFFFFF)
    data.metrics.add(alias=2, int_value=(-5) & 0xFFFFFFFF)
    data.metrics.add(alias=3, long_value=(-7) & 0xFFFFFFFFFFFFFFFF)
    data.metrics.add(alias=4, long_value=NOW_MS + 1)
    b, cmds = h.handle(f"{G}/DDATA/n1/d1", data.SerializeToString(), NOW_US)
    got = dict(zip([b.names[i] for i in b.index], b.value.tolist(), strict=True))
    assert got == {"s/a/d1/i8": -1, "s/a/d1/i32": -5, "s/a/d1/i64": -7, "s/a/d1/at": NOW_MS + 1}
    assert b.quality.tolist() == [Quality.GOOD] * 4 and not cmds and h.rejected == {}


def test_missing_seq_reads_clearly() -> None:
    h = _host()
    data = _g_payload(None)
    data.metrics.add(alias=1, datatype=DOUBLE, double_value=1.0)
    b, cmds = h.handle(f"{G}/NDATA/n1", data.SerializeToString(), NOW_US)
    assert len(b) == 0 and len(cmds) == 1 and h.rejected == {"missing_seq": 1}


@pytest.mark.parametrize("algorithm", ["DEFLATE", "GZIP", None])
def test_compressed_payloads_are_inflated(algorithm: str | None) -> None:
    import gzip
    import zlib

    h = _host()
    h.handle(f"{G}/DBIRTH/n1/d1", _dbirth(1), NOW_US)
    inner = _ddata(2, Metric(alias=1, value=2.5, datatype=DOUBLE))
    outer = _g_payload(None)
    outer.uuid = "SPBV1.0_COMPRESSED"
    outer.body = gzip.compress(inner) if algorithm == "GZIP" else zlib.compress(inner)
    if algorithm is not None:
        outer.metrics.add(name="algorithm", datatype=STRING, string_value=algorithm)
    b, cmds = h.handle(f"{G}/DDATA/n1/d1", outer.SerializeToString(), NOW_US)
    assert (b.names, b.value.tolist(), cmds) == (("s/a/d1/speed",), [2.5], [])
    assert h.rejected == {}


def test_unknown_compression_is_counted_not_a_seq_gap() -> None:
    h = _host()
    h.handle(f"{G}/DBIRTH/n1/d1", _dbirth(1), NOW_US)
    outer = _g_payload(None)
    outer.uuid = "SPBV1.0_COMPRESSED"
    outer.body = b"\x00\x01"
    outer.metrics.add(name="algorithm", datatype=STRING, string_value="LZ4")
    b, cmds = h.handle(f"{G}/DDATA/n1/d1", outer.SerializeToString(), NOW_US)
    assert len(b) == 0 and not cmds
    # the refused message carried seq 2; seq 3 follows without a gap
    b, cmds = h.handle(f"{G}/DDATA/n1/d1", _ddata(3, Metric(alias=1, value=4.0)), NOW_US)
    assert b.value.tolist() == [4.0] and not cmds
    assert h.rejected == {"unsupported_compression": 1}


def test_will_ndeath_is_stamped_after_the_last_data() -> None:
    h = _host()
    h.handle(f"{G}/DBIRTH/n1/d1", _dbirth(1), NOW_US)
    later = NOW_US + 60_000_000
    b, _ = h.handle(f"{G}/DDATA/n1/d1", _ddata(2, Metric(alias=1, value=1.0)), later)
    will = _g_payload(None, ts=NOW_MS - 3_600_000)  # registered an hour before: at connect
    will.metrics.add(name="bdSeq", datatype=INT64, long_value=0)
    b, _ = h.handle(f"{G}/NDEATH/n1", will.SerializeToString(), later + 1_000_000)
    assert sorted(b.names) == ["s/a/d1/running", "s/a/d1/speed"]
    assert b.ts.tolist() == [later + 1_000_000] * 2 and bool(np.all(b.quality == Quality.BAD))


def test_paho_node_dying_without_ndeath_is_seen_dead(broker: Broker) -> None:
    """A paho-mqtt edge node registers its NDEATH as will, publishes, and drops its socket:
    Mosquitto publishes the will and the host marks the node's metrics BAD after the data."""
    asyncio.run(_paho_node_dies(broker))


async def _paho_node_dies(broker: Broker) -> None:
    conn = SparkplugConnector(
        SparkplugConfig(name="spb", port=broker.port, group="g", prefix="s/a")
    )
    seen: list[tuple[str, float, int, int]] = []

    async def collect() -> None:
        async for b, _ in conn.batches(None):
            for i, t, v, q in zip(b.index, b.ts, b.value, b.quality, strict=True):
                seen.append((b.names[i], float(v), int(q), int(t)))

    task = asyncio.create_task(collect())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    node = paho.Client(CallbackAPIVersion.VERSION2, client_id="paho-node")
    host_online = threading.Event()

    def on_message(c: paho.Client, u: Any, m: paho.MQTTMessage) -> None:
        if b'"online": true' in m.payload:
            host_online.set()

    node.on_message = on_message
    old_ms = int(time.time() * 1000) - 3_600_000
    will = _g_payload(None, ts=old_ms)
    will.metrics.add(name="bdSeq", datatype=INT64, long_value=3)
    node.will_set(f"{G}/NDEATH/n1", will.SerializeToString(), qos=1)
    node.connect("127.0.0.1", broker.port)
    node.loop_start()
    node.subscribe("spBv1.0/STATE/andon", qos=1)
    # as Sparkplug asks of edge nodes: wait for the host's STATE (sent once it subscribed)
    while not host_online.is_set():
        assert loop.time() < deadline, "host never came online"
        await asyncio.sleep(0.02)
    now_ms = int(time.time() * 1000)
    birth = _g_payload(0, ts=now_ms)
    birth.metrics.add(name="bdSeq", datatype=INT64, long_value=3)
    birth.metrics.add(name="temp", alias=1, datatype=INT32, int_value=0)
    node.publish(f"{G}/NBIRTH/n1", birth.SerializeToString(), qos=1).wait_for_publish(5)
    data = _g_payload(1, ts=now_ms)
    data.metrics.add(alias=1, int_value=(-5) & 0xFFFFFFFF)
    node.publish(f"{G}/NDATA/n1", data.SerializeToString(), qos=1).wait_for_publish(5)
    while not any(v == -5 for _, v, _, _ in seen):
        assert loop.time() < deadline, f"no data: {seen}, {conn.host.rejected}"
        await asyncio.sleep(0.02)
    node.loop_stop()
    sock = node.socket()
    assert sock is not None
    sock.close()  # no DISCONNECT: the broker publishes the will
    while not any(q == Quality.BAD for _, _, q, _ in seen):
        assert loop.time() < deadline, f"no death: {seen}, {conn.host.rejected}"
        await asyncio.sleep(0.02)
    task.cancel()
    temp = [s for s in seen if s[0] == "s/a/n1/temp"]
    assert (temp[-2][1], temp[-2][2]) == (-5.0, Quality.GOOD) and temp[-1][2] == Quality.BAD
    assert temp[-1][3] > temp[-2][3]  # the death is later than the last value


# -- Eclipse Tahu's JavaScript encoder (npm sparkplug-payload) -----------------------------------

TAHU = Path(__file__).parent.parent / "sparkplug_js"


def _tahu(payloads: list[dict[str, Any]]) -> list[bytes]:
    """The payloads encoded by Eclipse Tahu's sparkplug-payload under Node.js."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise RuntimeError("the Sparkplug interoperability test needs Node.js and npm on PATH")
    if not (TAHU / "node_modules" / "sparkplug-payload").is_dir():
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--silent"], cwd=TAHU, check=True
        )
    out = subprocess.run(
        [node, "encode.mjs"],
        cwd=TAHU,
        input=json.dumps(payloads),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return [bytes.fromhex(h) for h in json.loads(out.stdout)]


def test_payloads_from_eclipse_tahu_js() -> None:
    nbirth, dbirth, ddata, deflated, gzipped, ndeath = _tahu(
        [
            {
                "timestamp": NOW_MS,
                "seq": 0,
                "metrics": [{"name": "bdSeq", "type": "Int64", "value": 4}],
            },
            {
                "timestamp": NOW_MS,
                "seq": 1,
                "metrics": [
                    {"name": "i8", "alias": 1, "type": "Int8", "value": 0},
                    {"name": "i32", "alias": 2, "type": "Int32", "value": 0},
                    {"name": "at", "alias": 3, "type": "DateTime", "value": NOW_MS},
                    {"name": "f", "alias": 4, "type": "Double", "value": 0.5},
                ],
            },
            {
                "timestamp": NOW_MS + 1,
                "seq": 2,
                "metrics": [
                    {"alias": 1, "type": "Int8", "value": -1},
                    {"alias": 2, "type": "Int32", "value": -5},
                    {"alias": 3, "type": "DateTime", "value": NOW_MS + 1},
                ],
            },
            {
                "timestamp": NOW_MS + 2,
                "seq": 3,
                "compress": "DEFLATE",
                "metrics": [{"alias": 4, "type": "Double", "value": 2.25}],
            },
            {
                "timestamp": NOW_MS + 3,
                "seq": 4,
                "compress": "GZIP",
                "metrics": [{"alias": 2, "type": "Int32", "value": -7}],
            },
            {  # the will: stamped when the node connected
                "timestamp": NOW_MS - 3_600_000,
                "metrics": [{"name": "bdSeq", "type": "Int64", "value": 4}],
            },
        ]
    )
    h = SparkplugHost("g", "s/a")
    got: list[tuple[str, float, int, int]] = []
    for kind, raw, now in [
        ("NBIRTH/n1", nbirth, NOW_US),
        ("DBIRTH/n1/d1", dbirth, NOW_US),
        ("DDATA/n1/d1", ddata, NOW_US),
        ("DDATA/n1/d1", deflated, NOW_US),
        ("DDATA/n1/d1", gzipped, NOW_US),
        ("NDEATH/n1", ndeath, NOW_US + 10_000_000),
    ]:
        b, cmds = h.handle(f"{G}/{kind}", raw, now)
        assert not cmds, (kind, h.rejected)
        got += [
            (b.names[i], float(v), int(q), int(t))
            for i, v, q, t in zip(b.index, b.value, b.quality, b.ts, strict=True)
        ]
    assert h.rejected == {}
    good = [(n, v) for n, v, q, _ in got if q == Quality.GOOD]
    assert good[4:] == [
        ("s/a/d1/i8", -1.0),
        ("s/a/d1/i32", -5.0),
        ("s/a/d1/at", float(NOW_MS + 1)),
        ("s/a/d1/f", 2.25),
        ("s/a/d1/i32", -7.0),
    ]
    dead = [(n, t) for n, _, q, t in got if q == Quality.BAD]
    assert sorted(dead) == [(f"s/a/d1/{n}", NOW_US + 10_000_000) for n in ("at", "f", "i32", "i8")]
