"""Store-and-forward uplink: sends buffered batches to the platform over MQTT and deletes them
only when the platform has acknowledged them.

* The edge authenticates with its **platform edge key** (``andon_<id>_<secret>``, created in
  the platform like any API key): the broker login is the key id and the secret (unless the
  site file names other broker credentials, or the broker takes a client certificate's CN,
  the key id, as the user name: decision 0316), and every frame carries the key, which the
  platform's ingest gateway checks.
* Each buffered batch travels as one frame (``wire``) on ``andon/v1/up/<key id>`` with QoS 1;
  the platform answers on ``andon/v1/ack/<key id>`` after the batch is stored (or refused).
  QoS 1 only covers the hop to the broker; the platform's acknowledgement covers the whole
  path.
* At most ``window`` batches are in flight. One not acknowledged within ``ack_timeout_s`` is
  sent again; the platform's store keeps the first write of each point, so it is stored once.
* An acknowledgement ``refused`` (the key revoked or expired, or data for a site the key may
  not write) stops the uplink: the buffer keeps everything, ``andon edge status`` says why.
* Every (re)connection, and every acknowledgement timeout (the broker up but the platform's
  ingest away), first marks what the buffer holds as backlog: batches produced after that go
  first (live), the backlog drains behind them, flagged ``historical``.
* An acknowledgement deletes buffered data, so only a genuine one counts: it must parse, carry
  the signature that only a holder of the key's secret can make (``wire.ack_mac``: the
  gateway signs with the secret the frame carried) and name a frame this uplink sent. Any
  other is ignored, counted in ``UplinkStats.acks_ignored`` by reason (``bad_ack``,
  ``forged_ack``, ``unsent_ack``) and logged at most once per ``LOG_EVERY_S`` per reason.
* Connection failures retry forever with capped exponential backoff and jitter.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import ssl
import time
from dataclasses import dataclass, field

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from andon.edge.buffer import BufferWriteError, EdgeBuffer, StoredBatch
from andon.wire.frames import (
    Ack,
    ack_mac,
    ack_topic,
    decode_acks,
    frame_from_parts,
    key_parts,
    up_topic,
)
from andon.wire.net import Backoff, describe_connect_error, mqtt_client

__all__ = [
    "Uplink",
    "UplinkConfig",
    "UplinkHalted",
    "UplinkStats",
]

log = logging.getLogger("andon.edge.uplink")


LOG_EVERY_S = 10.0
"""At most one log line per reason this often for ignored acknowledgements."""


class UplinkHalted(Exception):
    """The platform refused in a way that resending cannot fix."""


@dataclass(frozen=True)
class UplinkConfig:
    """Where and how the uplink sends. ``key`` is the edge's platform edge key; ``username``
    and ``password`` default to its id and secret."""

    edge: str
    key: str
    host: str = "127.0.0.1"
    port: int = 1883
    window: int = 16
    ack_timeout_s: float = 5.0
    username: str | None = None
    password: str | None = None
    tls: ssl.SSLContext | None = None
    backoff_initial_s: float = 0.05
    backoff_max_s: float = 5.0

    def __post_init__(self) -> None:
        if key_parts(self.key) is None:
            raise ValueError(
                "the MQTT uplink authenticates with a platform edge key (andon_<id>_<secret>, "
                "created by POST /api/v1/api-keys with kind edge); the per-edge token is gone"
            )

    @property
    def key_id(self) -> str:
        parts = key_parts(self.key)
        assert parts is not None
        return parts[0]

    def login(self) -> tuple[str, str]:
        """The broker user name and password: the key's id and secret unless configured."""
        parts = key_parts(self.key)
        assert parts is not None
        return self.username or parts[0], self.password or parts[1]


SHORT_SESSION_S = 30.0
TAKEOVER_WINDOW_S = 300.0
TAKEOVER_BURST = 3
"""Short sessions within ``TAKEOVER_WINDOW_S`` that make the uplink log the duplicate-edge
hint (a kicked client can wait out a 10 s request timeout before it notices)."""


@dataclass
class UplinkStats:
    """Counters of this process (the durable ones live in the buffer)."""

    connected: bool = False
    connects: int = 0
    connect_failures: int = 0
    frames_sent: int = 0
    frames_resent: int = 0
    acks: int = 0
    rejected: int = 0
    last_ack_monotonic: float | None = None
    last_error: str = ""
    acks_ignored: dict[str, int] = field(default_factory=dict)
    """Acknowledgements ignored, by reason: ``bad_ack`` (malformed message), ``forged_ack``
    (signature wrong or missing), ``unsent_ack`` (a frame this uplink has not sent),
    ``ack_not_recorded`` (the buffer could not write it, a full disk: the frame is resent)."""
    ack_gaps: int = 0
    """Acknowledgement timeouts that turned what the buffer held into backlog."""
    short_sessions: int = 0
    """Connections the broker closed within ``SHORT_SESSION_S`` of their start: in bursts,
    the sign of another edge with the same key (the broker closes the older session of a
    client id when a new one connects, so two such edges keep kicking each other out)."""


class Uplink:
    """Forwards a buffer's batches until cancelled."""

    def __init__(self, buffer: EdgeBuffer, config: UplinkConfig) -> None:
        self.buffer = buffer
        self.config = config
        self.stats = UplinkStats()
        self._sent_at: dict[tuple[str, int], tuple[int, float]] = {}
        # frames that timed out and wait to be sent again: a late ack for one still counts
        self._expired: dict[tuple[str, int], None] = {}
        self._secret = key_parts(config.key)[1]  # type: ignore[index]  # checked by the config
        self._logged_at: dict[str, float] = {}
        self._gap = False  # an ack timed out and none has come since
        self._wake = asyncio.Event()
        self.halted = asyncio.Event()
        self._session_start: float | None = None
        self._short: list[float] = []
        self._hinted_at = -60.0

    async def run(self) -> None:
        """Connect, send, reconnect; forever (cancel to stop). Returns, after logging why,
        when the platform refuses the key or the data: the buffer keeps everything."""
        backoff = Backoff(self.config.backoff_initial_s, self.config.backoff_max_s)
        while True:
            try:
                await self._session(backoff)
            except* UplinkHalted as group:
                self.stats.last_error = f"stopped: {group.exceptions[0]}"
                self.halted.set()
                log.error(
                    "uplink stopped: %s; the buffer keeps the data, fix and restart",
                    group.exceptions[0],
                )
            except* (aiomqtt.MqttError, OSError) as group:
                exc = group.exceptions[0]
                self.stats.connect_failures += 1
                if _login_refused(exc):
                    # the broker no longer knows the key (revoked, and the broker's password
                    # file synced): as an HTTPS uplink on 401, stop instead of spinning
                    self.halted.set()
                    self.stats.last_error = f"stopped: {describe_connect_error(exc)}"
                    log.error("uplink stopped: %s; the buffer keeps the data", exc)
                elif not self.halted.is_set():
                    self.stats.last_error = describe_connect_error(exc)
                    log.warning("uplink: %s; retrying", self.stats.last_error)
                    self._session_ended()
            self._session_start = None
            self.stats.connected = False
            if self.halted.is_set():
                return
            await asyncio.sleep(backoff.next())

    def _session_ended(self) -> None:
        """Count a session the broker closed soon after it began; a burst of them gets a
        hint naming the likely cause (at most one a minute)."""
        if self._session_start is None:
            return
        now = time.monotonic()
        if now - self._session_start >= SHORT_SESSION_S:
            return
        self.stats.short_sessions += 1
        self._short = [t for t in self._short if now - t < TAKEOVER_WINDOW_S] + [now]
        if len(self._short) >= TAKEOVER_BURST and now - self._hinted_at >= 60.0:
            self._hinted_at = now
            log.warning(
                "uplink: the broker closed this edge's connection %d times in %d minutes,"
                " each soon after it connected: is another edge running with the same key"
                " (MQTT client id andon-edge-%s)? The broker drops the older session of a"
                " client id whenever the other connects; give every edge its own key",
                len(self._short),
                TAKEOVER_WINDOW_S // 60,
                self.config.key_id,
            )

    async def _session(self, backoff: Backoff) -> None:
        cfg = self.config
        username, password = cfg.login()
        async with mqtt_client(
            cfg.host,
            cfg.port,
            identifier=f"andon-edge-{cfg.key_id}",
            clean_session=True,
            username=username,
            password=password,
            tls_context=cfg.tls,
            keepalive=15,
            timeout=10,
        ) as client:
            self._session_start = time.monotonic()
            await client.subscribe(ack_topic(cfg.key_id), qos=1)
            self.stats.connected = True
            self.stats.connects += 1
            backoff.reset()
            # nothing is in flight on a new connection; what the buffer holds now is backlog
            self._sent_at.clear()
            self._expired.clear()
            self._gap = False
            await self.buffer.release()
            await self.buffer.mark_backlog()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._receive(client))
                tg.create_task(self._send(client))

    async def _send(self, client: aiomqtt.Client) -> None:
        cfg = self.config
        topic = up_topic(cfg.key_id)
        while True:
            await self._resend_expired()
            room = cfg.window - len(self._sent_at)
            # clear before looking, so a put or an ack that lands meanwhile is not missed
            self.buffer.changed.clear()
            self._wake.clear()
            if self._gap:  # what came in during the gap goes out flagged historical too
                await self.buffer.mark_backlog()
            batches: list[StoredBatch] = await self.buffer.next_unsent(room) if room > 0 else []
            if not batches:
                waits = [
                    asyncio.ensure_future(self.buffer.changed.wait()),
                    asyncio.ensure_future(self._wake.wait()),
                ]
                try:
                    await asyncio.wait(
                        waits, timeout=cfg.ack_timeout_s / 4, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    for w in waits:
                        w.cancel()
                continue
            for b in batches:
                frame = frame_from_parts(
                    cfg.edge,
                    cfg.key,
                    b.stream,
                    b.seq,
                    b.created_us,
                    b.historical,
                    b.points,
                    b.names_json,
                    b.body,
                )
                self._sent_at[(b.stream, b.seq)] = (b.id, time.monotonic())
                self._expired.pop((b.stream, b.seq), None)
                await client.publish(topic, frame, qos=1)
                self.stats.frames_sent += 1

    async def _resend_expired(self) -> None:
        now = time.monotonic()
        expired = [
            (k, rid) for k, (rid, t) in self._sent_at.items() if now - t > self.config.ack_timeout_s
        ]
        if not expired:
            return
        for k, _ in expired:
            del self._sent_at[k]
            self._expired[k] = None
        while len(self._expired) > 4 * self.config.window + len(expired):
            del self._expired[next(iter(self._expired))]
        self.stats.frames_resent += len(expired)
        self.stats.ack_gaps += 1
        self._gap = True
        # a gap in acknowledgements (the platform's ingest away, even with the broker up):
        # what the buffer holds now goes out flagged historical, behind newer data
        await self.buffer.mark_backlog()
        await self.buffer.release([rid for _, rid in expired])

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            if not isinstance(payload, bytes | bytearray):
                continue
            try:
                acks = decode_acks(bytes(payload))
            except ValueError as exc:
                self._ignore("bad_ack", 1, f"malformed acknowledgement: {exc}")
                continue
            acks = self._genuine(acks)
            if not acks:
                continue
            refused = [a for a in acks if a.status == "refused"]
            if refused:
                a = refused[0]
                raise UplinkHalted(f"platform refused {a.stream}#{a.seq}: {a.reason}")
            ok = [(a.stream, a.seq) for a in acks if a.status == "ok"]
            bad = [(a.stream, a.seq) for a in acks if a.status == "rejected"]
            for a in acks:
                if a.status == "rejected":
                    log.error("platform rejected %s#%d: %s", a.stream, a.seq, a.reason)
            for k in (*ok, *bad):  # settled before the buffer deletes them
                self._sent_at.pop(k, None)
                self._expired.pop(k, None)
            try:
                if ok:
                    await self.buffer.ack(ok)
                if bad:
                    await self.buffer.ack(bad, rejected=True)
                    self.stats.rejected += len(bad)
            except BufferWriteError as exc:  # rolled back: the frames go out again
                self.stats.last_error = str(exc)
                self._ignore("ack_not_recorded", len(ok) + len(bad), str(exc))
            self.stats.acks += len(acks)
            self.stats.last_ack_monotonic = time.monotonic()
            self._gap = False
            self._wake.set()

    def _genuine(self, acks: list[Ack]) -> list[Ack]:
        """The acknowledgements signed with this edge's secret for frames it sent."""
        out: list[Ack] = []
        forged = unsent = 0
        for a in acks:
            want = ack_mac(self._secret, a.stream, a.seq, a.status)
            if not hmac.compare_digest(a.mac.encode(), want.encode()):
                forged += 1
            elif (a.stream, a.seq) not in self._sent_at and (a.stream, a.seq) not in self._expired:
                unsent += 1
            else:
                out.append(a)
        if forged:
            self._ignore("forged_ack", forged, "acknowledgement with a wrong or no signature")
        if unsent:
            self._ignore("unsent_ack", unsent, "acknowledgement of a frame not sent")
        return out

    def _ignore(self, reason: str, n: int, what: str) -> None:
        ignored = self.stats.acks_ignored
        ignored[reason] = ignored.get(reason, 0) + n
        now = time.monotonic()
        if now - self._logged_at.get(reason, -LOG_EVERY_S) >= LOG_EVERY_S:
            self._logged_at[reason] = now
            log.warning("uplink: %s ignored (%s so far: %d)", what, reason, ignored[reason])


def _login_refused(exc: BaseException) -> bool:
    """The broker refused the uplink's user name or password (MQTT 3.1.1 codes 4 and 5, as
    paho reports them, or their MQTT 5 counterparts 134 and 135). Only a refused connect:
    a failed publish carries paho's own error numbers, where 4 means "not connected"."""
    if not isinstance(exc, MqttConnectError):
        return False
    rc = exc.rc
    value = rc if isinstance(rc, int) else getattr(rc, "value", None)
    return value in (4, 5, 134, 135)
