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
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaError, UaStatusCodeError, UaStringParsingError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from andon.connect.base import Health, Manifest, within
from andon.model.types import Quality, SampleBatch, TextBatch, to_micros
from andon.wire.net import Backoff

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

    @field_validator("node_id")
    @classmethod
    def _parses(cls, v: str) -> str:
        try:
            ua.NodeId.from_string(v)
        except (ValueError, UaStringParsingError) as exc:
            raise ValueError(f"{v!r} is not an OPC UA node id: {exc}") from None
        return v


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

    >>> describe_error(UaStatusCodeError(StatusCodes.BadUserAccessDenied))
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


_UNKNOWN_NODE = frozenset(
    {
        StatusCodes.BadNodeIdUnknown,
        StatusCodes.BadNodeIdInvalid,
        StatusCodes.BadAttributeIdInvalid,
    }
)
_NO_SUBSCRIPTIONS = frozenset(
    {StatusCodes.BadServiceUnsupported, StatusCodes.BadTooManySubscriptions}
)


Labels = dict[int, str]
"""An enumeration's labels by code; empty for a String variable."""


class _Handler:
    """Receives data changes on asyncua's task and queues samples."""

    def __init__(
        self,
        queue: asyncio.Queue[SampleBatch],
        signals: dict[ua.NodeId, str],
        texts: dict[str, Labels] | None = None,
    ) -> None:
        self.queue = queue
        self.signals = signals
        """Signal of each node, by the parsed node id (any spelling of it compares equal)."""
        self.texts = texts or {}
        """Signals whose values travel as text (strings, enumerations: their labels)."""

    def datachange_notification(self, node: Node, val: Any, data: Any) -> None:
        dv = data.monitored_item.Value
        signal = self.signals.get(node.nodeid)
        if signal is None:
            return
        self.queue.put_nowait(_sample(signal, dv, self.texts.get(signal)))


def _sample(signal: str, dv: ua.DataValue, labels: Labels | None = None) -> SampleBatch:
    """One value as a sample, or as a text value when ``labels`` is given (a String
    variable: ``{}``; an enumeration: its labels, the code kept beside the label)."""
    q = quality_of(dv.StatusCode)
    raw = dv.Value.Value if dv.Value is not None else None
    stamp: datetime | None = dv.SourceTimestamp or dv.ServerTimestamp
    ts = to_micros(stamp) if stamp is not None else time.time_ns() // 1000
    if labels is not None:
        text, code = _text(raw, labels)
        if text is None:
            text, q = "", Quality.BAD
        t = TextBatch.build([signal], [0], [ts], [text], [q], [code])
        return SampleBatch.build([], [], [], [], text=t)
    value = _number(raw)
    if not math.isfinite(value):
        q = Quality.BAD
    return SampleBatch.build([signal], [0], [ts], [value], [q])


def _text(raw: Any, labels: Labels) -> tuple[str | None, float]:
    """``(text, code)`` of a String, LocalizedText or enumeration value (an unknown code
    travels as its number, so nothing is lost)."""
    if isinstance(raw, str):
        return raw, math.nan
    if isinstance(raw, ua.LocalizedText):
        return raw.Text or "", math.nan
    if isinstance(raw, int) and not isinstance(raw, bool):
        return labels.get(raw, str(raw)), float(raw)
    return None, math.nan


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
        self._refused: dict[str, str] = {}
        """Why each left-out signal was left out (logged once, not per session)."""
        self.texts: dict[str, Labels] = {}
        """Signals read as text (String, LocalizedText, enumerations), found at each connect
        from the value's type (decision 0202)."""

    async def _client(self) -> Client:
        return await open_client(self.config)

    async def batches(self, cursor: str | None) -> AsyncIterator[tuple[SampleBatch, str | None]]:
        cfg = self.config
        device = cfg.url
        backoff = Backoff(initial_s=0.1, max_s=5.0)
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
                specs, nodes, refused = await self._resolve(client)
                if refused:
                    yield refused, None
                polling = cfg.mode == "poll"
                if not polling and nodes:
                    signals = {n.nodeid: spec.signal for spec, n in zip(specs, nodes, strict=True)}
                    try:
                        await self._subscribe(client, specs, nodes, queue, signals, self.texts)
                    except UaStatusCodeError as exc:
                        if exc.code not in _NO_SUBSCRIPTIONS:
                            raise
                        log.warning(
                            "opcua %s: the server offers no subscriptions (%s); polling",
                            cfg.name,
                            describe_error(exc),
                        )
                        polling = True
                self.health.success(device, 0, time.monotonic() - t0)
                backoff.reset()
                async for batch in self._session(client, specs, nodes, queue, polling):
                    yield batch, None
            except (OSError, TimeoutError, UaError, ConnectionError) as exc:
                why = describe_error(exc) or "connection lost"
                self.health.error(device, why)
                log.warning("opcua %s: %s; reconnecting", cfg.name, why)
            finally:
                try:
                    await within(client.disconnect(), 1.0)
                except Exception:  # the session is gone anyway
                    client.disconnect_socket()
            await asyncio.sleep(backoff.next())

    def _refuse(self, spec: OpcUaNode, reason: str, why: str) -> None:
        """Count a node left out of this session, with a warning the first time."""
        device = self.config.url
        self.health.reject(device, reason)
        d = self.health.device(device)
        d.last_error = why[:300]
        if self._refused.get(spec.signal) != why:
            self._refused[spec.signal] = why
            log.warning("opcua %s: %s", self.config.name, why)

    async def _resolve(self, client: Client) -> tuple[list[OpcUaNode], list[Node], SampleBatch]:
        """The configured nodes this server can serve, as canonical node ids.

        ``nsu=`` ids get their namespace index from the server's namespace array; a node
        the server does not know (or in a namespace it lacks) gets one BAD sample and a
        counted reason; arrays and byte strings are left out with a counted reason; strings,
        localized text and enumerations are read as text values (``self.texts``, decision
        0202); the rest are returned for subscription or polling."""
        self.texts.clear()
        specs: list[OpcUaNode] = []
        nodes: list[Node] = []
        bad: list[str] = []
        namespaces: list[str] | None = None
        for spec in self.config.nodes:
            nid = ua.NodeId.from_string(spec.node_id)
            uri = getattr(nid, "NamespaceUri", None)
            if uri:
                if namespaces is None:
                    namespaces = list(await client.get_namespace_array())
                if uri not in namespaces:
                    why = (
                        f"{spec.node_id} ({spec.signal}): the server has no namespace {uri!r}"
                        f" (it has {', '.join(namespaces)})"
                    )
                    self._refuse(spec, "unknown namespace", why)
                    bad.append(spec.signal)
                    continue
                nid = ua.NodeId(nid.Identifier, ua.Int16(namespaces.index(uri)), nid.NodeIdType)
            else:
                nid = ua.NodeId(nid.Identifier, nid.NamespaceIndex, nid.NodeIdType)
            specs.append(spec)
            nodes.append(client.get_node(nid))
        keep_specs: list[OpcUaNode] = []
        keep: list[Node] = []
        dvs = await client.read_attributes(nodes) if nodes else []
        for spec, node, dv in zip(specs, nodes, dvs, strict=True):
            code = dv.StatusCode.value if dv.StatusCode is not None else 0
            variant = dv.Value
            value = variant.Value if variant is not None else None
            if code in _UNKNOWN_NODE:
                name = ua.StatusCode(ua.UInt32(code)).name
                why = f"{spec.node_id} ({spec.signal}): the server has no such node ({name})"
                self._refuse(spec, "unknown node", why)
                bad.append(spec.signal)
            elif isinstance(value, list | tuple) or (variant is not None and variant.is_array):
                why = f"{spec.node_id} ({spec.signal}): an array value, not read (numbers only)"
                self._refuse(spec, "array value", why)
            elif isinstance(value, bytes):
                why = f"{spec.node_id} ({spec.signal}): a byte string value, not read"
                self._refuse(spec, "bytes value", why)
            else:
                if isinstance(value, str | ua.LocalizedText):
                    self.texts[spec.signal] = {}
                elif isinstance(value, int) and not isinstance(value, bool):
                    labels = await _enum_labels(client, node)
                    if labels is not None:
                        self.texts[spec.signal] = labels
                keep_specs.append(spec)
                keep.append(node)
        ts = time.time_ns() // 1000
        refused = SampleBatch.build(
            bad,
            list(range(len(bad))),
            [ts] * len(bad),
            [math.nan] * len(bad),
            [Quality.BAD] * len(bad),
        )
        return keep_specs, keep, refused

    async def _subscribe(
        self,
        client: Client,
        specs: list[OpcUaNode],
        nodes: list[Node],
        queue: asyncio.Queue[SampleBatch],
        signals: dict[ua.NodeId, str],
        texts: dict[str, Labels] | None = None,
    ) -> None:
        handler = _Handler(queue, signals, texts)
        sub = await client.create_subscription(self.config.publishing_ms, handler)
        for spec, node in zip(specs, nodes, strict=True):
            if spec.deadband is not None:
                await sub.deadband_monitor(node, ua.Double(spec.deadband), ua.UInt32(1))
            else:
                await sub.subscribe_data_change(node, sampling_interval=ua.Double(spec.sampling_ms))

    async def _session(
        self,
        client: Client,
        specs: list[OpcUaNode],
        nodes: list[Node],
        queue: asyncio.Queue[SampleBatch],
        polling: bool,
    ) -> AsyncIterator[SampleBatch]:
        cfg = self.config
        names = [n.signal for n in specs]
        polling = polling and bool(nodes)
        next_check = time.monotonic() + cfg.watchdog_s
        next_poll = time.monotonic()
        while True:
            now = time.monotonic()
            if polling and now >= next_poll:
                t0 = time.monotonic()
                dvs = await client.read_attributes(nodes)
                parts = [
                    _sample(n, dv, self.texts.get(n)) for n, dv in zip(names, dvs, strict=True)
                ]
                batch = SampleBatch.concat(parts)
                read = len(batch) + batch.text_points
                self.health.success(cfg.url, read, time.monotonic() - t0, batch.text_points)
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
            self.health.success(cfg.url, len(batch) + batch.text_points, 0.0, batch.text_points)
            yield batch


_BUILTIN_NUMERIC = frozenset(range(1, 12))
"""ns=0 ids of Boolean, SByte ... Double: integers that are numbers, not enumerations."""


async def _enum_labels(client: Client, node: Node) -> Labels | None:
    """The labels of an integer variable whose data type is an enumeration (its
    ``EnumStrings`` or ``EnumValues``), ``None`` for a plain integer."""
    try:
        dt = await node.read_data_type()
        if dt.NamespaceIndex == 0 and dt.Identifier in _BUILTIN_NUMERIC:
            return None
        dt_node = client.get_node(dt)
        for prop in ("0:EnumStrings", "0:EnumValues"):
            try:
                child = await dt_node.get_child(prop)
            except UaError:
                continue
            got = await child.read_value()
            if prop == "0:EnumStrings":
                return {i: (t.Text or str(i)) for i, t in enumerate(got)}
            return {int(v.Value): (v.DisplayName.Text or str(v.Value)) for v in got}
    except (UaError, OSError, TimeoutError, AttributeError, TypeError, ValueError) as exc:
        log.debug("opcua: no enumeration labels for %s: %s", node.nodeid, exc)
    return None
