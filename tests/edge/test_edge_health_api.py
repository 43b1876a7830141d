"""An edge agent with an HTTPS uplink against the real platform API: its data is stored and
its connection health reaches ``GET /sites/{id}/edge/health`` (an engineer reads it), with
staleness; a viewer may not read it."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path

import httpx
import pytest

from andon.connect.counting import DEFAULT_START
from andon.connect.registry import build_connector
from andon.edge.agent import EdgeAgent
from andon.edge.config import parse_edge_config
from andon.model.loader import ModelError, parse_plant
from andon.platform import Role
from tests.edge.helpers import until, until_async
from tests.edge.platform_api import TENANT, ApiPlatform, demo_yaml

NAMES = list(parse_plant(demo_yaml()).signal_paths()[:3])
PASSWORD = "a long test password"


def _login(api: ApiPlatform, client: httpx.Client, role: Role, email: str) -> dict[str, str]:
    api.run(api.platform.create_user(TENANT, email, PASSWORD, [(role, api.site_id)]))
    r = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_agent_reports_health_over_https(
    api: ApiPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANDON_TEST_EDGE_KEY", api.key)
    site = (
        "edge: {id: line-1-edge}\n"
        f"data_dir: {tmp_path / 'edge'}\n"
        f"uplink: {{kind: https, url: '{api.url}', site: {api.site_id},"
        f" key_env: ANDON_TEST_EDGE_KEY, ca_file: {api.ca.cert}, ack_timeout_s: 30}}\n"
        "health_interval_s: 0.2\n"
        "connectors:\n"
        f"  - {{type: synthetic, name: gen, signals: {NAMES}, batch_points: 300,"
        " total_points: 3000}\n"
    )
    cfg = parse_edge_config(site)
    agent = EdgeAgent(cfg, [build_connector(c) for c in cfg.connectors])
    client = httpx.Client(
        base_url=api.url, verify=ssl.create_default_context(cafile=str(api.ca.cert))
    )

    def edges(headers: dict[str, str]) -> list[dict[str, object]]:
        r = client.get(f"/api/v1/sites/{api.site_id}/edge/health", headers=headers)
        assert r.status_code == 200, r.text
        out: list[dict[str, object]] = r.json()["edges"]
        return out

    async def go() -> None:
        engineer = await asyncio.to_thread(_login, api, client, Role.ENGINEER, "eng@ta.example")
        viewer = await asyncio.to_thread(_login, api, client, Role.VIEWER, "view@ta.example")
        task = asyncio.create_task(agent.run())
        try:

            async def stored() -> bool:
                got = await api.values(NAMES, DEFAULT_START, DEFAULT_START + 10**12)
                return sum(len(v) for v in got.values()) == 3000

            await until_async(stored, 30, "all points stored over HTTPS")

            def reported_all() -> bool:
                e = edges(engineer)
                if not e:
                    return False
                devs = e[0]["connectors"][0]["devices"]  # type: ignore[index]
                # a report taken after the last acknowledgement: nothing left to send
                drained = e[0]["buffer"]["pending_points"] == 0  # type: ignore[index]
                sent = e[0]["uplink"]["acks"] > 0  # type: ignore[index]
                return bool(devs) and devs[0]["points"] == 3000 and drained and sent

            await until(reported_all, 20, "a health report with every point")
            snap = edges(engineer)[0]
            assert snap["edge"] == "line-1-edge" and snap["stale"] is False
            dev = snap["connectors"][0]["devices"][0]  # type: ignore[index]
            assert dev["device"] == "gen" and dev["connected"] and dev["errors"] == 0
            assert dev["since_success_s"] is not None and dev["since_success_s"] >= 0
            assert snap["buffer"]["pending_points"] == 0  # type: ignore[index]
            assert snap["uplink"]["connected"] is True, snap["uplink"]  # type: ignore[index]
            r = client.get(f"/api/v1/sites/{api.site_id}/edge/health", headers=viewer)
            assert r.status_code == 403
            # the edge key writes health but may not read it
            key = {"Authorization": f"Bearer {api.key}"}
            r = client.get(f"/api/v1/sites/{api.site_id}/edge/health", headers=key)
            assert r.status_code == 403
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # no more reports: the snapshot ages into "stale" (three 0.2 s intervals)
        await until(lambda: edges(engineer)[0]["stale"] is True, 10, "the snapshot to go stale")

    try:
        asyncio.run(go())
    finally:
        client.close()


def test_an_mqtt_edge_that_names_the_api_reports_health_there(
    api: ApiPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Data over MQTT (to the test Mosquitto on 127.0.0.1:1883), health over HTTPS to the
    platform API: the engineer sees the edge's connectors and its MQTT uplink's counters."""
    monkeypatch.setenv("ANDON_TEST_EDGE_KEY", api.key)
    site = (
        "edge: {id: mqtt-edge}\n"
        f"data_dir: {tmp_path / 'edge'}\n"
        "uplink: {kind: mqtt, host: 127.0.0.1, port: 1883,"
        f" url: '{api.url}', site: {api.site_id}, key_env: ANDON_TEST_EDGE_KEY,"
        f" ca_file: {api.ca.cert}}}\n"
        "health_interval_s: 0.2\n"
        "connectors:\n"
        f"  - {{type: synthetic, name: gen, signals: {NAMES}, batch_points: 100,"
        " total_points: 500}\n"
    )
    cfg = parse_edge_config(site)
    assert cfg.uplink.reports_to_api
    agent = EdgeAgent(cfg, [build_connector(c) for c in cfg.connectors])
    client = httpx.Client(
        base_url=api.url, verify=ssl.create_default_context(cafile=str(api.ca.cert))
    )

    def read_all(headers: dict[str, str]) -> bool:
        r = client.get(f"/api/v1/sites/{api.site_id}/edge/health", headers=headers)
        assert r.status_code == 200, r.text
        e = r.json()["edges"]
        if not e or e[0]["edge"] != "mqtt-edge":
            return False
        dev = e[0]["connectors"][0]["devices"]
        return bool(dev) and dev[0]["points"] == 500 and "frames_sent" in e[0]["uplink"]

    async def go() -> None:
        engineer = await asyncio.to_thread(_login, api, client, Role.ENGINEER, "eng@ta.example")
        task = asyncio.create_task(agent.run())
        try:
            await until(lambda: read_all(engineer), 20, "the MQTT edge's health in the API")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    try:
        asyncio.run(go())
    finally:
        client.close()


def test_health_reports_need_the_whole_api_address() -> None:
    base = "edge: {id: e}\ndata_dir: /tmp/x\n"
    with pytest.raises(ModelError, match="health reports to the API needs 'url' and 'site'"):
        parse_edge_config(base + "uplink: {kind: mqtt, url: 'https://p.example'}\n")
    with pytest.raises(ModelError, match="exactly one of 'key' and 'key_env'"):
        parse_edge_config(base + "uplink: {kind: mqtt, url: 'https://p.example', site: s}\n")
