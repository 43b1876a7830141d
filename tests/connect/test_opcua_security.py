"""OPC UA with Basic256Sha256 SignAndEncrypt, application certificates and user/password,
against the simulator's asyncua server hardened the way a plant server would be: only that
policy, only trusted client certificates, only known users. Refusals are clear errors in the
connector's health and counted retries, never a crash."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from andon.connect.opcua import OpcUaConfig, OpcUaConnector, OpcUaNode
from andon.model.types import SampleBatch
from andon.sim.servers.opcua import OpcUaSecurity, OpcUaSimServer
from tests.connect.pki import Pair, opcua_app_cert

CLIENT_URI = "urn:andon:test:edge"


@dataclass(frozen=True)
class Pki:
    server: Pair
    trusted_client: Pair
    untrusted_client: Pair
    security: OpcUaSecurity


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("opcua-pki")
    server = opcua_app_cert(d / "server", "andon-sim", "urn:andon:sim:server", server=True)
    trusted = opcua_app_cert(d / "client", "edge", CLIENT_URI, server=False)
    untrusted = opcua_app_cert(d / "stranger", "edge", CLIENT_URI, server=False)
    (d / "trusted").mkdir()
    shutil.copy(trusted.cert, d / "trusted" / "edge.pem")
    sec = OpcUaSecurity(
        server.cert, server.key, d / "trusted", "urn:andon:sim:server", {"edge": "pa55-word"}
    )
    return Pki(server, trusted, untrusted, sec)


def _connector(
    url: str, node: str, client: Pair, password: str, pin: Path | None
) -> OpcUaConnector:
    return OpcUaConnector(
        OpcUaConfig(
            name="secure",
            url=url,
            security="Basic256Sha256",
            certificate=str(client.cert),
            private_key=str(client.key),
            server_certificate=None if pin is None else str(pin),
            username="edge",
            password=password,
            publishing_ms=50,
            timeout_s=2.0,
            nodes=[OpcUaNode(node_id=node, signal="s/vmc/speed", sampling_ms=0)],
        )
    )


async def _until(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def _run(c: OpcUaConnector, got: list[SampleBatch]) -> asyncio.Task[None]:
    async def consume() -> None:
        async for b, _ in c.batches(None):
            got.append(b)

    return asyncio.create_task(consume())


@pytest.mark.parametrize("pinned", [True, False])
def test_reads_with_sign_and_encrypt_and_a_password(pki: Pki, pinned: bool) -> None:
    async def go() -> None:
        server = OpcUaSimServer({"vmc": ["speed"]}, security=pki.security)
        await server.start()
        await server.set("vmc", "speed", 1234.5)
        pin = pki.server.cert if pinned else None
        c = _connector(
            server.url, server.node_id("vmc", "speed"), pki.trusted_client, "pa55-word", pin
        )
        got: list[SampleBatch] = []
        task = await _run(c, got)
        try:
            await _until(lambda: any(1234.5 in b.value for b in got), 20, "the first value")
            await server.set("vmc", "speed", 99.0)
            await _until(lambda: any(99.0 in b.value for b in got), 10, "a change")
            h = c.health.devices[server.url]
            assert h.connected and h.errors == 0
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await server.stop()

    asyncio.run(go())


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("wrong_password", "refused the user name or password"),
        ("untrusted_certificate", "does not trust this client's certificate"),
    ],
)
def test_refusals_are_clear_errors_and_counted_retries(pki: Pki, case: str, expect: str) -> None:
    async def go() -> None:
        server = OpcUaSimServer({"vmc": ["speed"]}, security=pki.security)
        await server.start()
        node = server.node_id("vmc", "speed")
        if case == "wrong_password":
            c = _connector(server.url, node, pki.trusted_client, "guess", pki.server.cert)
        else:
            c = _connector(server.url, node, pki.untrusted_client, "pa55-word", pki.server.cert)
        got: list[SampleBatch] = []
        task = await _run(c, got)
        try:
            await _until(
                lambda: c.health.device(server.url).errors >= 3, 30, "three refused attempts"
            )
            assert not task.done(), "the connector must keep retrying, not end"
            h = c.health.devices[server.url]
            assert not h.connected and not got
            assert expect in h.last_error, h.last_error
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await server.stop()

    asyncio.run(go())
