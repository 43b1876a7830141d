"""The platform end of the edge uplink: receives frames over MQTT, authenticates the sender,
deduplicates by ``(edge, stream, seq)``, validates and stores through the ``Ingestor``, records
the batch in the ``DedupLedger`` and only then acknowledges it.

Order of effects for each group of frames: store → ledger commit → acknowledgement. A crash
between the store write and the ledger commit makes the edge send the batch again; the
store's own first-write-wins rule on ``(tenant, signal, ts)`` then drops the repeat (counted
as a duplicate), so a batch is never stored twice either way.

Frames that cannot be trusted never stop the stream: a malformed frame, an unknown edge or a
wrong token is counted by reason in ``Ingestor.stats`` and logged; a readable frame from an
authenticated edge that fails validation is acknowledged as ``rejected`` so the edge stops
resending it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiomqtt

from andon.connect.net import Backoff, mqtt_client
from andon.edge.uplink import ack_topic
from andon.edge.wire import Ack, Frame, FrameError, decode_frame, encode_acks
from andon.ingest import Ingestor
from andon.ingest.ledger import DedupLedger
from andon.model.types import SampleBatch

__all__ = ["EdgeCredential", "IngestService", "ServiceStats", "hash_token"]

log = logging.getLogger("andon.ingest.service")


def hash_token(token: str) -> str:
    """The SHA-256 hex digest the platform keeps instead of an edge's token.

    >>> hash_token("secret")[:12]
    '2bb80d537b1d'
    """
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class EdgeCredential:
    """An edge the platform accepts: its tenant and the hash of its token."""

    tenant: str
    token_sha256: str


@dataclass
class ServiceStats:
    frames: int = 0
    frames_stored: int = 0
    frames_duplicate: int = 0
    frames_rejected: int = 0
    points_stored: int = 0
    points_historical: int = 0
    connects: int = 0
    last_stored_us: dict[str, int] = field(default_factory=dict)


class IngestService:
    """Subscribes to every edge's uplink topic and stores what arrives, until cancelled."""

    def __init__(
        self,
        ingestor: Ingestor,
        ledger: DedupLedger,
        edges: Mapping[str, EdgeCredential],
        host: str = "127.0.0.1",
        port: int = 1883,
        client_id: str = "andon-ingest",
        max_group_points: int = 500_000,
    ) -> None:
        self.ingestor = ingestor
        self.ledger = ledger
        self.edges = dict(edges)
        self.host = host
        self.port = port
        self.client_id = client_id
        self.max_group_points = max_group_points
        self.stats = ServiceStats()
        self.connected = asyncio.Event()
        self.on_stored: list[Frame] | None = None
        """When a list, every stored frame is appended to it (benchmarks and tests)."""

    async def run(self) -> None:
        """Connect, consume, reconnect with backoff; forever (cancel to stop)."""
        backoff = Backoff()
        while True:
            try:
                async with mqtt_client(
                    self.host,
                    self.port,
                    identifier=self.client_id,
                    clean_session=False,
                    keepalive=15,
                    timeout=10,
                    max_inflight_messages=100,
                ) as client:
                    await client.subscribe("andon/v1/up/+", qos=1)
                    self.stats.connects += 1
                    backoff.reset()
                    self.connected.set()
                    await self._consume(client)
            except (aiomqtt.MqttError, OSError) as exc:
                log.warning("ingest service: %s; retrying", exc)
            self.connected.clear()
            await asyncio.sleep(backoff.next())

    async def _consume(self, client: aiomqtt.Client) -> None:
        messages = client.messages
        while True:
            group = [await anext(messages)]
            points = len(group[0].payload) // 21 if isinstance(group[0].payload, bytes) else 0
            while len(messages) and points < self.max_group_points:
                m = await anext(messages)
                group.append(m)
                points += len(m.payload) // 21 if isinstance(m.payload, bytes) else 0
            payloads = [m.payload for m in group if isinstance(m.payload, bytes | bytearray)]
            # shielded: a cancelled service still finishes the store write and the ledger
            # commit of a group it started, so cancelling never leaves them apart
            acks = await asyncio.shield(self.handle([bytes(p) for p in payloads]))
            for edge, edge_acks in acks.items():
                await client.publish(ack_topic(edge), encode_acks(edge_acks), qos=1)

    def _authenticate(self, frame: Frame) -> EdgeCredential | None:
        cred = self.edges.get(frame.edge)
        if cred is None:
            self.ingestor.stats.reject("unknown_edge", len(frame.batch), frame.edge)
            return None
        if not hmac.compare_digest(hash_token(frame.token), cred.token_sha256):
            self.ingestor.stats.reject("bad_token", len(frame.batch), frame.edge)
            return None
        return cred

    async def handle(self, payloads: list[bytes]) -> dict[str, list[Ack]]:
        """Process one group of frames; returns the acknowledgements to publish per edge."""
        acks: dict[str, list[Ack]] = defaultdict(list)
        fresh: dict[str, list[Frame]] = defaultdict(list)
        in_group: set[tuple[str, str, int]] = set()
        for payload in payloads:
            self.stats.frames += 1
            try:
                frame = decode_frame(payload)
            except FrameError as exc:
                self.ingestor.stats.reject(exc.reason, 1, str(exc))
                log.warning("ingest: frame refused: %s", exc)
                continue
            cred = self._authenticate(frame)
            if cred is None:
                log.warning("ingest: frame from %r refused: not authenticated", frame.edge)
                continue
            key = (frame.edge, frame.stream, frame.seq)
            if key in in_group or self.ledger.seen(*key):
                self.stats.frames_duplicate += 1
                acks[frame.edge].append(Ack(frame.stream, frame.seq, "ok"))
                continue
            in_group.add(key)
            fresh[cred.tenant].append(frame)
        stored: list[tuple[str, str, int]] = []
        for tenant, frames in fresh.items():
            batch = SampleBatch.concat([f.batch for f in frames])
            try:
                await self.ingestor.samples(tenant, batch)
            except PermissionError as exc:
                for f in frames:
                    self.ingestor.stats.reject("tenant_not_registered", len(f.batch), str(exc))
                    acks[f.edge].append(Ack(f.stream, f.seq, "rejected", str(exc)))
                    self.stats.frames_rejected += 1
                continue
            for f in frames:
                stored.append((f.edge, f.stream, f.seq))
                acks[f.edge].append(Ack(f.stream, f.seq, "ok"))
                self.stats.points_stored += len(f.batch)
                if f.historical:
                    self.stats.points_historical += len(f.batch)
            self.stats.frames_stored += len(frames)
            if self.on_stored is not None:
                self.on_stored.extend(frames)
        if stored:
            await asyncio.to_thread(self.ledger.record, stored)
        return dict(acks)
