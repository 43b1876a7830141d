"""The ingest gateway: the one way data enters the platform, whatever carried it.

MQTT (``andon.ingest.mqtt``) and HTTPS (the API's ingest route) hand it the same binary
frames (``andon.wire.frames``); the HTTPS route also hands it JSON columns. For every frame it

1. authenticates the edge by its **platform edge key** (the frame's ``token``; on HTTPS the
   bearer key the API already checked), through a ``KeyDirectory`` — the platform's API keys
   in production, cached for ``key_cache_s`` so a revocation takes effect within that time;
2. checks the key's **tenant and site** against the frame: every name must lie in one site
   of the key's tenant that the key may write; anything else is refused and counted by
   reason, never stored;
3. validates and stores through the ``Ingestor`` (unknown signals, bad timestamps, values);
4. dedups **once, in the store**: the store keeps the first write of each
   ``(tenant, signal, ts)`` and counts a repeat as a duplicate (decision 0308), so a frame
   sent again after a lost acknowledgement, a broker or a platform restart is stored once;
5. answers with acknowledgements **bound to the key**: the transport sends them to that key's
   edge only (``andon/v1/ack/<key id>`` on MQTT, the HTTP response on HTTPS), each signed
   with the secret of the key its frame carried (``wire.ack_for``), so the edge can tell
   them from forged ones (decision 0311).

A refusal never stops the stream, and nothing a frame carries can stop the gateway: a frame
over ``max_frame_bytes`` is refused before its columns are read (``too_large``; answered
``refused`` when its header shows the topic's key, so the edge stops and keeps its data
rather than sending it again forever), one whose sequence
number is outside ``0 <= seq < 2**63`` before anything is stored (``bad_seq``), one whose
handling raises is refused (``internal_error``), and frames whose store write fails are
counted (``store_failed``) and left unanswered, so their edges send them again. Refusals are
logged at most once per key and reason every ``log_interval_s``, with a count; the counters
(``GatewayStats``) are exact.

A frame that cannot be read, or whose key is unknown or
whose secret is wrong, gets no answer (whoever sent it proved nothing); one whose key is
revoked or expired, or that names a site the key may not write, is answered ``refused`` so
the edge stops and keeps its data instead of resending forever.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import NoReturn, Protocol

from andon.ingest import Ingestor
from andon.ingest.ratelog import RateLimitedLog
from andon.ingest.texts import ingest_text
from andon.model.types import PartBatch, SampleBatch, StateBatch, TextBatch
from andon.wire.frames import (
    HEADER,
    MAGIC,
    Ack,
    Frame,
    FrameError,
    ack_for,
    decode_frame,
    key_parts,
)

__all__ = [
    "ColumnsResult",
    "EdgeIdentity",
    "FrameResult",
    "GatewayStats",
    "IngestGateway",
    "KeyCheck",
    "KeyDirectory",
    "KeyRefused",
    "OutsideSite",
    "Refusal",
    "SiteDirectory",
    "SiteRef",
    "StaticKeys",
    "StaticSites",
]

log = logging.getLogger("andon.ingest.gateway")

MAX_FRAME_BYTES = 4 * 1024 * 1024
"""Default frame size cap: 20 times the largest frame an edge sends by default (10,000 points
of 21 bytes plus names, about 0.25 MiB; decision 0312)."""
MAX_SEQ = 2**63
"""Sequence numbers are ``0 <= seq < MAX_SEQ``: they fit a signed 64-bit column anywhere."""


@dataclass(frozen=True, slots=True)
class EdgeIdentity:
    """An authenticated edge key: its id, its tenant and the sites it may write."""

    key_id: str
    tenant: str
    sites: frozenset[str] | None = None
    """Site ids the key may write; ``None``: every site of its tenant."""

    def may_write(self, site_id: str) -> bool:
        return self.sites is None or site_id in self.sites


@dataclass(frozen=True, slots=True)
class KeyCheck:
    """What a ``KeyDirectory`` says about a presented key."""

    identity: EdgeIdentity | None
    refusal: str = ""
    """A counter key when refused: ``unknown_key``, ``bad_secret``, ``revoked_key``,
    ``expired_key``, ``not_an_edge_key`` (no ``ingest:write``), ``not_a_platform_key``."""
    proven: bool = False
    """Whether the sender showed the key's secret: only then is a refusal answered."""
    key_id: str = ""
    tenant: str | None = None
    """The key's tenant, when the sender showed its secret."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """A frame refused from a key whose secret the sender showed: who, which edge, why."""

    tenant: str
    key_id: str
    edge: str
    reason: str
    points: int


class KeyDirectory(Protocol):
    """Checks a presented platform edge key (``andon_<id>_<secret>``)."""

    async def check(self, key: str) -> KeyCheck: ...


@dataclass(frozen=True, slots=True)
class SiteRef:
    """A site of a tenant, as the gateway checks frames against it."""

    site_id: str
    key: str
    """The plant model's site key: every signal and machine path starts with ``key/``."""


class SiteDirectory(Protocol):
    """Finds a tenant's site by its plant key, with its signals and machines registered in
    the gateway's ``Ingestor`` (``None``: the tenant has no such site)."""

    async def by_key(self, tenant: str, site_key: str) -> SiteRef | None: ...


class StaticKeys:
    """A fixed set of edge keys (tests, benchmarks, the protocol demo); ``revoke`` one.

    >>> import asyncio
    >>> keys = StaticKeys({"andon_" + "a" * 32 + "_s": EdgeIdentity("a" * 32, "t")})
    >>> asyncio.run(keys.check("andon_" + "a" * 32 + "_s")).identity.tenant
    't'
    >>> asyncio.run(keys.check("andon_" + "a" * 32 + "_x")).refusal
    'bad_secret'
    """

    def __init__(self, keys: dict[str, EdgeIdentity]) -> None:
        self._keys = dict(keys)
        self._ids = {i.key_id: k for k, i in keys.items()}
        self.revoked: set[str] = set()

    def revoke(self, key_id: str) -> None:
        self.revoked.add(key_id)

    async def check(self, key: str) -> KeyCheck:
        parts = key_parts(key)
        if parts is None:
            return KeyCheck(None, "not_a_platform_key")
        kid = parts[0]
        if kid not in self._ids:
            return KeyCheck(None, "unknown_key", key_id=kid)
        if key not in self._keys:
            return KeyCheck(None, "bad_secret", key_id=kid)
        if kid in self.revoked:
            return KeyCheck(None, "revoked_key", True, kid, self._keys[key].tenant)
        return KeyCheck(self._keys[key], key_id=kid)


class StaticSites:
    """Sites known in advance, per tenant: ``{tenant: {site key: site id}}``; their signals
    are registered in the ingestor by whoever built it."""

    def __init__(self, sites: dict[str, dict[str, str]]) -> None:
        self._sites = {t: dict(s) for t, s in sites.items()}

    async def by_key(self, tenant: str, site_key: str) -> SiteRef | None:
        sid = self._sites.get(tenant, {}).get(site_key)
        return None if sid is None else SiteRef(sid, site_key)


@dataclass
class GatewayStats:
    """Running totals since the gateway started (points refused by reason are in
    ``Ingestor.stats.rejected`` with the validation refusals)."""

    frames: int = 0
    frames_stored: int = 0
    frames_refused: Counter[str] = field(default_factory=Counter)
    points_stored: int = 0
    points_duplicate: int = 0
    points_historical: int = 0
    points_acknowledged: int = 0
    """Points in the frames answered ``ok`` (stored, duplicate or refused by validation)."""
    points_conflict: int = 0
    """Part of ``points_duplicate``: same ``(signal, ts)`` as a stored sample, another value."""
    audit_failed: int = 0
    """Refusals whose audit row could not be written (``on_refused`` raised)."""
    on_stored_failed: int = 0
    """Store writes after which the ``on_stored`` hook raised (the frames were stored and
    are acknowledged all the same)."""
    texts_stored: int = 0
    """Text values stored (decision 0202; refused ones are counted with the points)."""
    texts_duplicate: int = 0
    texts_conflict: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "frames": self.frames,
            "frames_stored": self.frames_stored,
            "frames_refused": dict(sorted(self.frames_refused.items())),
            "points_stored": self.points_stored,
            "points_duplicate": self.points_duplicate,
            "points_conflict": self.points_conflict,
            "audit_failed": self.audit_failed,
            "on_stored_failed": self.on_stored_failed,
            "points_historical": self.points_historical,
            "points_acknowledged": self.points_acknowledged,
            "texts_stored": self.texts_stored,
            "texts_duplicate": self.texts_duplicate,
            "texts_conflict": self.texts_conflict,
        }


_MAX_PEEK = 1024 * 1024


def _peek(payload: bytes) -> tuple[str, int, str] | None:
    """``(stream, seq, token)`` from a frame's header alone (its JSON part at most
    ``_MAX_PEEK`` bytes), without reading its columns; ``None`` when that cannot be read."""
    if len(payload) < HEADER.size:
        return None
    magic, _version, _flags, seq, _created, _n, meta_len = HEADER.unpack_from(payload)
    if magic != MAGIC or meta_len > _MAX_PEEK:
        return None
    try:
        meta = json.loads(payload[HEADER.size : HEADER.size + meta_len])
    except ValueError:
        return None
    if not isinstance(meta, dict):
        return None
    stream, token = meta.get("stream"), meta.get("token")
    if not isinstance(stream, str) or not isinstance(token, str) or not 0 <= seq < MAX_SEQ:
        return None
    return stream, int(seq), token


class OutsideSite(ValueError):
    """Names that do not lie in the site the data was sent for."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(f"names outside this site: {', '.join(names[:3])}")
        self.names = names


class KeyRefused(PermissionError):
    """Columns refused whole by ``IngestGateway.submit``: the key, or the site it names.
    ``reason`` is the counter key (``unknown_key``, ``revoked_key``, ``site_not_permitted``,
    ``names_outside_site`` ...)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"ingest refused ({reason}): {detail}")
        self.reason = reason


@dataclass
class ColumnsResult:
    """What ``IngestGateway.columns`` stored: samples (with duplicates and refusals by
    reason), state intervals, open states and part events."""

    accepted: int = 0
    duplicates: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    conflicts: int = 0
    """Part of ``duplicates``: another value at a stored ``(signal, ts)`` (decision 0312)."""
    states: int = 0
    open_states: int = 0
    parts: int = 0
    texts: int = 0
    """Text values stored (decision 0202)."""
    texts_duplicate: int = 0


@dataclass
class FrameResult:
    """What one call of ``IngestGateway.frames`` did: acknowledgements per key id (send
    each only to that key's edge) and the points of the stored frames."""

    acks: dict[str, list[Ack]]
    accepted: int = 0
    duplicates: int = 0
    conflicts: int = 0
    """Part of ``duplicates``: another value at a stored ``(signal, ts)`` (decision 0312)."""
    rejected: dict[str, int] = field(default_factory=dict)
    """Points refused by validation, by reason (their frames are acknowledged)."""
    refused: list[str] = field(default_factory=list)
    """The reason of each frame refused whole (not stored, not acknowledged ``ok``)."""
    texts_accepted: int = 0
    """Text values stored (decision 0202); their refusals are in ``rejected``."""
    texts_duplicate: int = 0


class IngestGateway:
    """Authenticates, checks, validates and stores frames and columns; see the module."""

    def __init__(
        self,
        ingestor: Ingestor,
        keys: KeyDirectory,
        sites: SiteDirectory,
        *,
        key_cache_s: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        log_interval_s: float = 10.0,
    ) -> None:
        if max_frame_bytes < 1:
            raise ValueError(f"max_frame_bytes must be at least 1, got {max_frame_bytes}")
        self.ingestor = ingestor
        self.max_frame_bytes = max_frame_bytes
        self.refusal_log = RateLimitedLog(log_interval_s, monotonic, log.warning)
        """At most one line per (key, reason) per ``log_interval_s``, with a count."""
        self.keys = keys
        self.sites = sites
        self.key_cache_s = key_cache_s
        self.stats = GatewayStats()
        self.on_stored: Callable[[list[Frame]], None] | None = None
        """Called with the frames of each store write (benchmarks, tests)."""
        self.on_refused: Callable[[Refusal], Awaitable[None]] | None = None
        """Awaited for each frame of a known key refused over MQTT (the platform audits it)."""
        self.admit: Callable[[str, int], float] | None = None
        """The tenant's ingest rate limit for MQTT frames: ``(tenant, points)`` → seconds to
        wait, 0 when admitted (the API applies the same limit to HTTPS before the gateway).
        A frame over the limit gets no answer, so the edge sends it again after its
        acknowledgement timeout: the limit slows an edge down and loses nothing."""
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, KeyCheck]] = {}

    async def authenticate(self, key: str) -> KeyCheck:
        """The directory's answer for ``key``, cached for ``key_cache_s``."""
        now = self._monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.key_cache_s:
            return hit[1]
        check = await self.keys.check(key)
        if len(self._cache) >= 10_000:  # a flood of made-up keys cannot grow it forever
            self._cache.clear()
        self._cache[key] = (now, check)
        return check

    async def _report(self, tenant: str | None, key_id: str, reason: str, frame: Frame) -> None:
        if self.on_refused is not None and tenant is not None:
            try:
                n = len(frame.batch) + frame.batch.text_points
                await self.on_refused(Refusal(tenant, key_id, frame.edge, reason, n))
            except Exception as exc:  # the refusal stands and is counted; its audit row is lost
                self.stats.audit_failed += 1
                self.refusal_log.note((f"key {key_id}", "audit_failed"), repr(exc))

    def _refuse(
        self, into: list[str], reason: str, frame: Frame | None, detail: str, who: str = ""
    ) -> None:
        into.append(reason)
        self.stats.frames_refused[reason] += 1
        n = len(frame.batch) + frame.batch.text_points if frame is not None else 1
        self.ingestor.stats.reject(reason, n, detail)
        if not who:
            kp = key_parts(frame.token) if frame is not None else None
            who = f"key {kp[0]}" if kp is not None else "an unknown sender"
        self.refusal_log.note((who, reason), detail)

    def _unanswered(self, into: list[str], reason: str, detail: str, who: str) -> None:
        """A frame left without an answer for the edge to send again: counted by reason
        (frames), not as refused points, since its points are not lost."""
        into.append(reason)
        self.stats.frames_refused[reason] += 1
        self.refusal_log.note((who, reason), detail)

    async def site_of(self, identity: EdgeIdentity, names: Sequence[str]) -> SiteRef | str:
        """The one site all ``names`` lie in, if the key may write it; else the refusal."""
        keys = {n.partition("/")[0] for n in names}
        if len(keys) != 1:
            return "names_outside_site"
        site = await self.sites.by_key(identity.tenant, keys.pop())
        if site is None:
            return "unknown_site"
        if not identity.may_write(site.site_id):
            return "site_not_permitted"
        return site

    async def frames(
        self,
        payloads: Sequence[tuple[str | None, bytes]],
        bearer: EdgeIdentity | None = None,
    ) -> FrameResult:
        """Handle a group of frames. Each item is ``(key id of the topic it came on, frame)``
        (``None`` over HTTPS, where ``bearer`` is the key the API authenticated)."""
        acks: dict[str, list[Ack]] = defaultdict(list)
        fresh: dict[str, list[tuple[str, Frame]]] = defaultdict(list)
        refused: list[str] = []
        for topic_key, payload in payloads:
            self.stats.frames += 1
            who = f"key {topic_key}" if topic_key else "an unknown sender"
            if bearer is not None:
                who = f"key {bearer.key_id}"
            try:
                admitted = await self._check(topic_key, payload, bearer, acks, refused, who)
            except Exception as exc:  # one frame never stops the stream; it is not answered
                self._unanswered(refused, "internal_error", f"{type(exc).__name__}: {exc}", who)
                log.debug("ingest: frame handling failed", exc_info=True)
                continue
            if admitted is not None:
                fresh[admitted[0]].append((admitted[1], admitted[2]))
        return await self._store(fresh, acks, refused)

    async def _check(
        self,
        topic_key: str | None,
        payload: bytes,
        bearer: EdgeIdentity | None,
        acks: dict[str, list[Ack]],
        refused: list[str],
        who: str,
    ) -> tuple[str, str, Frame] | None:
        """Read, authenticate and check one frame: ``(tenant, key id, frame)`` to store, or
        ``None`` when it was answered or refused here."""
        if len(payload) > self.max_frame_bytes:
            detail = f"{len(payload):,} bytes, over the {self.max_frame_bytes:,} byte cap"
            self._refuse(refused, "too_large", None, detail, who)
            head = _peek(payload) if bearer is None else None
            if head is not None:
                check = await self.authenticate(head[2])
                if check.identity is not None and check.key_id == topic_key:
                    why = f"too_large: {detail}"
                    acks[check.key_id].append(ack_for(head[2], head[0], head[1], "refused", why))
            return None
        try:
            frame = decode_frame(payload)
        except FrameError as exc:
            self._refuse(refused, exc.reason, None, str(exc), who)
            return None
        if not 0 <= frame.seq < MAX_SEQ:
            self._refuse(refused, "bad_seq", frame, f"sequence number {frame.seq}", who)
            return None
        if bearer is not None:
            identity = bearer
        else:
            check = await self.authenticate(frame.token)
            if check.identity is None:
                self._refuse(refused, check.refusal, frame, f"edge {frame.edge!r}", who)
                if check.proven and check.key_id == topic_key:
                    acks[check.key_id].append(
                        ack_for(
                            frame.token,
                            frame.stream,
                            frame.seq,
                            "refused",
                            f"key {check.refusal}",
                        )
                    )
                    await self._report(check.tenant, check.key_id, check.refusal, frame)
                return None
            identity = check.identity
            if identity.key_id != topic_key:
                detail = f"key on another edge's topic {topic_key}"
                self._refuse(refused, "topic_mismatch", frame, detail, who)
                return None
        text = frame.batch.text
        if len(frame.batch) == 0 and text is None:  # nothing to store, nothing to refuse
            acks[identity.key_id].append(ack_for(frame.token, frame.stream, frame.seq, "ok"))
            return None
        names = frame.batch.names if text is None else frame.batch.names + text.names
        site = await self.site_of(identity, names)
        if isinstance(site, str):
            self._refuse(refused, site, frame, f"edge {frame.edge!r}: {frame.batch.names[:2]}")
            acks[identity.key_id].append(
                ack_for(frame.token, frame.stream, frame.seq, "refused", site)
            )
            if bearer is None:  # the API audits its own refusals
                await self._report(identity.tenant, identity.key_id, site, frame)
            return None
        admit = self.admit if bearer is None else None
        if admit is not None and admit(identity.tenant, len(frame.batch) + len(text or ())):
            self.stats.frames_refused["rate_limited"] += 1
            refused.append("rate_limited")
            return None
        return identity.tenant, identity.key_id, frame

    async def _store(
        self,
        fresh: dict[str, list[tuple[str, Frame]]],
        acks: dict[str, list[Ack]],
        refused: list[str],
    ) -> FrameResult:
        """Store the admitted frames, one write per tenant, and acknowledge them."""
        out = FrameResult({})
        rejected: Counter[str] = Counter()
        for tenant, items in fresh.items():
            frames = [f for _, f in items]
            batch = SampleBatch.concat([f.batch for f in frames])
            try:
                rep = await self.ingestor.samples(tenant, batch.numeric())
                if batch.text is not None:
                    texts = await ingest_text(self.ingestor, tenant, batch.text)
                    out.texts_accepted += texts.accepted
                    out.texts_duplicate += texts.duplicates
                    rejected.update(texts.rejected)
                    self.stats.texts_stored += texts.accepted
                    self.stats.texts_duplicate += texts.duplicates
                    self.stats.texts_conflict += texts.conflicts
            except PermissionError as exc:
                for kid, f in items:
                    self._refuse(refused, "tenant_not_registered", f, str(exc))
                    acks[kid].append(ack_for(f.token, f.stream, f.seq, "rejected", str(exc)))
                continue
            except Exception as exc:  # a full disk, a broken store...
                # not acknowledged: each edge keeps its frames and sends them again
                why = f"store write failed: {type(exc).__name__}: {exc}"
                for kid, _ in items:
                    self._unanswered(refused, "store_failed", why, f"key {kid}")
                log.debug("ingest: store write failed", exc_info=True)
                continue
            out.accepted += rep.accepted
            out.duplicates += rep.duplicates
            out.conflicts += rep.conflicts
            rejected.update(rep.rejected)
            self.stats.points_stored += rep.accepted
            self.stats.points_duplicate += rep.duplicates
            self.stats.points_conflict += rep.conflicts
            self.stats.frames_stored += len(frames)
            for kid, f in items:
                acks[kid].append(ack_for(f.token, f.stream, f.seq, "ok"))
                self.stats.points_acknowledged += len(f.batch)
                if f.historical:
                    self.stats.points_historical += len(f.batch)
            if self.on_stored is not None:
                try:
                    self.on_stored(frames)
                except Exception:  # stored is stored: the acknowledgements still go out
                    self.stats.on_stored_failed += 1
                    log.exception("ingest: the on_stored hook failed")
        out.acks = dict(acks)
        out.rejected = dict(rejected)
        out.refused = refused
        return out

    async def submit(
        self,
        key: str,
        *,
        samples: SampleBatch | None = None,
        states: StateBatch | None = None,
        open_states: StateBatch | None = None,
        parts: PartBatch | None = None,
    ) -> ColumnsResult:
        """Columns from an in-process producer holding an edge key (the demo's factory):
        the key authenticated through the directory (cached as for frames), every name in
        one site of its tenant that it may write, then stored as :meth:`columns` stores.
        The samples' text part (``SampleBatch.text``) is stored as text values.
        Refusals are counted like a frame's and raise :class:`KeyRefused`."""
        check = await self.authenticate(key)
        who = f"key {check.key_id}" if check.key_id else "an unknown sender"
        texts = samples.text if samples is not None and samples.text is not None else None
        if samples is not None:
            samples = samples.numeric()
        parts_ = [
            b for b in (samples, states, open_states, parts, texts) if b is not None and len(b)
        ]
        points = sum(len(b) for b in parts_)
        if check.identity is None:
            self._refuse_columns(check.refusal, points, who)
        identity = check.identity
        names = sorted({n for b in parts_ for n in b.names})
        if not names:
            return ColumnsResult()
        site = await self.site_of(identity, names)
        if isinstance(site, str):
            self._refuse_columns(site, points, who, f": {names[:2]}")
        return await self.columns(
            identity.tenant,
            site,
            samples=samples,
            states=states,
            open_states=open_states,
            parts=parts,
            texts=texts,
        )

    def _refuse_columns(self, reason: str, points: int, who: str, detail: str = "") -> NoReturn:
        self.stats.frames_refused[reason] += 1
        self.ingestor.stats.reject(reason, max(points, 1), f"{who}{detail}")
        self.refusal_log.note((who, reason), f"{who}{detail}")
        raise KeyRefused(reason, f"{who}{detail}")

    async def columns(
        self,
        tenant: str,
        site: SiteRef,
        *,
        samples: SampleBatch | None = None,
        states: StateBatch | None = None,
        open_states: StateBatch | None = None,
        parts: PartBatch | None = None,
        texts: TextBatch | None = None,
    ) -> ColumnsResult:
        """Columns from the JSON route for ``site`` of ``tenant`` (the route authenticated the
        key and checked it may write the site). Raises ``OutsideSite`` before storing
        anything when a name lies outside the site."""
        base = site.key + "/"
        for part in (samples, states, open_states, parts, texts):
            if part is not None:
                outside = [n for n in part.names if not n.startswith(base)]
                if outside:
                    self.stats.frames_refused["names_outside_site"] += 1
                    raise OutsideSite(outside)
        out = ColumnsResult()
        if samples is not None:
            rep = await self.ingestor.samples(tenant, samples)
            out.accepted, out.duplicates, out.rejected = rep.accepted, rep.duplicates, rep.rejected
            out.conflicts = rep.conflicts
            self.stats.points_stored += rep.accepted
            self.stats.points_duplicate += rep.duplicates
            self.stats.points_conflict += rep.conflicts
        rows: Counter[str] = Counter(out.rejected)  # state and part rows refused, too
        if texts is not None:
            trep = await ingest_text(self.ingestor, tenant, texts)
            out.texts, out.texts_duplicate = trep.accepted, trep.duplicates
            rows.update(trep.rejected)
            self.stats.texts_stored += trep.accepted
            self.stats.texts_duplicate += trep.duplicates
            self.stats.texts_conflict += trep.conflicts
        if states is not None:
            out.states = await self.ingestor.states(tenant, states, rows)
        if open_states is not None:
            out.open_states = await self.ingestor.open_states(tenant, open_states, rows)
        if parts is not None:
            out.parts = await self.ingestor.parts(tenant, parts, rows)
        out.rejected = dict(sorted(rows.items()))
        return out
