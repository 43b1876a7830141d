"""The OPC UA connector (asyncua): subscriptions with sampling interval and deadband, a
polling fallback, reconnection with a new session, status codes mapped to quality."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Literal, Protocol

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.crypto import uacrypto
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.ua.uaerrors import UaError, UaStatusCodeError
from pydantic import BaseModel, ConfigDict, Field

from andon.connect.base import Health, Manifest, within
from andon.connect.net import Backoff
from andon.model.types import Quality, SampleBatch, to_micros

__all__ = [
    "MANIFEST",
    "Endpoint",
    "OpcUaConfig",
    "OpcUaConnector",
    "OpcUaNode",
    "describe_error",
    "open_client",
    "quality_of",
]

log = logging.getLogger("andon.connect.opcua")

MANIFEST = Manifest(
    domain="opcua",
    name="OPC UA client",
    protocol="opc-ua-binary",
    requirements=("asyncua>=1.1",),
    iot_class="local_push",
)


class OpcUaNode(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    node_id: str = Field(min_length=1, description='e.g. "ns=2;s=vmc1.spindle_speed"')
    signal: str = Field(min_length=1)
    sampling_ms: float = Field(100.0, ge=0)
    deadband: float | None = Field(None, ge=0, description="absolute deadband")


class OpcUaConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    url: str = Field(min_length=1)
    mode: Literal["subscribe", "poll"] = "subscribe"
    publishing_ms: float = Field(200.0, gt=0)
    poll_s: float = Field(1.0, gt=0)
    timeout_s: float = Field(4.0, gt=0)
    watchdog_s: float = Field(1.0, gt=0)
    security: Literal["None", "Basic256Sha256"] = "None"
    certificate: str | None = None
    private_key: str | None = None
    server_certificate: str | None = None
    """Pin the server's certificate (PEM/DER path); without it, the one the server presents
    is taken as it is (encryption without server authentication)."""
    application_uri: str | None = None
    """Defaults to the URI in ``certificate``'s subject alternative name."""
    username: str | None = None
    password: str | None = None
    nodes: list[OpcUaNode] = Field(min_length=1)


_HINTS = {
    "BadUserAccessDenied": "the server refused the user name or password",
    "BadIdentityTokenRejected": "the server refused the user name or password",
    "BadIdentityTokenInvalid": "the server does not accept this kind of user identity",
    "BadCertificateUntrusted": "the server does not trust this client's certificate",
    "BadSecurityChecksFailed": "security checks failed (certificate not trusted or invalid)",
    "BadCertificateUriInvalid": "the certificate's URI does not match the application URI",
    "BadCertificateTimeInvalid": "a certificate has expired or is not yet valid",
    "BadSecurityPolicyRejected": "the server does not offer this security policy",
}


def describe_error(exc: BaseException) -> str:
    """A connection failure in words an operator can act on, with the OPC UA status name.

    >>> describe_error(UaStatusCodeError(ua.StatusCodes.BadUserAccessDenied))
    'the server refused the user name or password (BadUserAccessDenied)'
    >>> describe_error(TimeoutError())
    'TimeoutError: no answer in time'
    """
    if isinstance(exc, UaStatusCodeError):
        name = ua.StatusCode(exc.code).name
        hint = _HINTS.get(name)
        return f"{hint} ({name})" if hint else f"{name}: {exc}"
    text = str(exc)
    for name, hint in _HINTS.items():
        if name in text:
            return f"{hint} ({name})"
    if isinstance(exc, TimeoutError) and not text:
        return "TimeoutError: no answer in time"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _cert_uri(path: str) -> str:
    """The application URI a certificate's subject alternative name carries."""
    from cryptography import x509

    cert = await uacrypto.load_certificate(path)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        raise ValueError(f"{path}: certificate has no subject alternative name") from None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    if not uris:
        raise ValueError(f"{path}: certificate names no application URI") from None
    return str(uris[0])


def quality_of(status: ua.StatusCode | None) -> Quality:
    """OPC UA's status classes as sample quality (top two bits of the code)."""
    if status is None:
        return Quality.GOOD
    severity = (status.value >> 30) & 0b11
    return {0: Quality.GOOD, 1: Quality.UNCERTAIN}.get(severity, Quality.BAD)


def _number(v: Any) -> float:
    if isinstance(v, bool | int | float):
        return float(v)
    return math.nan


class _Handler:
    """Receives data changes on asyncua's task and queues samples."""

    def __init__(self, queue: asyncio.Queue[SampleBatch], signals: dict[str, str]) -> None:
        self.queue = queue
        self.signals = signals

    def datachange_notification(self, node: Node, val: Any, data: Any) -> None:
        dv = data.monitored_item.Value
        signal = self.signals.get(node.nodeid.to_string())
        if signal is None:
            return
        self.queue.put_nowait(_sample(signal, dv))


def _sample(signal: str, dv: ua.DataValue) -> SampleBatch:
    q = quality_of(dv.StatusCode)
    value = _number(dv.Value.Value if dv.Value is not None else None)
    if not math.isfinite(value):
        q = Quality.BAD
    stamp: datetime | None = dv.SourceTimestamp or dv.ServerTimestamp
    ts = to_micros(stamp) if stamp is not None else time.time_ns() // 1000
    return SampleBatch.build([signal], [0], [ts], [value], [q])


class Endpoint(Protocol):
    """What opening a client needs: the connector's config has it, so does a browse."""

    @property
    def url(self) -> str: ...
    @property
    def timeout_s(self) -> float: ...
    @property
    def security(self) -> Literal["None", "Basic256Sha256"]: ...
    @property
    def certificate(self) -> str | None: ...
    @property
    def private_key(self) -> str | None: ...
    @property
    def server_certificate(self) -> str | None: ...
    @property
    def application_uri(self) -> str | None: ...
    @property
    def username(self) -> str | None: ...
    @property
    def password(self) -> str | None: ...


async def open_client(cfg: Endpoint) -> Client:
    """An unconnected asyncua client with the endpoint's security and identity set.
    Without a pinned ``server_certificate`` this already talks to the server (to fetch its
    endpoints), so it can fail like a connection."""
    client = Client(cfg.url, timeout=cfg.timeout_s)
    if cfg.security == "Basic256Sha256":
        if not (cfg.certificate and cfg.private_key):
            raise ValueError("Basic256Sha256 needs certificate and private_key")
        # the server checks that our ApplicationUri is the one our certificate names
        client.application_uri = cfg.application_uri or await _cert_uri(cfg.certificate)
        await client.set_security(
            SecurityPolicyBasic256Sha256,
            cfg.certificate,
            cfg.private_key,
            server_certificate=cfg.server_certificate,
            mode=ua.MessageSecurityMode.SignAndEncrypt,
        )
    if cfg.username is not None:
        client.set_user(cfg.username)
        client.set_password(cfg.password or "")
    return client


class OpcUaConnector:
    manifest = MANIFEST

    def __init__(self, config: OpcUaConfig) -> None:
        self.config = config
        self.name = config.name
        self.health = Health(config.name)
        self.sessions = 0

    async def _client(self) -> Client:
        return await open_client(self.config)

    async def batches(self, cursor: str | None) -> AsyncIterator[tuple[SampleBatch, str | None]]:
        cfg = self.config
        device = cfg.url
        backoff = Backoff(initial_s=0.1, max_s=5.0)
        signals = {n.node_id: n.signal for n in cfg.nodes}
        while True:
            queue: asyncio.Queue[SampleBatch] = asyncio.Queue()
            t0 = time.monotonic()
            client: Client | None = None
            try:
                # inside the retry: without a pinned server certificate, set_security
                # fetches the server's endpoints, which can fail like any connection
                client = await self._client()
                await client.connect()
            except (OSError, TimeoutError, UaError, ConnectionError, ValueError) as exc:
                why = describe_error(exc)
                self.health.error(device, why)
                log.warning("opcua %s: cannot connect: %s; retrying", cfg.name, why)
                if client is not None:
                    client.disconnect_socket()
                await asyncio.sleep(backoff.next())
                continue
            try:
                self.sessions += 1
                if self.sessions > 1:
                    self.health.reconnected(device)
                backoff.reset()
                nodes = [client.get_node(n.node_id) for n in cfg.nodes]
                polling = cfg.mode == "poll"
                if not polling:
                    try:
                        await self._subscribe(client, nodes, queue, signals)
                    except UaError as exc:  # no subscriptions: fall back to polling
                        log.warning("opcua %s: subscription refused (%s); polling", cfg.name, exc)
                        polling = True
                self.health.success(device, 0, time.monotonic() - t0)
                async for batch in self._session(client, nodes, queue, polling):
                    yield batch, None
            except (OSError, TimeoutError, UaError, ConnectionError) as exc:
                self.health.error(device, describe_error(exc) or "connection lost")
                log.warning("opcua %s: %s; reconnecting", cfg.name, exc)
            finally:
                try:
                    await within(client.disconnect(), 1.0)
                except Exception:  # the session is gone anyway
                    client.disconnect_socket()
            await asyncio.sleep(backoff.next())

    async def _subscribe(
        self,
        client: Client,
        nodes: list[Node],
        queue: asyncio.Queue[SampleBatch],
        signals: dict[str, str],
    ) -> None:
        sub = await client.create_subscription(self.config.publishing_ms, _Handler(queue, signals))
        for spec, node in zip(self.config.nodes, nodes, strict=True):
            if spec.deadband is not None:
                await sub.deadband_monitor(node, ua.Double(spec.deadband), ua.UInt32(1))
            else:
                await sub.subscribe_data_change(node, sampling_interval=ua.Double(spec.sampling_ms))

    async def _session(
        self,
        client: Client,
        nodes: list[Node],
        queue: asyncio.Queue[SampleBatch],
        polling: bool,
    ) -> AsyncIterator[SampleBatch]:
        cfg = self.config
        names = [n.signal for n in cfg.nodes]
        next_check = time.monotonic() + cfg.watchdog_s
        next_poll = time.monotonic()
        while True:
            now = time.monotonic()
            if polling and now >= next_poll:
                t0 = time.monotonic()
                dvs = await client.read_attributes(nodes)
                parts = [_sample(n, dv) for n, dv in zip(names, dvs, strict=True)]
                batch = SampleBatch.concat(parts)
                self.health.success(cfg.url, len(batch), time.monotonic() - t0)
                next_poll = now + cfg.poll_s
                yield batch
                continue
            if now >= next_check:
                await client.check_connection()
                next_check = now + cfg.watchdog_s
            wait = min(next_check, next_poll if polling else next_check) - time.monotonic()
            try:
                first = await within(queue.get(), max(wait, 0.001))
            except TimeoutError:
                continue
            parts = [first]
            while not queue.empty():
                parts.append(queue.get_nowait())
            batch = SampleBatch.concat(parts)
            self.health.success(cfg.url, len(batch), 0.0)
            yield batch
