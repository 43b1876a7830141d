"""Store-and-forward over HTTPS: the edge POSTs buffered batches to the platform's API,
``POST {url}/api/v1/sites/{site}/ingest`` with its edge API key as a bearer token, and
deletes a batch only when the platform answered 2xx with the counts it took. Each batch is
one binary frame (``andon.wire.frames``, ``Content-Type: application/vnd.andon.frame``), the
same as over MQTT, historical flag included; the route also takes JSON (``ingest_body``)
from simple clients.

For sites where only outbound HTTPS is allowed through the firewall, which is common; the
MQTT uplink (``uplink``) is faster. The semantics are the same as MQTT's where they can be:

* The buffer is written before anything is sent; a batch leaves it only on a 2xx whose
  ``accepted + duplicates + rejected`` answer for it. Up to ``window`` requests are in
  flight; live batches go ahead of the backlog (``EdgeBuffer.next_unsent``).
* Resending is safe: the platform's store keeps the first write of each ``(tenant, signal,
  ts)`` and counts the repeat as a duplicate, so a batch whose answer was lost (platform
  restart, network cut) is stored once.
* 5xx, 408, 429 and network errors are the platform's or the network's trouble: retry
  forever with capped backoff, honouring ``Retry-After``.
* Any other 4xx (401, 403, 404, 413, 422...) will not get better by sending the same thing
  again: the uplink stops, keeps the data, and reports why in its stats, the log and
  ``andon edge status``, instead of spinning. Fix the key or the site file and restart.

When given a health source, the uplink also POSTs the edge's connection health to
``/api/v1/sites/{site}/edge/health`` every ``health_interval_s`` (best effort: a failed
health post is logged and retried at the next interval, it never blocks data).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import math
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from andon.connect.base import within
from andon.edge.buffer import BufferWriteError, EdgeBuffer, StoredBatch
from andon.edge.uplink import UplinkHalted, UplinkStats
from andon.wire.frames import FRAME_CONTENT_TYPE, batch_from_parts, frame_from_parts
from andon.wire.health import EdgeHealth
from andon.wire.net import Backoff, describe_connect_error

__all__ = [
    "HealthReporter",
    "HttpsUplink",
    "HttpsUplinkConfig",
    "UplinkHalted",
    "ingest_body",
    "retry_after_s",
]

log = logging.getLogger("andon.edge.https")

_RETRY_STATUSES = {408, 429}


@dataclass(frozen=True)
class HttpsUplinkConfig:
    """Where and how the HTTPS uplink sends."""

    edge: str
    url: str
    """The platform's base URL (``https://platform.example``); the API is under it."""
    site: str
    key: str
    tls: ssl.SSLContext | None = None
    window: int = 4
    timeout_s: float = 30.0
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 30.0
    max_retry_after_s: float = 300.0
    health_interval_s: float = 15.0

    @property
    def ingest_url(self) -> str:
        return f"{self.url.rstrip('/')}/api/v1/sites/{self.site}/ingest"

    @property
    def health_url(self) -> str:
        return f"{self.url.rstrip('/')}/api/v1/sites/{self.site}/edge/health"


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date).

    >>> retry_after_s("7")
    7.0
    >>> retry_after_s("Thu, 01 Jan 1970 00:00:10 GMT", now=4.0)
    6.0
    >>> retry_after_s("soon") is None
    True
    """
    if not value:
        return None
    v = value.strip()
    if v.isdigit():
        return float(v)
    try:
        when = email.utils.parsedate_to_datetime(v)
    except (TypeError, ValueError):
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def ingest_body(b: StoredBatch) -> dict[str, Any]:
    """The ``IngestIn`` JSON of a buffered batch (NaN travels as ``null``)."""
    batch = batch_from_parts(b.points, b.names_json, b.body)
    values = batch.value.tolist()
    return {
        "samples": {
            "names": list(batch.names),
            "index": batch.index.tolist(),
            "ts": batch.ts.tolist(),
            "value": [None if math.isnan(v) or math.isinf(v) else v for v in values],
            "quality": batch.quality.tolist(),
        }
    }


def _detail(r: httpx.Response) -> str:
    try:
        d = r.json().get("detail")
    except (ValueError, AttributeError):
        d = None
    text = d if isinstance(d, str) else json.dumps(d) if d is not None else r.text[:200]
    return f"HTTP {r.status_code}: {text}"


def _api_client(
    cfg: HttpsUplinkConfig, transport: httpx.AsyncBaseTransport | None, connections: int
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        headers={"Authorization": f"Bearer {cfg.key}", "User-Agent": f"andon-edge/{cfg.edge}"},
        timeout=cfg.timeout_s,
        verify=cfg.tls if cfg.tls is not None else True,
        transport=transport,
        limits=httpx.Limits(max_connections=connections),
    )


class HealthReporter:
    """POSTs the edge's connection health to ``/api/v1/sites/{site}/edge/health`` every
    ``health_interval_s``, best effort: a failed post is counted and logged, and the next
    interval tries again. The HTTPS uplink runs one on its own client; an edge whose data
    goes over MQTT runs one beside its uplink when the site file names the platform's API."""

    def __init__(
        self,
        config: HttpsUplinkConfig,
        health: Callable[[], Awaitable[EdgeHealth]],
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.health = health
        self.posts = 0
        self.failures = 0
        self._transport = transport

    async def run(self) -> None:
        """Report until cancelled, on a client of its own."""
        async with _api_client(self.config, self._transport, 1) as client:
            await self.loop(client)

    async def loop(self, client: httpx.AsyncClient) -> None:
        while True:
            try:
                doc = await self.health()
                r = await client.post(self.config.health_url, json=doc.model_dump(mode="json"))
                if 200 <= r.status_code < 300:
                    self.posts += 1
                else:
                    self.failures += 1
                    log.warning("health post refused: %s", _detail(r))
            except httpx.TransportError as exc:
                self.failures += 1
                log.debug("health post failed: %s", exc)
            await asyncio.sleep(self.config.health_interval_s)


class HttpsUplink:
    """Forwards a buffer's batches over HTTPS until cancelled or halted."""

    def __init__(
        self,
        buffer: EdgeBuffer,
        config: HttpsUplinkConfig,
        health: Callable[[], Awaitable[EdgeHealth]] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.buffer = buffer
        self.config = config
        self.stats = UplinkStats()
        self.reporter = None if health is None else HealthReporter(config, health)
        self._transport = transport
        self.halted = asyncio.Event()

    def _client(self) -> httpx.AsyncClient:
        return _api_client(self.config, self._transport, self.config.window + 1)

    async def run(self) -> None:
        """Send until cancelled; returns (after logging why) when the platform refuses in a
        way resending cannot fix. The buffer keeps everything not acknowledged."""
        async with self._client() as client:
            tasks = [asyncio.create_task(self._send_loop(client))]
            if self.reporter is not None:
                tasks.append(asyncio.create_task(self.reporter.loop(client)))
            try:
                await tasks[0]
            except UplinkHalted as exc:
                self.stats.connected = False
                self.stats.last_error = f"stopped: {exc}"
                self.halted.set()
                log.error("uplink stopped: %s; the buffer keeps the data, fix and restart", exc)
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _send_loop(self, client: httpx.AsyncClient) -> None:
        cfg = self.config
        backoff = Backoff(cfg.backoff_initial_s, cfg.backoff_max_s)
        first = True
        gap = False  # the last round failed: until one succeeds, what is held is backlog
        while True:
            if first:  # what the buffer holds now is backlog: live data goes ahead of it
                await self.buffer.release()
                await self.buffer.mark_backlog()
                first = False
            elif gap:  # what came in during the gap goes out flagged historical
                await self.buffer.mark_backlog()
            self.buffer.changed.clear()
            batches = await self.buffer.next_unsent(cfg.window)
            if not batches:
                with contextlib.suppress(TimeoutError):
                    await within(self.buffer.changed.wait(), 1.0)
                continue
            results = await asyncio.gather(*(self._post(client, b) for b in batches))
            retry: list[StoredBatch] = []
            wait: float | None = None
            for b, res in zip(batches, results, strict=True):
                if isinstance(res, UplinkHalted):
                    left = [x.id for x, r in zip(batches, results, strict=True) if r is not True]
                    await self.buffer.release(left)
                    raise res
                if res is True:
                    continue
                retry.append(b)
                if isinstance(res, float):
                    wait = max(wait or 0.0, res)
            gap = bool(retry)
            if retry:
                await self.buffer.release([b.id for b in retry])
                self.stats.frames_resent += len(retry)
                delay = backoff.next()
                if wait is not None:
                    delay = min(wait, cfg.max_retry_after_s)
                await asyncio.sleep(delay)
            else:
                backoff.reset()

    async def _post(
        self, client: httpx.AsyncClient, b: StoredBatch
    ) -> bool | float | UplinkHalted | None:
        """True: acknowledged. A float: retry after that many seconds (``Retry-After``).
        None: retry with backoff. ``UplinkHalted``: stop."""
        cfg = self.config
        # the same binary frame as over MQTT: no per-point encoding on either end
        body = frame_from_parts(
            cfg.edge, cfg.key, b.stream, b.seq, b.created_us, b.historical, b.points,
            b.names_json, b.body,
        )  # fmt: skip
        self.stats.frames_sent += 1
        try:
            r = await client.post(
                cfg.ingest_url, content=body, headers={"Content-Type": FRAME_CONTENT_TYPE}
            )
        except httpx.TransportError as exc:
            cause = exc.__context__ or exc
            self._failed(describe_connect_error(cause if isinstance(cause, BaseException) else exc))
            return None
        if r.status_code >= 500 or r.status_code in _RETRY_STATUSES:
            self._failed(_detail(r))
            return retry_after_s(r.headers.get("Retry-After"))
        if not 200 <= r.status_code < 300:
            return UplinkHalted(f"{_detail(r)} from {cfg.ingest_url}")
        try:
            out = r.json()
            taken = int(out["accepted"]) + int(out["duplicates"])
            refused = sum(int(v) for v in dict(out["rejected"]).values())
        except (ValueError, KeyError, TypeError, AttributeError):
            self._failed(f"HTTP {r.status_code} without ingest counts: {r.text[:200]}")
            return None
        if taken + refused != b.points:
            log.warning(
                "platform answered %d+%d for %s#%d of %d points",
                taken,
                refused,
                b.stream,
                b.seq,
                b.points,
            )
        if refused:
            self.stats.rejected += refused
            log.warning("platform refused %d points of %s#%d: %s", refused, b.stream, b.seq, out)
        try:
            await self.buffer.ack([(b.stream, b.seq)])
        except BufferWriteError as exc:  # rolled back: sent again, stored once
            self._failed(str(exc))
            return None
        if not self.stats.connected:
            self.stats.connects += 1
        self.stats.connected = True
        self.stats.acks += 1
        self.stats.last_ack_monotonic = time.monotonic()
        return True

    def _failed(self, why: str) -> None:
        if self.stats.connected or not self.stats.last_error:
            log.warning("uplink: %s; retrying", why)
        self.stats.connected = False
        self.stats.connect_failures += 1
        self.stats.last_error = why
