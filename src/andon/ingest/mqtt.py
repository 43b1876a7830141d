"""The gateway's MQTT side: receives the edges' frames from the broker and publishes each
acknowledgement on the topic of the key that sent the frame.

Edges publish on ``andon/v1/up/<key id>`` and read ``andon/v1/ack/<key id>``, where the key id
is the id of their platform edge key, which is also their broker user name. A broker ACL
(``andon.ingest.broker.mosquitto_acl``) lets each user write only its own up topic and read
only its own ack topic, so no edge can read another's acknowledgements or publish under its
name; the gateway checks it again (a frame's key must be the key of the topic it came on).

``workers`` MQTT connections share one subscription (``$share/<group>/andon/v1/up/+``): the
broker hands each frame to one of them, so the work spreads over connections, and over
several ``andon serve`` processes that use the same group. Sessions are clean: a persistent
session of a worker that is gone for good (a process retired, fewer workers) would stay in
the group and keep receiving its share of the frames, to be answered by nobody. A frame
published while no worker listens, or handed to one that died, is sent again by the edge
when its acknowledgement does not come (``ack_timeout_s``); the store keeps it once.

A worker never ends for good: a lost broker, and any other error, closes its connection and
it connects again after a backoff (``Backoff``: growing to a cap, reset once subscribed); a
group of frames whose handling raises is left unanswered (its edges send it again) and
counted as ``internal_error``, and the worker goes on with the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass

import aiomqtt

from andon.ingest.gateway import IngestGateway
from andon.wire.frames import UP_PREFIX, ack_topic, encode_acks
from andon.wire.net import Backoff, mqtt_client

__all__ = ["MqttReceiver", "ReceiverConfig"]

log = logging.getLogger("andon.ingest.mqtt")


@dataclass(frozen=True)
class ReceiverConfig:
    """The platform's own connection to the broker."""

    host: str = "127.0.0.1"
    port: int = 1883
    tls: ssl.SSLContext | None = None
    username: str | None = None
    password: str | None = None
    client_id: str = "andon-ingest"
    group: str = "andon-ingest"
    workers: int = 1
    max_group_points: int = 500_000
    keepalive_s: int = 15


class MqttReceiver:
    """``workers`` subscriptions feeding the gateway, reconnecting forever (cancel to stop)."""

    def __init__(self, gateway: IngestGateway, config: ReceiverConfig) -> None:
        if config.workers < 1:
            raise ValueError(f"workers must be at least 1, got {config.workers}")
        self.gateway = gateway
        self.config = config
        self.connects = 0
        self.last_error = ""
        self._up = 0
        self.connected = asyncio.Event()
        """Set while every worker is connected and subscribed."""

    @property
    def topic(self) -> str:
        return f"$share/{self.config.group}/{UP_PREFIX}+"

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for i in range(self.config.workers):
                tg.create_task(self._worker(i))

    async def _worker(self, i: int) -> None:
        cfg = self.config
        backoff = Backoff()
        while True:
            up = False
            try:
                async with mqtt_client(
                    cfg.host,
                    cfg.port,
                    identifier=f"{cfg.client_id}-{i}",
                    clean_session=True,
                    username=cfg.username,
                    password=cfg.password,
                    tls_context=cfg.tls,
                    keepalive=cfg.keepalive_s,
                    timeout=10,
                    max_inflight_messages=100,
                ) as client:
                    await client.subscribe(self.topic, qos=1)
                    log.info("ingest receiver %d: subscribed on %s:%d", i, cfg.host, cfg.port)
                    self.connects += 1
                    self._up += 1
                    up = True
                    if self._up == cfg.workers:
                        self.connected.set()
                    backoff.reset()
                    try:
                        await self._consume(client)
                    except asyncio.CancelledError:
                        _close_now(client)
                        raise
            except (aiomqtt.MqttError, OSError) as exc:
                self.last_error = str(exc)
                log.warning("ingest receiver %d: %s; retrying", i, exc)
            except Exception as exc:  # never ends for good: whatever it was, connect again
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error("ingest receiver %d failed; reconnecting", i, exc_info=True)
            finally:
                if up:
                    self._up -= 1
                    self.connected.clear()
            await asyncio.sleep(backoff.next())

    async def _consume(self, client: aiomqtt.Client) -> None:
        messages = client.messages
        cap = self.config.max_group_points
        while True:
            group = [await anext(messages)]
            size = _points(group[0])
            while len(messages) and size < cap:
                m = await anext(messages)
                group.append(m)
                size += _points(m)
            payloads = [
                (_topic_key(m.topic.value), bytes(m.payload))
                for m in group
                if isinstance(m.payload, bytes | bytearray)
            ]
            # shielded: a cancelled receiver still finishes (and answers) a group it started
            try:
                result = await asyncio.shield(self.gateway.frames(payloads))
            except Exception as exc:  # unanswered: the edges send these frames again
                self.gateway.stats.frames_refused["internal_error"] += len(payloads)
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error("ingest: %d frames left unanswered", len(payloads), exc_info=True)
                continue
            for key_id, acks in result.acks.items():
                await client.publish(ack_topic(key_id), encode_acks(acks), qos=1)


def _close_now(client: aiomqtt.Client) -> None:
    """Close a stopped receiver's connection at once instead of aiomqtt's graceful
    disconnect, which waits without a timeout and was seen, rarely and under full load, never
    to finish (tests/edge/test_long_cut.py notes it; a 20-kill fault run hung once at its
    platform cut). The session is clean, so the broker loses nothing it needs."""
    with contextlib.suppress(Exception):
        client._client._sock_close()  # paho: unregisters from the loop, then closes
    if not client._disconnected.done():
        client._disconnected.set_result(None)


def _points(m: aiomqtt.Message) -> int:
    return len(m.payload) // 21 if isinstance(m.payload, bytes | bytearray) else 0


def _topic_key(topic: str) -> str | None:
    """The key id in ``andon/v1/up/<key id>``."""
    return topic[len(UP_PREFIX) :] if topic.startswith(UP_PREFIX) else None
