"""The MTConnect reader (see the package docstring)."""

from __future__ import annotations

import asyncio
import logging
import math
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from andon.connect.base import Health, Manifest, within
from andon.connect.net import Backoff
from andon.model.types import Quality, SampleBatch, to_micros

__all__ = [
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
    requirements=(),
    iot_class="local_polling",
    resumable=True,
)


class MTConnectConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    url: str = Field(min_length=1, description="Agent base URL, e.g. http://127.0.0.1:5000")
    items: dict[str, str] = Field(min_length=1, description="dataItemId → signal path")
    poll_s: float = Field(1.0, gt=0)
    count: int = Field(1000, gt=0)
    timeout_s: float = Field(5.0, gt=0)


@dataclass(frozen=True)
class Observation:
    item: str
    sequence: int
    ts_us: int
    value: float | None  # None: UNAVAILABLE or not a number


@dataclass(frozen=True)
class StreamsDoc:
    instance_id: int
    first: int
    next: int
    observations: list[Observation]
    error: str | None = None


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
    """
    root = ET.fromstring(xml)
    header = next((e for e in root.iter() if _local(e.tag) == "Header"), None)
    if header is None:
        raise ValueError("no Header in the document")
    inst = int(header.get("instanceId", "0"))
    first = int(header.get("firstSequence", "0"))
    nxt = int(header.get("nextSequence", "0"))
    if _local(root.tag) == "MTConnectError":
        err = next((e for e in root.iter() if _local(e.tag) == "Error"), None)
        code = err.get("errorCode", "") if err is not None else ""
        return StreamsDoc(inst, first, nxt, [], code or "ERROR")
    obs: list[Observation] = []
    for e in root.iter():
        item, seq = e.get("dataItemId"), e.get("sequence")
        if item is None or seq is None:
            continue
        text = (e.text or "").strip()
        value: float | None
        try:
            number = float(text)
            value = number if math.isfinite(number) else None
        except ValueError:
            value = None
        stamp = e.get("timestamp", "")
        ts = to_micros(datetime.fromisoformat(stamp.replace("Z", "+00:00")))
        obs.append(Observation(item, int(seq), ts, value))
    obs.sort(key=lambda o: o.sequence)
    return StreamsDoc(inst, first, nxt, obs)


async def _get(url: str, timeout: float) -> tuple[int, bytes]:
    """Minimal HTTP/1.1 GET (loopback agents; no TLS, no chunked transfer)."""
    u = urlsplit(url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    target = u.path + (f"?{u.query}" if u.query else "")
    reader, writer = await within(asyncio.open_connection(host, port), timeout)
    try:
        writer.write(
            f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        raw = await within(reader.read(), timeout)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, body


class MTConnectConnector:
    manifest = MANIFEST

    def __init__(self, config: MTConnectConfig) -> None:
        self.config = config
        self.name = config.name
        self.health = Health(config.name)
        self.lost = 0
        """Observations the agent dropped before this reader could fetch them (gaps)."""

    def _batch(self, obs: list[Observation]) -> SampleBatch:
        keep = [o for o in obs if o.item in self.config.items]
        names = list(dict.fromkeys(self.config.items[o.item] for o in keep))
        code = {n: i for i, n in enumerate(names)}
        return SampleBatch.build(
            names,
            np.array([code[self.config.items[o.item]] for o in keep], dtype=np.int32),
            [o.ts_us for o in keep],
            [math.nan if o.value is None else o.value for o in keep],
            [Quality.BAD if o.value is None else Quality.GOOD for o in keep],
        )

    async def batches(self, cursor: str | None) -> AsyncIterator[tuple[SampleBatch, str | None]]:
        cfg = self.config
        base = cfg.url.rstrip("/")
        device = base
        backoff = Backoff(initial_s=min(0.1, cfg.poll_s), max_s=max(5.0, cfg.poll_s))
        instance, nxt = None, None
        if cursor:
            i, _, n = cursor.partition(":")
            instance, nxt = int(i), int(n)
        failing = False
        while True:
            t0 = time.monotonic()
            try:
                if nxt is None:
                    status, body = await _get(f"{base}/current", cfg.timeout_s)
                    if status != 200:
                        raise ValueError(f"/current answered HTTP {status}")
                    doc = parse_streams(body)
                    instance, nxt = doc.instance_id, doc.next
                    batch = self._batch(doc.observations)
                else:
                    url = f"{base}/sample?from={nxt}&count={cfg.count}"
                    _status, body = await _get(url, cfg.timeout_s)  # 400 carries an error doc
                    doc = parse_streams(body)
                    if doc.instance_id != instance:
                        self.health.reject(device, "agent_restarted")
                        log.warning("mtconnect %s: agent restarted; resyncing", cfg.name)
                        nxt = None
                        continue
                    if doc.error is not None or nxt < doc.first:
                        gap = max(0, doc.first - nxt)
                        self.lost += gap
                        self.health.reject(device, "sequence_gap", gap)
                        log.warning("mtconnect %s: gap of %d observations", cfg.name, gap)
                        nxt = None
                        continue
                    batch = self._batch(doc.observations)
                    nxt = doc.next
                backoff.reset()
                if failing:
                    self.health.reconnected(device)
                failing = False
                self.health.success(device, len(batch), time.monotonic() - t0)
                yield batch, f"{instance}:{nxt}"
            except (OSError, TimeoutError, ValueError, ET.ParseError, IndexError) as exc:
                self.health.error(device, exc or "timeout")
                failing = True
                log.warning("mtconnect %s: %s", cfg.name, exc)
                await asyncio.sleep(backoff.next())
                continue
            await asyncio.sleep(cfg.poll_s)
