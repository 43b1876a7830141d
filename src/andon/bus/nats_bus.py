"""The live bus on a NATS server (``bus: {kind: nats, url: nats://...}``): several
``andon serve`` processes, and later apps, share one bus.

A message of tenant ``t`` on topic ``(a, b)`` is published on the subject
``andon.live.<t>.<a>.<b>``, each token escaped (every byte outside ``A-Z a-z 0-9 _ -`` as
``%XX``), so no name can contain a ``.`` or a wildcard: a subscription of tenant ``t`` is
always under ``andon.live.<t>.`` and never matches another tenant's subject. Payloads are
encoded with ``andon.bus.events.encode`` (the one codec). The client's own per-subscription
buffer is bounded too; messages it drops as a slow consumer are counted in
``BusStats.dropped``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import SlowConsumerError

from andon.bus.base import (
    DEFAULT_MAX_QUEUE,
    BusCore,
    Message,
    Subscription,
    _check_tenant,
    check_topic,
)
from andon.bus.events import CodecError, Payload, decode, encode

__all__ = ["NatsBus", "subject"]

log = logging.getLogger("andon.bus.nats")

PREFIX = "andon.live"
_UNSAFE = re.compile(rb"[^A-Za-z0-9_-]")


def _escape(token: str) -> str:
    return _UNSAFE.sub(lambda m: b"%%%02X" % m.group()[0], token.encode()).decode("ascii")


def _unescape(token: str) -> str:
    return re.sub(
        rb"%([0-9A-F]{2})", lambda m: bytes([int(m.group(1), 16)]), token.encode()
    ).decode()


def subject(tenant: str, topic: Sequence[str], *, pattern: bool = False) -> str:
    """The NATS subject of ``topic`` (or pattern) under ``tenant``.

    >>> subject("t.1", ("site", "a>b", "values"))
    'andon.live.t%2E1.site.a%3Eb.values'
    >>> subject("t", ("site", "*", ">"), pattern=True)
    'andon.live.t.site.*.>'
    """
    toks = [t if pattern and t in ("*", ">") else _escape(t) for t in topic]
    return ".".join([PREFIX, _escape(tenant), *toks])


class NatsBus(BusCore):
    """A ``LiveBus`` on a NATS server; build it with :meth:`connect`."""

    def __init__(self, nc: Client, url: str) -> None:
        super().__init__()
        self.nc = nc
        self.url = url

    @classmethod
    async def connect(cls, url: str = "nats://127.0.0.1:4222", **options: Any) -> NatsBus:
        """Connect to the server at ``url`` (``ConnectionError`` naming it when it cannot)."""
        holder: list[NatsBus] = []
        timeout = float(options.pop("connect_timeout", 2))

        async def error_cb(exc: Exception) -> None:
            if not holder:  # still connecting: the ConnectionError below says it once
                return
            if isinstance(exc, SlowConsumerError):
                holder[0]._totals.dropped += 1
            else:
                log.warning("live bus (NATS %s): %s", url, exc)

        # the client retries a first connection as it retries a lost one (forever here):
        # a server that cannot be reached now is an error, not a wait
        try:
            nc = await asyncio.wait_for(
                nats.connect(
                    url,
                    error_cb=error_cb,
                    connect_timeout=max(1, int(timeout)),
                    max_reconnect_attempts=options.pop("max_reconnect_attempts", -1),
                    allow_reconnect=True,
                    name=options.pop("name", "andon-live-bus"),
                    **options,
                ),
                timeout,
            )
        except Exception as exc:
            why = "no answer" if isinstance(exc, TimeoutError) else str(exc)
            raise ConnectionError(f"live bus: cannot reach NATS at {url}: {why}") from exc
        bus = cls(nc, url)
        holder.append(bus)
        return bus

    async def publish(self, tenant: str, topic: Sequence[str], payload: Payload) -> None:
        if self._closed:
            raise RuntimeError("NatsBus is closed")
        _check_tenant(tenant)
        t = check_topic(topic)
        data = encode(payload)
        try:
            await self.nc.publish(subject(tenant, t), data)
        except Exception:
            self._totals.publish_failed += 1
            raise
        self._totals.published += 1

    @asynccontextmanager
    async def subscribe(
        self, tenant: str, pattern: Sequence[str], *, max_queue: int = DEFAULT_MAX_QUEUE
    ) -> AsyncIterator[Subscription]:
        sub = self._add(tenant, pattern, max_queue)
        skip = len(PREFIX.split(".")) + 1
        totals = self._totals

        async def on_msg(m: Msg) -> None:
            try:
                payload = decode(m.data)
            except CodecError as exc:
                totals.undecodable += 1
                log.warning("live bus: message on %s dropped: %s", m.subject, exc)
                return
            topic = tuple(_unescape(t) for t in m.subject.split(".")[skip:])
            sub.offer(Message(tenant, topic, payload))

        try:
            nsub = await self.nc.subscribe(
                subject(tenant, sub.pattern, pattern=True),
                cb=on_msg,
                pending_msgs_limit=max(max_queue, 1024),
            )
            await self.nc.flush()  # the server has the subscription: later messages arrive
        except BaseException:
            self._remove(sub)
            raise
        try:
            yield sub
        finally:
            self._remove(sub)
            if not self.nc.is_closed:
                try:
                    await nsub.unsubscribe()
                except Exception:  # the connection went away: nothing left to undo
                    log.debug("live bus: unsubscribe failed", exc_info=True)

    async def close(self) -> None:
        if self._closed:
            return
        self._close_all()
        if not self.nc.is_closed:
            await self.nc.close()
