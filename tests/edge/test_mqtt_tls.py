"""MQTT over TLS with user names and passwords, against a private Mosquitto with a TLS
listener (certificates made at test time) and a ``mosquitto_passwd`` file: the MQTT JSON
connector, the Sparkplug host and the edge uplink work over it; a CA that did not sign the
broker's certificate, or a wrong password, is a clear error and counted retries."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest

from andon.connect.counting import DEFAULT_START, counter_batch
from andon.connect.mqtt import MqttJsonConfig, MqttJsonConnector
from andon.edge.agent import make_uplink
from andon.edge.buffer import EdgeBuffer
from andon.edge.config import parse_edge_config
from andon.model.types import SampleBatch
from andon.wire.net import tls_context
from tests.connect.pki import Pair, make_ca, tls_leaf
from tests.edge.broker import TlsBroker
from tests.edge.helpers import KEY, KEY_ID, Platform, signals, until

USERS = {KEY_ID: KEY.rsplit("_", 1)[1], "sensors": "sensor-pass"}
"""The edge logs in with its platform edge key: the key id and the secret."""


@dataclass(frozen=True)
class Tls:
    broker: TlsBroker
    ca: Pair
    other_ca: Pair


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[Tls]:
    ca = make_ca(tmp_path / "pki", "ca")
    other = make_ca(tmp_path / "pki", "other-ca")
    server = tls_leaf(tmp_path / "pki", ca, "broker")
    b = TlsBroker(tmp_path, server.cert, server.key, USERS)
    try:
        b.start()
        yield Tls(b, ca, other)
    finally:
        b.close()


def _json_connector(t: Tls, ca: Path, password: str) -> MqttJsonConnector:
    return MqttJsonConnector(
        MqttJsonConfig.model_validate(
            {
                "name": "sensors",
                "port": t.broker.port,
                "tls": True,
                "ca_file": str(ca),
                "username": "sensors",
                "password": password,
                "topics": [{"filter": "plant/+/temp", "signal": "s/a/{1}/temp"}],
            }
        )
    )


@contextlib.asynccontextmanager
async def _consuming(
    c: MqttJsonConnector, got: list[SampleBatch]
) -> AsyncIterator[asyncio.Task[None]]:
    async def consume() -> None:
        async for b, _ in c.batches(None):
            got.append(b)

    task = asyncio.create_task(consume())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_json_connector_reads_over_tls_with_a_password(tls: Tls) -> None:
    async def go() -> None:
        c = _json_connector(tls, tls.ca.cert, USERS["sensors"])
        got: list[SampleBatch] = []
        async with _consuming(c, got):
            device = f"127.0.0.1:{tls.broker.port}"
            await until(lambda: c.health.device(device).connected, 10, "the TLS connection")
            ctx = ssl.create_default_context(cafile=str(tls.ca.cert))
            async with aiomqtt.Client(
                "127.0.0.1",
                tls.broker.port,
                username="sensors",
                password=USERS["sensors"],
                tls_context=ctx,
            ) as pub:
                await pub.publish("plant/oven/temp", json.dumps({"value": 181.5}), qos=1)
            await until(lambda: bool(got), 10, "the sample")
        assert got[0].signal_at(0) == "s/a/oven/temp" and got[0].value[0] == 181.5

    asyncio.run(go())


@pytest.mark.parametrize(
    ("case", "expect"),
    [("bad_ca", "TLS certificate is not trusted"), ("bad_password", "refused the user name")],
)
def test_json_connector_refusals_are_clear_and_retried(tls: Tls, case: str, expect: str) -> None:
    async def go() -> None:
        if case == "bad_ca":
            c = _json_connector(tls, tls.other_ca.cert, USERS["sensors"])
        else:
            c = _json_connector(tls, tls.ca.cert, "wrong")
        device = f"127.0.0.1:{tls.broker.port}"
        async with _consuming(c, []) as task:
            await until(lambda: c.health.device(device).errors >= 3, 20, "three refusals")
            assert not task.done()
        h = c.health.devices[device]
        assert not h.connected and expect in h.last_error, h.last_error

    asyncio.run(go())


def test_a_missing_ca_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"CA file .*nope\.pem"):
        tls_context(str(tmp_path / "nope.pem"))


def _site(t: Tls, ca: Path, password_env: str, data: Path) -> str:
    return (
        "edge: {id: edge-1}\n"
        f"data_dir: {data}\n"
        f"uplink: {{host: 127.0.0.1, port: {t.broker.port}, tls: true, ca_file: {ca},\n"
        f"  key_env: {password_env}, ack_timeout_s: 1.0}}\n"
        "connectors: []\n"
    )


def test_uplink_forwards_over_tls_with_a_password(
    tls: Tls, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = signals(4)
    monkeypatch.setenv("ANDON_TEST_UPLINK_KEY", KEY)
    cfg = parse_edge_config(_site(tls, tls.ca.cert, "ANDON_TEST_UPLINK_KEY", tmp_path / "e"))

    async def go() -> None:
        # the platform's ingest service sits inside, on the plain listener
        platform = Platform(tmp_path, tls.broker.plain_port, names)
        buf = await EdgeBuffer.open(tmp_path / "edge.db")
        uplink = make_uplink(buf, cfg)
        platform.start()
        task = asyncio.create_task(uplink.run())
        try:
            for k in range(0, 3000, 1000):
                await buf.put("gen", counter_batch(tuple(names), k, k + 1000, DEFAULT_START, 1000))
            await until(lambda: platform.gateway.stats.points_stored == 3000, 20, "stored")
            assert uplink.stats.connects == 1 and uplink.stats.connect_failures == 0
            got = await platform.values(DEFAULT_START, DEFAULT_START + 10**9)
            assert sum(len(v) for v in got.values()) == 3000
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await buf.close()
            await platform.close()

    asyncio.run(go())


def test_uplink_with_a_bad_ca_says_so_and_keeps_the_data(
    tls: Tls, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANDON_TEST_UPLINK_KEY", KEY)
    cfg = parse_edge_config(_site(tls, tls.other_ca.cert, "ANDON_TEST_UPLINK_KEY", tmp_path / "e"))

    async def go() -> None:
        buf = await EdgeBuffer.open(tmp_path / "edge.db")
        uplink = make_uplink(buf, cfg)
        await buf.put("gen", counter_batch(("a/b",), 0, 10, DEFAULT_START, 1000))
        task = asyncio.create_task(uplink.run())
        try:
            await until(lambda: uplink.stats.connect_failures >= 3, 20, "three failed connects")
            assert not task.done()
            assert "TLS certificate is not trusted" in uplink.stats.last_error
            assert (await buf.stats()).pending_points == 10
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await buf.close()

    asyncio.run(go())
