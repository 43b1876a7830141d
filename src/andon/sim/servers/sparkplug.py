"""A simulated Sparkplug B edge node (robot cell, environment sensors) publishing over MQTT.

It behaves as the specification asks of an edge node: a will (NDEATH with the session's
``bdSeq``), NBIRTH then DBIRTH with names, aliases and datatypes, DDATA by alias only with a
``seq`` that wraps at 256, births again on a ``Node Control/Rebirth`` NCMD, and a new
``bdSeq`` for every connection. ``values(device, metric, t)`` gives the value to publish.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence

import aiomqtt

from andon.connect.sparkplug.host import NAMESPACE
from andon.connect.sparkplug.payload import (
    BOOLEAN,
    INT64,
    UINT64,
    Metric,
    Payload,
    decode_payload,
    encode_payload,
)
from andon.wire.net import mqtt_client

__all__ = ["SparkplugEdgeNode"]

ValueFn = Callable[[str, str, float], float]


def _ms() -> int:
    return time.time_ns() // 1_000_000


class SparkplugEdgeNode:
    """Publishes ``devices`` (device → [(metric, datatype)]) every ``period_s``."""

    def __init__(
        self,
        group: str,
        node: str,
        devices: Mapping[str, Sequence[tuple[str, int]]],
        values: ValueFn,
        host: str = "127.0.0.1",
        port: int = 1883,
        period_s: float = 1.0,
    ) -> None:
        self.group, self.node = group, node
        self.devices = {d: list(ms) for d, ms in devices.items()}
        self.values = values
        self.host, self.port, self.period_s = host, port, period_s
        self.bd_seq = -1
        self.seq = 0
        self.births = 0
        self.aliases: dict[tuple[str, str], int] = {}
        n = 1
        for d, ms in self.devices.items():
            for m, _ in ms:
                self.aliases[(d, m)] = n
                n += 1

    def _topic(self, kind: str, device: str | None = None) -> str:
        t = f"{NAMESPACE}/{self.group}/{kind}/{self.node}"
        return f"{t}/{device}" if device else t

    def _next_seq(self) -> int:
        s = self.seq
        self.seq = (self.seq + 1) % 256
        return s

    def _death(self) -> bytes:
        return encode_payload(
            Payload(timestamp=_ms(), metrics=[Metric("bdSeq", datatype=INT64, value=self.bd_seq)])
        )

    async def _births(self, client: aiomqtt.Client) -> None:
        self.seq = 0
        self.births += 1
        now = _ms()
        nbirth = Payload(
            timestamp=now,
            seq=self._next_seq(),
            metrics=[
                Metric("bdSeq", datatype=INT64, value=self.bd_seq),
                Metric("Node Control/Rebirth", datatype=BOOLEAN, value=False),
            ],
        )
        await client.publish(self._topic("NBIRTH"), encode_payload(nbirth), qos=0)
        t = time.time()
        for d, ms in self.devices.items():
            metrics = [
                Metric(m, self.aliases[(d, m)], now, dt, value=self._value(d, m, dt, t))
                for m, dt in ms
            ]
            p = Payload(timestamp=now, seq=self._next_seq(), metrics=metrics)
            await client.publish(self._topic("DBIRTH", d), encode_payload(p), qos=0)

    def _value(self, device: str, metric: str, dtype: int, t: float) -> float | int | bool:
        v = self.values(device, metric, t)
        if dtype == BOOLEAN:
            return bool(v)
        if dtype in (INT64, UINT64) or dtype < 9:
            return round(v)
        return v

    async def publish_data(self, client: aiomqtt.Client) -> None:
        """One DDATA per device, metrics by alias only."""
        now, t = _ms(), time.time()
        for d, ms in self.devices.items():
            metrics = [
                Metric(
                    alias=self.aliases[(d, m)],
                    timestamp=now,
                    datatype=dt,
                    value=self._value(d, m, dt, t),
                )
                for m, dt in ms
            ]
            p = Payload(timestamp=now, seq=self._next_seq(), metrics=metrics)
            await client.publish(self._topic("DDATA", d), encode_payload(p), qos=0)

    async def run(self) -> None:
        """Connect, be born, publish; reconnect with a new bdSeq; until cancelled."""
        while True:
            self.bd_seq = (self.bd_seq + 1) % 256
            try:
                async with mqtt_client(
                    self.host,
                    self.port,
                    identifier=f"sim-spb-{self.group}-{self.node}",
                    clean_session=True,
                    keepalive=5,
                    will=aiomqtt.Will(self._topic("NDEATH"), self._death(), qos=1),
                ) as client:
                    await client.subscribe(self._topic("NCMD"), qos=1)
                    await self._births(client)
                    async with asyncio.TaskGroup() as tg:
                        tg.create_task(self._commands(client))
                        tg.create_task(self._publish_loop(client))
            except* (aiomqtt.MqttError, OSError):
                pass
            await asyncio.sleep(0.1)

    async def _publish_loop(self, client: aiomqtt.Client) -> None:
        while True:
            await asyncio.sleep(self.period_s)
            await self.publish_data(client)

    async def _commands(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            data = message.payload if isinstance(message.payload, bytes) else b""
            with contextlib.suppress(ValueError):
                p = decode_payload(data)
                if any(m.name == "Node Control/Rebirth" and m.value for m in p.metrics):
                    await self._births(client)
