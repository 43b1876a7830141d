"""An OPC UA server (asyncua) for the simulated machining centres and grinder: one object per
machine, one Double variable per signal, node ids ``ns=<idx>;s=<machine>.<signal>``.

``set(machine, signal, value, status)`` writes a value (with an OPC UA status code, so tests
and fault injection can produce bad or uncertain samples).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence

from asyncua import ua
from asyncua.common.node import Node
from asyncua.server.server import Server
from asyncua.ua.status_codes import StatusCodes

from andon.connect.base import within

__all__ = ["OpcUaSimServer"]


class OpcUaSimServer:
    """Serves ``machines`` (machine → signal names) on ``opc.tcp://host:port/andon/``."""

    def __init__(
        self, machines: Mapping[str, Sequence[str]], host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.machines = {m: list(s) for m, s in machines.items()}
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
        server = Server()
        await server.init()
        server.set_endpoint(self.url)
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
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
        self, machine: str, signal: str, value: float, status: int = StatusCodes.Good
    ) -> None:
        node = self.vars[(machine, signal)]
        dv = ua.DataValue(
            ua.Variant(float(value), ua.VariantType.Double),
            StatusCode=ua.StatusCode(ua.UInt32(status)),
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
