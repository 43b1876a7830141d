"""Acceptance of decision 0202: a text value written by a device (an MTConnect agent's
events) appears through the API unchanged, on the whole path: connector, edge agent and its
durable buffer, the HTTPS uplink's frames, the ingest gateway, the store, the API; the
edge's status and the gateway's counters count them, and refused values stay counted."""

from __future__ import annotations

import asyncio
import contextlib
import math
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest

from andon.connect.mtconnect import MTConnectConfig, MTConnectConnector
from andon.edge.agent import EdgeAgent
from andon.edge.config import EdgeConfig, parse_edge_config
from andon.platform import KeyKind, Permission
from andon.platform.service import Principal
from andon.sim.servers.mtconnect import MTConnectAgent
from tests.edge.helpers import until_async
from tests.edge.platform_api import TENANT, ApiPlatform, demo_yaml

MACHINE = "tc1/machining/L1/MC-01"
PROGRAM = "O1234 (ROUGH) — Ø12 ✓"


def _plant() -> str:
    """The demo plant with two text signals on MC-01 (decision 0202)."""
    anchor = "                - {id: spindle_load, type: spindle_load, nominal: 62}\n"
    text = (
        "                - {id: execution, type: execution}\n"
        "                - {id: program, type: program}\n"
    )
    yaml = demo_yaml()
    assert anchor in yaml
    return yaml.replace(anchor, anchor + text, 1)


def _setup(api: ApiPlatform) -> str:
    """Tenant, the site, an edge key (``api.key``); returns an app key that reads."""
    pf = api.platform
    api.run(pf.create_tenant(TENANT, "TA"))
    api.site_id = api.run(pf.create_site(TENANT, _plant()))["id"]
    admin = Principal("user", "setup", TENANT, tenant_wide=frozenset(Permission))
    keys = []
    for kind, perms in (
        (KeyKind.EDGE, [Permission.INGEST_WRITE, Permission.SITE_READ]),
        (KeyKind.APP, [Permission.TELEMETRY_READ, Permission.SITE_READ]),
    ):
        _, secret = api.run(
            pf.create_api_key(
                TENANT,
                admin,
                name=kind.value,
                kind=kind,
                permissions=perms,
                site_ids=[api.site_id],
                ttl_s=3600,
            )
        )
        keys.append(secret)
    api.key = keys[0]
    return keys[1]


@pytest.mark.slow
def test_text_values_from_an_mtconnect_agent_reach_the_api_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = ApiPlatform(tmp_path / "platform")
    api.start()
    try:
        app_key = _setup(api)
        monkeypatch.setenv("ANDON_TEST_EDGE_KEY", api.key)
        cfg = parse_edge_config(
            "edge: {id: edge-1}\n"
            f"data_dir: {tmp_path / 'edge'}\n"
            f"uplink: {{kind: https, url: '{api.url}', site: {api.site_id}, "
            f"key_env: ANDON_TEST_EDGE_KEY, ca_file: {api.ca.cert}, ack_timeout_s: 30}}\n"
            "linger_s: 0.01\n"
            "connectors: []\n"
        )
        asyncio.run(_run(api, cfg, app_key))
    finally:
        api.close()


async def _run(api: ApiPlatform, cfg: EdgeConfig, app_key: str) -> None:
    items = [
        ("ex", "execution", "EVENT", "EXECUTION"),
        ("pg", "program", "EVENT", "PROGRAM"),
        ("ld", "load", "SAMPLE", "LOAD"),
        ("xx", "unknown", "EVENT", "MESSAGE"),
    ]
    device = MTConnectAgent("mc01", items)
    await device.start()
    conn = MTConnectConnector(
        MTConnectConfig(
            name="mc01",
            url=f"http://127.0.0.1:{device.port}",
            items={
                "ex": f"{MACHINE}/execution",
                "pg": f"{MACHINE}/program",
                "ld": f"{MACHINE}/spindle_load",
                "xx": f"{MACHINE}/not_in_the_model",
            },
            poll_s=0.02,
        )
    )
    agent = EdgeAgent(cfg, [conn])
    task = asyncio.create_task(agent.run())
    base = f"{api.url}/api/v1/sites/{api.site_id}/telemetry/values"
    q: dict[str, Any] = {
        "signal": [f"{MACHINE}/execution", f"{MACHINE}/program"],
        "start": 0,
        "end": 2**61,
    }
    try:
        async with httpx.AsyncClient(
            verify=ssl.create_default_context(cafile=str(api.ca.cert)),
            headers={"Authorization": f"Bearer {app_key}"},
        ) as client:
            health = conn.health.device(conn.config.url)

            async def reading() -> bool:
                return health.reads >= 1

            # after the reader's first /current, so it reads every change from /sample
            await until_async(reading, 10, "the connector's first read")
            for value in ("READY", "ACTIVE"):
                device.observe("ex", value)
            device.observe("pg", PROGRAM)
            device.observe("ld", 55.5)
            device.observe("xx", "who am I")
            got: dict[str, Any] = {}

            async def arrived() -> bool:
                r = await client.get(base, params=q)
                assert r.status_code == 200, r.text
                got.update(r.json())
                return bool(sum(x == 0 for x in got["quality"]) >= 3)

            await until_async(arrived, 30, "the text values through the API")
            names = got["signals"]
            rows = [
                (names[i], v, c, qy)
                for i, v, c, qy in zip(
                    got["index"],
                    got["value"],
                    got["code"],
                    got["quality"],
                    strict=True,
                )
            ]
            # the agent's initial UNAVAILABLE (a bad text value) may come first
            good = [r for r in rows if r[3] == 0]
            assert good == [
                (f"{MACHINE}/execution", "READY", None, 0),
                (f"{MACHINE}/execution", "ACTIVE", None, 0),
                (f"{MACHINE}/program", PROGRAM, None, 0),
            ]
            assert all(r[1] == "UNAVAILABLE" for r in rows if r[3] != 0)
            # the numeric sample took its own road
            r = await client.get(
                f"{api.url}/api/v1/sites/{api.site_id}/telemetry/range",
                params={"signal": f"{MACHINE}/spindle_load", "start": 0, "end": 2**61},
            )
            assert [v for v in r.json()["value"] if v is not None and not math.isnan(v)] == [55.5]
            # a signal of another site, or none: refused clearly
            bad = await client.get(base, params={**q, "signal": "tc1/nope"})
            assert bad.status_code == 422 and "not signals of this site" in bad.text

        gateway = api.app.state.services.gateway
        ingestor = api.app.state.services.ingestor

        async def counted() -> bool:
            return bool(ingestor.stats.rejected["unknown_signal"] >= 1)

        await until_async(counted, 10, "the unknown text signal counted")
        assert gateway.stats.texts_stored >= 3
        status = await agent.status()
        (dev,) = status.connectors[0].devices
        assert dev.text_points >= 4  # READY, ACTIVE, the program, the unknown one
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await device.stop()
