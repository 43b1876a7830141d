"""An OPC UA server (asyncua) for the simulated machining centres and grinder: one object per
machine, one Double variable per signal, node ids ``ns=<idx>;s=<machine>.<signal>``.

``set(machine, signal, value, status)`` writes a value (with an OPC UA status code, so tests
and fault injection can produce bad or uncertain samples).

With ``security`` the server offers only Basic256Sha256 SignAndEncrypt, accepts only client
certificates found in ``trusted_dir`` and only the given user names and passwords, as a
hardened plant server would; without it, only the None policy (anonymous).
"""

from __future__ import annotations

import hmac
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.common.node import Node
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from asyncua.server.server import Server
from asyncua.ua.status_codes import StatusCodes

from andon.connect.base import within
from andon.model.types import from_micros

__all__ = ["OpcUaSecurity", "OpcUaSimServer"]


@dataclass(frozen=True)
class OpcUaSecurity:
    """A secured server: its certificate and key (PEM), the directory of trusted client
    certificates, the accepted users and the application URI its certificate names."""

    certificate: Path
    private_key: Path
    trusted_dir: Path
    application_uri: str
    users: Mapping[str, str] = field(default_factory=dict)


class _Users:
    """asyncua user manager: a fixed table of user names and passwords."""

    def __init__(self, users: Mapping[str, str]) -> None:
        self.users = dict(users)

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        expected = self.users.get(username or "")
        if expected is None or not hmac.compare_digest(expected, password or ""):
            return None
        return User(role=UserRole.User, name=username)


class OpcUaSimServer:
    """Serves ``machines`` (machine → signal names) on ``opc.tcp://host:port/andon/``."""

    def __init__(
        self,
        machines: Mapping[str, Sequence[str]],
        host: str = "127.0.0.1",
        port: int = 0,
        security: OpcUaSecurity | None = None,
    ) -> None:
        self.machines = {m: list(s) for m, s in machines.items()}
        self.security = security
        self.host = host
        self.port = port or _free_port(host)
        self.server: Server | None = None
        self.ns = 0
        self.vars: dict[tuple[str, str], Node] = {}

    @property
    def url(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}/andon/"

    def node_id(self, machine: str, signal: str) -> str:
        return f"ns={self.ns};s={machine}.{signal}"

    async def start(self, attempts: int = 3, timeout_s: float = 20.0) -> None:
        """Start the server. asyncua's start has been seen to stall now and then on this
        machine (cause not found), so a start that takes longer than ``timeout_s`` is
        abandoned and retried with a fresh server."""
        for attempt in range(attempts):
            try:
                await within(self._start(), timeout_s)
                return
            except TimeoutError:
                if attempt == attempts - 1:
                    raise
                self.vars.clear()

    async def _start(self) -> None:
        sec = self.security
        server = Server(user_manager=_Users(sec.users) if sec else None)  # type: ignore[arg-type]
        await server.init()
        server.set_endpoint(self.url)
        if sec is None:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        else:
            await server.set_application_uri(sec.application_uri)
            server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
            server.set_identity_tokens([ua.UserNameIdentityToken])
            await server.load_certificate(str(sec.certificate))
            await server.load_private_key(str(sec.private_key))
            store = TrustStore([sec.trusted_dir], [])
            await store.load()
            opts = (
                CertificateValidatorOptions.TRUSTED_VALIDATION
                | CertificateValidatorOptions.PEER_CLIENT
            )
            server.set_certificate_validator(CertificateValidator(opts, store))
        self.ns = await server.register_namespace("urn:andon:sim")
        for machine, signals in self.machines.items():
            obj = await server.nodes.objects.add_object(self.ns, machine)
            for s in signals:
                nid = ua.NodeId(ua.String(f"{machine}.{s}"), ua.Int16(self.ns))
                node = await obj.add_variable(nid, s, 0.0)
                self.vars[(machine, s)] = node
        await server.start()
        self.server = server

    async def set(
        self,
        machine: str,
        signal: str,
        value: float,
        status: int = StatusCodes.Good,
        source_us: int | None = None,
    ) -> None:
        """Write a value; ``source_us`` (µs since the epoch) becomes its SourceTimestamp, so
        a client stamps the sample with when the factory drew it, not when it was served."""
        node = self.vars[(machine, signal)]
        stamp = None
        if source_us is not None:
            t = from_micros(source_us)
            stamp = ua.DateTime(
                t.year, t.month, t.day, t.hour, t.minute, t.second, t.microsecond, t.tzinfo
            )
        dv = ua.DataValue(
            ua.Variant(float(value), ua.VariantType.Double),
            StatusCode=ua.StatusCode(ua.UInt32(status)),
            SourceTimestamp=stamp,
        )
        await node.write_value(dv)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None
            self.vars.clear()


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port
