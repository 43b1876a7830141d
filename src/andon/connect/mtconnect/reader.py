"""The MTConnect reader (see the package docstring)."""

from __future__ import annotations

import asyncio
import logging
import math
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

import httpx
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from andon.connect.base import Health, Manifest
from andon.model.types import Quality, SampleBatch, TextBatch, to_micros
from andon.wire.net import Backoff, tls_context

__all__ = [
    "CONDITION_LEVELS",
    "MANIFEST",
    "MTConnectConfig",
    "MTConnectConnector",
    "Observation",
    "StreamsDoc",
    "parse_streams",
]

log = logging.getLogger("andon.connect.mtconnect")

MANIFEST = Manifest(
    domain="mtconnect",
    name="MTConnect agent reader",
    protocol="mtconnect-http",
    requirements=("httpx>=0.27",),
    iot_class="local_polling",
    resumable=True,
)

CONDITION_LEVELS: Final = {"Normal": 0.0, "Warning": 1.0, "Fault": 2.0}
"""A condition is stored as its level: ``Normal`` 0, ``Warning`` 1, ``Fault`` 2 (good
quality); ``Unavailable`` is a bad sample."""
_AXES: Final = ("x", "y", "z")
_MAX_FAILS_AT_ONE_SEQUENCE: Final = 3


class MTConnectConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    url: str = Field(min_length=1, description="Agent base URL, e.g. http://127.0.0.1:5000")
    items: dict[str, str] = Field(min_length=1, description="dataItemId → signal path")
    poll_s: float = Field(1.0, gt=0)
    count: int = Field(1000, gt=0)
    timeout_s: float = Field(5.0, gt=0)
    ca_file: str | None = Field(
        None, description="CA to verify an https:// agent (default: system)"
    )


@dataclass(frozen=True)
class Observation:
    item: str
    sequence: int
    ts_us: int
    value: float | None  # None: UNAVAILABLE (or text)
    component: str | None = None  # "x", "y", "z" (or "0", "1"...) of a vector value
    text: str | None = None
    """An event's text (``Execution`` ``ACTIVE``, a program name), travelling as text."""
    event: bool = False
    """From the ``Events`` category."""


@dataclass(frozen=True)
class StreamsDoc:
    instance_id: int
    first: int | None  # None: not given (error documents)
    next: int | None
    observations: list[Observation]
    error: str | None = None
    refused: list[tuple[str, str, str]] = field(default_factory=list)
    """Observations not turned into values: ``(dataItemId, reason, detail)``."""


def _int(header: ET.Element, name: str) -> int | None:
    raw = header.get(name)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"Header {name}={raw!r} is not an integer") from None


def _observe(
    e: ET.Element, group: str, item: str, seq: int, ts: int
) -> tuple[list[Observation], tuple[str, str] | None]:
    """The values of one observation element, or why it has none."""
    tag = _local(e.tag)
    text = (e.text or "").strip()
    if group == "Condition":
        if tag == "Unavailable":
            return [Observation(item, seq, ts, None)], None
        level = CONDITION_LEVELS.get(tag)
        if level is None:
            return [], ("unknown_condition", f"condition <{tag}>")
        return [Observation(item, seq, ts, level)], None
    event = group == "Events"
    if text == "UNAVAILABLE":
        return [Observation(item, seq, ts, None, event=event)], None
    if tag.endswith("TimeSeries") or e.get("sampleCount") is not None:
        return [], ("time_series", f"<{tag}> with {e.get('sampleCount')} samples")
    parts = text.split()
    try:
        numbers = [float(x) for x in parts]
    except ValueError:
        if event:  # ACTIVE, AUTOMATIC, O1234 ...: an event's value is text (decision 0202)
            return [Observation(item, seq, ts, None, text=text, event=True)], None
        return [], ("non_numeric", f"<{tag}> {text[:40]!r}")
    if event and len(numbers) == 1 and math.isfinite(numbers[0]):
        return [Observation(item, seq, ts, numbers[0], event=True)], None
    if not numbers:
        return [], ("non_numeric", f"<{tag}> is empty")
    if not all(math.isfinite(n) for n in numbers):
        return [], ("non_finite_value", f"<{tag}> {text[:40]!r}")
    if len(numbers) == 1:
        return [Observation(item, seq, ts, numbers[0])], None
    names = _AXES if len(numbers) == 3 else tuple(str(k) for k in range(len(numbers)))
    return [Observation(item, seq, ts, n, c) for n, c in zip(numbers, names, strict=True)], None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_streams(xml: bytes) -> StreamsDoc:
    """Parse an MTConnectStreams (or MTConnectError) document.

    >>> doc = parse_streams(b'<MTConnectStreams><Header instanceId="7" firstSequence="1" '
    ...     b'nextSequence="3"/><Streams><DeviceStream><ComponentStream><Samples>'
    ...     b'<SpindleSpeed dataItemId="s1" sequence="2" timestamp="2026-01-01T00:00:00Z">'
    ...     b'1200.5</SpindleSpeed></Samples></ComponentStream></DeviceStream></Streams>'
    ...     b'</MTConnectStreams>')
    >>> doc.instance_id, doc.next, doc.observations[0].value
    (7, 3, 1200.5)

    Numbers, ``UNAVAILABLE`` (``None``: a bad sample), condition levels
    (``CONDITION_LEVELS``), vectors (one observation per component) and the text of events
    (``Observation.text``) become observations; text in a sample, time series and
    observations with a bad timestamp or sequence are listed in ``refused`` with the
    reason, and the rest of the document is kept.
    """
    root = ET.fromstring(xml)
    header = next((e for e in root.iter() if _local(e.tag) == "Header"), None)
    if header is None:
        raise ValueError("no Header in the document")
    inst = _int(header, "instanceId")
    if inst is None:
        raise ValueError("Header has no instanceId")
    first, nxt = _int(header, "firstSequence"), _int(header, "nextSequence")
    if _local(root.tag) == "MTConnectError":
        err = next((e for e in root.iter() if _local(e.tag) == "Error"), None)
        code = err.get("errorCode", "") if err is not None else ""
        return StreamsDoc(inst, first, nxt, [], code or "ERROR")
    if first is None or nxt is None:
        raise ValueError("Header has no firstSequence/nextSequence")
    obs: list[Observation] = []
    refused: list[tuple[str, str, str]] = []
    for group in root.iter():
        gname = _local(group.tag)
        if gname not in ("Samples", "Events", "Condition"):
            continue
        for e in group:
            item, seq_text = e.get("dataItemId"), e.get("sequence")
            if item is None:
                continue
            stamp = e.get("timestamp", "")
            try:
                seq = int(seq_text or "")
            except ValueError:
                refused.append((item, "bad_sequence", f"sequence {seq_text!r}"))
                continue
            try:
                ts = to_micros(datetime.fromisoformat(stamp.replace("Z", "+00:00")))
            except (ValueError, OverflowError):
                refused.append((item, "bad_timestamp", f"sequence {seq}: {stamp!r}"))
                continue
            got, why = _observe(e, gname, item, seq, ts)
            obs += got
            if why is not None:
                refused.append((item, why[0], f"sequence {seq}: {why[1]}"))
    obs.sort(key=lambda o: o.sequence)
    return StreamsDoc(inst, first, nxt, obs, refused=refused)


class MTConnectConnector:
    manifest = MANIFEST

    def __init__(self, config: MTConnectConfig) -> None:
        self.config = config
        self.name = config.name
        self.health = Health(config.name)
        self.lost = 0
        """Observations the agent dropped before this reader could fetch them (gaps)."""
        self.tls = tls_context(config.ca_file) if config.url.startswith("https://") else None
        self._numeric_events: set[str] = set()
        """Events seen with a number (a part count): their ``UNAVAILABLE`` is a bad sample;
        any other event's is a bad text value ``UNAVAILABLE`` (decision 0202)."""

    def _batch(self, doc: StreamsDoc, device: str) -> SampleBatch:
        items = self.config.items
        for item, reason, detail in doc.refused:
            if item in items:
                self.health.reject(device, reason)
                log.warning("mtconnect %s: %s: %s: %s", self.name, item, reason, detail)
        keep: list[Observation] = []
        texts: list[Observation] = []
        for o in doc.observations:
            if o.item not in items:
                continue
            if o.event and o.value is not None:
                self._numeric_events.add(o.item)
            if o.text is not None or (
                o.event and o.value is None and o.item not in self._numeric_events
            ):
                texts.append(o)
            else:
                keep.append(o)
        paths = [
            items[o.item] if o.component is None else f"{items[o.item]}/{o.component}" for o in keep
        ]
        names = list(dict.fromkeys(paths))
        code = {n: i for i, n in enumerate(names)}
        return SampleBatch.build(
            names,
            np.array([code[p] for p in paths], dtype=np.int32),
            [o.ts_us for o in keep],
            [math.nan if o.value is None else o.value for o in keep],
            [Quality.BAD if o.value is None else Quality.GOOD for o in keep],
            text=self._texts(texts) if texts else None,
        )

    def _texts(self, obs: list[Observation]) -> TextBatch:
        items = self.config.items
        names = list(dict.fromkeys(items[o.item] for o in obs))
        code = {n: i for i, n in enumerate(names)}
        return TextBatch.build(
            names,
            [code[items[o.item]] for o in obs],
            [o.ts_us for o in obs],
            ["UNAVAILABLE" if o.text is None else o.text for o in obs],
            [Quality.BAD if o.text is None else Quality.GOOD for o in obs],
        )

    async def _get(self, client: httpx.AsyncClient, url: str) -> tuple[int, bytes]:
        r = await client.get(url)
        return r.status_code, r.content

    async def batches(self, cursor: str | None) -> AsyncIterator[tuple[SampleBatch, str | None]]:
        cfg = self.config
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(cfg.timeout_s),
            verify=self.tls if self.tls is not None else True,
            follow_redirects=False,
        ) as client:
            async for out in self._loop(client, cursor):
                yield out

    async def _loop(
        self, client: httpx.AsyncClient, cursor: str | None
    ) -> AsyncIterator[tuple[SampleBatch, str | None]]:
        cfg = self.config
        base = cfg.url.rstrip("/")
        device = base
        backoff = Backoff(initial_s=min(0.1, cfg.poll_s), max_s=max(5.0, cfg.poll_s))
        instance: int | None = None
        nxt: int | None = None
        if cursor:
            i, _, n = cursor.partition(":")
            instance, nxt = int(i), int(n)
        failing = False
        fails_at: tuple[int | None, int] = (None, 0)  # (from, consecutive unreadable answers)
        skipped_from: int | None = None
        while True:
            t0 = time.monotonic()
            try:
                if nxt is None:
                    status, body = await self._get(client, f"{base}/current")
                    if status != 200:
                        raise ValueError(f"/current answered HTTP {status}")
                    doc = parse_streams(body)
                    if skipped_from is not None and doc.instance_id == instance and doc.next:
                        # resync after unreadable answers: what /current does not hold is lost
                        held = sum(1 for o in doc.observations if o.sequence >= skipped_from)
                        gap = max(0, doc.next - skipped_from - held)
                        self.lost += gap
                        if gap:
                            self.health.reject(device, "sequence_gap", gap)
                    skipped_from = None
                    instance, nxt = doc.instance_id, doc.next
                    batch = self._batch(doc, device)
                else:
                    url = f"{base}/sample?from={nxt}&count={cfg.count}"
                    _status, body = await self._get(client, url)  # 400 carries an error doc
                    doc = parse_streams(body)
                    if doc.instance_id != instance:
                        self.health.reject(device, "agent_restarted")
                        log.warning("mtconnect %s: agent restarted; resyncing", cfg.name)
                        nxt = None
                        continue
                    if doc.error is not None or (doc.first is not None and nxt < doc.first):
                        nxt = await self._after_gap(client, base, device, nxt, instance, doc)
                        continue
                    batch = self._batch(doc, device)
                    nxt = doc.next
                fails_at = (None, 0)
                backoff.reset()
                if failing:
                    self.health.reconnected(device)
                failing = False
                read = len(batch) + batch.text_points
                self.health.success(device, read, time.monotonic() - t0, batch.text_points)
                yield batch, f"{instance}:{nxt}"
            except (httpx.HTTPError, OSError, ValueError, ET.ParseError) as exc:
                why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                self.health.error(device, why)
                failing = True
                log.warning("mtconnect %s: %s", cfg.name, why)
                if isinstance(exc, ValueError | ET.ParseError) and nxt is not None:
                    # the agent answers, but not with a readable document: do not ask for
                    # the same sequence forever
                    tries = fails_at[1] + 1 if fails_at[0] == nxt else 1
                    fails_at = (nxt, tries)
                    if tries >= _MAX_FAILS_AT_ONE_SEQUENCE:
                        self.health.reject(device, "unreadable_document")
                        log.warning(
                            "mtconnect %s: from=%d unreadable %d times; resyncing",
                            cfg.name,
                            nxt,
                            tries,
                        )
                        skipped_from, nxt, fails_at = nxt, None, (None, 0)
                await asyncio.sleep(backoff.next())
                continue
            await asyncio.sleep(cfg.poll_s)

    async def _after_gap(
        self,
        client: httpx.AsyncClient,
        base: str,
        device: str,
        nxt: int,
        instance: int | None,
        doc: StreamsDoc,
    ) -> int | None:
        """The sequence to read from after the agent's buffer overran this reader; the lost
        observations (from ``nxt`` to the buffer's first sequence) are counted. Error
        documents carry no sequence numbers, so the buffer's start is asked of ``/current``."""
        first = doc.first if doc.error is None else None
        if first is None:
            status, body = await self._get(client, f"{base}/current")
            if status != 200:
                raise ValueError(f"/current answered HTTP {status} (after {doc.error})")
            cur = parse_streams(body)
            if cur.instance_id != instance:
                self.health.reject(device, "agent_restarted")
                return None
            first = cur.first
        if first is None:
            return None
        gap = max(0, first - nxt)
        self.lost += gap
        if gap:
            self.health.reject(device, "sequence_gap", gap)
        log.warning(
            "mtconnect %s: %s at from=%d: %d observations lost",
            self.name,
            doc.error or "gap",
            nxt,
            gap,
        )
        return max(first, nxt)
