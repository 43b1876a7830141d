"""One conformance suite that every connector type passes, found through the registry: a
connector type without a harness fails here, so a new protocol cannot skip it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from andon.connect.base import Connector
from andon.connect.registry import check_manifest, connector_types
from andon.model.types import Quality, SampleBatch
from tests.connect.harness import HARNESSES, Peer

TYPES = sorted(connector_types())


def _check_batch(batch: SampleBatch, signals: set[str]) -> None:
    assert isinstance(batch, SampleBatch)
    assert set(batch.names) <= signals, set(batch.names) - signals
    assert batch.ts.dtype == np.int64 and batch.value.dtype == np.float64
    assert bool(np.all(batch.quality <= Quality.BAD))
    nan = ~np.isfinite(batch.value)
    assert bool(np.all(batch.quality[nan] == Quality.BAD)), "NaN only with bad quality"


async def _until(peer: Peer, pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        if peer.feed is not None:
            await peer.feed()
        await asyncio.sleep(0.05)


def _good(batches: list[SampleBatch], start: int = 0) -> bool:
    return any(bool(np.any(b.quality == Quality.GOOD)) for b in batches[start:])


@pytest.mark.parametrize("domain", TYPES)
def test_manifest_and_harness(domain: str) -> None:
    t = connector_types()[domain]
    assert check_manifest(t.manifest) == []
    assert t.manifest.domain == domain
    assert domain in HARNESSES, f"connector {domain!r} has no conformance harness"


@pytest.mark.parametrize("domain", TYPES)
def test_yields_valid_batches_and_survives_peer_outage(domain: str, tmp_path: Path) -> None:
    async def go() -> None:
        async with HARNESSES[domain](tmp_path) as peer:
            c: Connector = peer.connector
            assert isinstance(c, Connector)
            got: list[SampleBatch] = []

            async def consume() -> None:
                async for batch, _cursor in c.batches(None):
                    _check_batch(batch, peer.signals)
                    got.append(batch)

            task = asyncio.create_task(consume())
            try:
                await _until(peer, lambda: task.done() or _good(got), 10, "good samples")
                if task.done():
                    task.result()
                first = next(b for b in got if len(b))
                if peer.live_ts:
                    now = time.time() * 1e6
                    assert bool(np.all(np.abs(first.ts - now) < 60e6)), "timestamps are now"
                assert any(d.last_success_us for d in c.health.devices.values())
                if peer.stop is None or peer.start is None:
                    return
                errors = sum(d.errors for d in c.health.devices.values())
                await peer.stop()
                await _until(
                    peer,
                    lambda: sum(d.errors for d in c.health.devices.values()) > errors,
                    10,
                    "the outage to be noticed",
                )
                assert not any(d.connected for d in c.health.devices.values())
                await peer.start()
                mark = len(got)
                await _until(peer, lambda: _good(got, mark), 15, "data after the peer is back")
                assert sum(d.reconnects for d in c.health.devices.values()) >= 1
                assert not task.done()
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    asyncio.run(go())
