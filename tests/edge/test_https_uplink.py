"""The HTTPS uplink against the real platform API (``create_app`` under uvicorn, TLS with a
certificate made at test time): batches are stored exactly once across a platform restart,
``Retry-After`` is honoured, and a refused key or a forbidden batch stops the uplink with a
clear report instead of a loop, keeping the data."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import numpy as np
import pytest

from andon.connect.counting import DEFAULT_START, counter_batch
from andon.edge.agent import make_uplink
from andon.edge.buffer import EdgeBuffer
from andon.edge.config import parse_edge_config
from andon.edge.https_uplink import HttpsUplink
from andon.model.loader import ModelError, parse_plant
from tests.edge.helpers import until, until_async
from tests.edge.platform_api import ApiPlatform, demo_yaml

NAMES = list(parse_plant(demo_yaml()).signal_paths()[:5])
PER_BATCH = 1_000
END = DEFAULT_START + 10**12


def _site(api: ApiPlatform, data: Path, *, key_env: str = "ANDON_TEST_EDGE_KEY") -> str:
    return (
        "edge: {id: edge-1}\n"
        f"data_dir: {data}\n"
        f"uplink: {{kind: https, url: '{api.url}', site: {api.site_id}, key_env: {key_env},\n"
        f"  ca_file: {api.ca.cert}, window: 4, ack_timeout_s: 30}}\n"
        "health_interval_s: 0.2\n"
        "connectors: []\n"
    )


def _uplink(
    api: ApiPlatform, tmp: Path, buf: EdgeBuffer, monkeypatch: pytest.MonkeyPatch, key: str
) -> HttpsUplink:
    monkeypatch.setenv("ANDON_TEST_EDGE_KEY", key)
    cfg = parse_edge_config(_site(api, tmp / "edge"))
    up = make_uplink(buf, cfg)
    assert isinstance(up, HttpsUplink)
    object.__setattr__(up.config, "backoff_max_s", 0.5)
    return up


def _expected(total: int) -> dict[str, list[float]]:
    k = np.arange(total)
    return {n: k[k % len(NAMES) == i].astype(float).tolist() for i, n in enumerate(NAMES)}


def test_exactly_once_across_a_platform_restart(
    api: ApiPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def go() -> None:
        buf = await EdgeBuffer.open(tmp_path / "edge.db")
        up = _uplink(api, tmp_path, buf, monkeypatch, api.key)
        k = 0

        async def produce(n: int) -> None:
            nonlocal k
            for _ in range(n):
                await buf.put(
                    "gen", counter_batch(tuple(NAMES), k, k + PER_BATCH, DEFAULT_START, 1000)
                )
                k += PER_BATCH

        async def acked() -> bool:
            return (await buf.stats()).acked_points == k

        task = asyncio.create_task(up.run())
        try:
            await produce(8)
            await until_async(acked, 30, "first batches acknowledged")
            # the platform goes away while the edge keeps producing, then comes back
            await asyncio.to_thread(api.stop)
            await produce(6)
            await until(lambda: up.stats.connect_failures >= 2, 20, "failed sends while down")
            assert not up.stats.connected and (await buf.stats()).pending_points > 0
            await asyncio.to_thread(api.start)
            await until_async(acked, 60, "backlog acknowledged after the restart")
            assert not up.halted.is_set()
            got = await api.values(NAMES, DEFAULT_START, END)
            assert got == _expected(k)  # every point once, in order per signal
            assert (await buf.stats()).pending_batches == 0
            # sent again after a gap in acknowledgements: flagged historical
            gateway = api.app.state.services.gateway
            assert gateway.stats.points_historical == 6 * PER_BATCH
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await buf.close()

    asyncio.run(go())


def test_retry_after_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    api = ApiPlatform(
        tmp_path / "api", limits={"ingest_points_per_s": 2_000, "ingest_burst": 2_000}
    )
    try:
        api.start()
        api.setup()

        async def go() -> None:
            buf = await EdgeBuffer.open(tmp_path / "edge.db")
            up = _uplink(api, tmp_path, buf, monkeypatch, api.key)
            for k in range(0, 6 * PER_BATCH, PER_BATCH):
                await buf.put(
                    "gen", counter_batch(tuple(NAMES), k, k + PER_BATCH, DEFAULT_START, 1000)
                )
            task = asyncio.create_task(up.run())
            try:

                async def acked() -> bool:
                    return (await buf.stats()).acked_points == 6 * PER_BATCH

                await until_async(acked, 30, "all batches through the rate limit")
                assert up.stats.frames_resent > 0 and "HTTP 429" in up.stats.last_error
                assert not up.halted.is_set()
                assert await api.values(NAMES, DEFAULT_START, END) == _expected(6 * PER_BATCH)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await buf.close()

        asyncio.run(go())
    finally:
        api.close()


@pytest.mark.parametrize("case", ["bad_key", "revoked_key", "outside_site"])
def test_refusals_stop_the_uplink_and_keep_the_data(
    api: ApiPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    async def go() -> None:
        buf = await EdgeBuffer.open(tmp_path / "edge.db")
        key = "andon_not-a-real-key" if case == "bad_key" else api.key
        if case == "revoked_key":
            api.run(api.platform.revoke_api_key("ta", api.key_id))
        up = _uplink(api, tmp_path, buf, monkeypatch, key)
        names = ("other-site/a/b",) if case == "outside_site" else tuple(NAMES)
        await buf.put("gen", counter_batch(names, 0, 100, DEFAULT_START, 1000))
        await asyncio.wait_for(up.run(), 20)  # returns by itself: no spinning
        status = "HTTP 403" if case == "outside_site" else "HTTP 401"
        assert up.halted.is_set() and up.stats.last_error.startswith(f"stopped: {status}")
        assert up.stats.frames_sent == 1
        st = await buf.stats()
        assert st.pending_points == 100 and st.acked_points == 0
        await buf.close()

    asyncio.run(go())


def test_a_bad_https_uplink_section_is_refused_at_load() -> None:
    with pytest.raises(ModelError, match=r"uplink\.url"):
        parse_edge_config(
            "edge: {id: e}\ndata_dir: x\nuplink: {kind: https, url: 'ftp://x', site: s, key: k}\n"
        )
    with pytest.raises(ModelError, match="exactly one of 'key' and 'key_env'"):
        parse_edge_config(
            "edge: {id: e}\ndata_dir: x\nuplink: {kind: https, url: 'https://x', site: s}\n"
        )
