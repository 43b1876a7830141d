"""Acceptance: ``andon serve`` (a real process) receives an edge's MQTT uplink through a
Mosquitto with TLS, a password file and the ACL of ``andon broker``, authenticated by the
edge's platform edge key.

* the data appears in the API, and survives ``kill -9`` of the edge process and of ``andon
  serve`` ×10 and of the broker ×5 with every sequence-numbered point stored exactly once;
* a key of another site, and a key of another tenant, are refused (the edge stops and keeps
  its data), audited with the reason, and nothing of theirs is stored;
* revoking the key stops the connected edge at its next frame; once the broker's password file drops
  the key, the edge's next login is refused and it stops (within one reconnect).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import select

from andon.api.deps import wall_clock
from andon.connect.counting import DEFAULT_START, counter_batch
from andon.edge.agent import read_status
from andon.edge.buffer import EdgeBuffer
from andon.edge.uplink import Uplink, UplinkConfig
from andon.ingest.broker import edge_password_line, mosquitto_acl, mosquitto_password_line
from andon.model.loader import parse_plant
from andon.platform import Database, KeyKind, Permission, Platform, Role
from andon.platform.service import Principal
from andon.platform.tables import api_keys
from andon.wire.frames import key_parts
from andon.wire.net import tls_context
from tests.connect.pki import make_ca, tls_leaf
from tests.edge.broker import free_port, wait_port
from tests.edge.helpers import spawn_edge, until, until_async
from tests.edge.platform_api import demo_yaml

SECRET = "k" * 40
PLATFORM_USER = "andon-platform"
PLATFORM_PASSWORD = "platform-broker-password"
ADMIN = "admin@ta.example"
PASSWORD = "a long test password"
NAMES = list(parse_plant(demo_yaml()).signal_paths()[:6])


@dataclass
class Provisioned:
    site_a: str
    key_a: str
    key_other_site: str
    key_other_tenant: str
    app_key: str


async def _provision(db_url: str) -> Provisioned:
    """Two sites in tenant ``ta`` and one in ``tb``, an edge key on each, an app key and a
    tenant admin, written before ``andon serve`` starts (as an operator would over the API)."""
    pf = Platform(Database(db_url), wall_clock, secret_key=SECRET)
    await pf.start()
    try:
        await pf.create_tenant("ta", "TA")
        await pf.create_tenant("tb", "TB")
        site_a = (await pf.create_site("ta", demo_yaml()))["id"]
        site_a2 = (await pf.create_site("ta", demo_yaml().replace("  id: tc1", "  id: tc2", 1)))[
            "id"
        ]
        site_b = (await pf.create_site("tb", demo_yaml().replace("  id: tc1", "  id: tc9", 1)))[
            "id"
        ]

        async def key(tenant: str, site: str, kind: KeyKind, perms: list[Permission]) -> str:
            admin = Principal("user", "setup", tenant, tenant_wide=frozenset(Permission))
            _, secret = await pf.create_api_key(
                tenant, admin, name="k", kind=kind, permissions=perms, site_ids=[site], ttl_s=3600
            )
            return secret

        edge = [Permission.INGEST_WRITE, Permission.SITE_READ]
        out = Provisioned(
            site_a,
            await key("ta", site_a, KeyKind.EDGE, edge),
            await key("ta", site_a2, KeyKind.EDGE, edge),
            await key("tb", site_b, KeyKind.EDGE, edge),
            await key("ta", site_a, KeyKind.APP, [Permission.TELEMETRY_READ]),
        )
        await pf.create_user("ta", ADMIN, PASSWORD, [(Role.TENANT_ADMIN, None)])
        return out
    finally:
        await pf.db.close()


async def _revoke(db_url: str, key: str) -> None:
    pf = Platform(Database(db_url), wall_clock, secret_key=SECRET)
    try:
        kid = key_parts(key)
        assert kid is not None
        async with pf.db.begin() as conn:
            tenant = await conn.scalar(select(api_keys.c.tenant_id).where(api_keys.c.id == kid[0]))
        await pf.revoke_api_key(str(tenant), kid[0])
    finally:
        await pf.db.close()


class MqttBroker:
    """Mosquitto: one TLS listener, passwords from our own generator, the ``andon broker``
    ACL; ``reload`` re-reads the password file (SIGHUP)."""

    def __init__(self, tmp: Path, cert: Path, key: Path, keys: list[str]) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = free_port()
        self.passwd = tmp / "passwd"
        acl = tmp / "acl"
        acl.write_text(mosquitto_acl(PLATFORM_USER), encoding="utf-8")
        self.write_passwords(keys)
        conf = tmp / "mosquitto.conf"
        conf.write_text(
            f"user {getpass.getuser()}\npersistence false\nmax_queued_messages 100000\n"
            "set_tcp_nodelay true\n"
            f"listener {self.port} 127.0.0.1\ncertfile {cert}\nkeyfile {key}\n"
            f"allow_anonymous false\npassword_file {self.passwd}\nacl_file {acl}\n",
            encoding="utf-8",
        )
        self.args = [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)]
        self.log = (tmp / "mosquitto.log").open("ab")
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=self.log)
        wait_port(self.port, up=True)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)
        wait_port(self.port, up=False)

    def write_passwords(self, keys: list[str]) -> None:
        lines = [mosquitto_password_line(PLATFORM_USER, PLATFORM_PASSWORD)]
        lines += [edge_password_line(k) for k in keys]
        self.passwd.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def reload(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


class Serve:
    """``andon serve --config`` as a process; ``kill9`` and ``start`` again."""

    def __init__(self, tmp: Path, config: Path, port: int) -> None:
        self.config, self.port = config, port
        self.log = tmp / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = {
            **os.environ,
            "ANDON_TEST_BROKER_PASSWORD": PLATFORM_PASSWORD,
            "PYTHONUNBUFFERED": "1",
        }

    def start(self) -> None:
        with self.log.open("ab") as f:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "andon.cli", "serve", "--config", str(self.config)],
                stdout=f,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        wait_port(self.port, up=True, timeout=60)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        assert self.proc.returncode == -signal.SIGKILL
        self.proc = None
        wait_port(self.port, up=False)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@dataclass
class World:
    tmp: Path
    db_url: str
    keys: Provisioned
    broker: MqttBroker
    serve: Serve
    ca: Path
    api: httpx.Client


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    ca = make_ca(tmp_path / "pki", "ca")
    leaf = tls_leaf(tmp_path / "pki", ca, "broker")
    db_url = f"sqlite:///{tmp_path / 'platform.db'}"
    keys = asyncio.run(_provision(db_url))
    broker = MqttBroker(
        tmp_path,
        leaf.cert,
        leaf.key,
        [keys.key_a, keys.key_other_site, keys.key_other_tenant],
    )
    port = free_port()
    config = tmp_path / "andon.yaml"
    config.write_text(
        json.dumps(
            {
                "port": port,
                "database_url": db_url,
                "telemetry_url": f"duckdb://{tmp_path / 'telemetry.duckdb'}",
                "secret_key": SECRET,
                "web": False,
                "monitoring": {"alert_interval_s": 0},
                "limits": {"api_rps": 0, "ingest_points_per_s": 0, "auth_per_s": 0},
                "broker": {
                    "port": broker.port,
                    "tls": True,
                    "ca_file": str(ca.cert),
                    "username": PLATFORM_USER,
                    "password_env": "ANDON_TEST_BROKER_PASSWORD",
                },
                "ingest": {"workers": 2, "key_cache_s": 0.5},
            }
        ),
        encoding="utf-8",
    )
    serve = Serve(tmp_path, config, port)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=30)
    try:
        yield World(tmp_path, db_url, keys, broker, serve, ca.cert, client)
    finally:
        client.close()
        serve.close()
        broker.close()


def _site_file(w: World, name: str, key_env: str, data: Path, connectors: str) -> str:
    return (
        f"edge: {{id: {name}}}\n"
        f"data_dir: {data}\n"
        f"uplink: {{host: 127.0.0.1, port: {w.broker.port}, tls: true, ca_file: {w.ca},\n"
        f"  key_env: {key_env}, window: 8, ack_timeout_s: 1.0}}\n"
        f"connectors: {connectors}\n"
    )


def _values(w: World) -> dict[str, list[float]]:
    """Every stored value of NAMES at site A, read through the API with an app key."""
    r = w.api.get(
        f"/sites/{w.keys.site_a}/telemetry/range",
        params={"signal": NAMES, "start": DEFAULT_START, "end": 2**62 - 1},
        headers={"Authorization": f"Bearer {w.keys.app_key}"},
    )
    assert r.status_code == 200, r.text
    doc = r.json()
    assert not doc["truncated"]
    index, value = np.array(doc["index"]), np.array(doc["value"], dtype=float)
    return {n: value[index == i].tolist() for i, n in enumerate(doc["signals"])}


def _denials(w: World) -> list[str]:
    r = w.api.post("/auth/login", json={"email": ADMIN, "password": PASSWORD})
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    r = w.api.get(
        "/audit",
        params={"action": "ingest.write", "result": "denied", "limit": 1000},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200, r.text
    return [str(e["detail"].get("why")) for e in r.json()]


async def _refused_edge(w: World, key: str, name: str) -> Uplink:
    """An uplink with ``key`` sending site A's names: it must stop by itself."""
    buf = await EdgeBuffer.open(w.tmp / f"{name}.db")
    try:
        await buf.put("gen", counter_batch(tuple(NAMES), 0, 100, DEFAULT_START, 1000))
        up = Uplink(
            buf,
            UplinkConfig(
                name,
                key,
                port=w.broker.port,
                tls=_tls(w),
                ack_timeout_s=2.0,
                backoff_max_s=0.5,
            ),
        )
        await asyncio.wait_for(up.run(), 30)  # returns by itself: no spinning
        assert (await buf.stats()).pending_points == 100  # kept for after the fix
        return up
    finally:
        await buf.close()


def _tls(w: World) -> ssl.SSLContext:
    return tls_context(str(w.ca))


ROUNDS = 10  # each: kill -9 of the edge process and of andon serve together, restart both
BROKER_ROUNDS = frozenset(range(1, ROUNDS, 2))  # and in these, kill -9 of the broker too (×5)
RATE = 300.0  # points/s, 10 frames/s: enough to show progress, small enough to read back


def _acked(data_dir: Path, pid: int) -> int:
    """Points the edge process ``pid`` reports acknowledged (-1 before its first status)."""
    try:
        doc = read_status(data_dir)
    except (FileNotFoundError, json.JSONDecodeError):
        return -1
    return int(doc["buffer"]["acked_points"]) if doc["pid"] == pid else -1


@pytest.mark.slow
def test_andon_serve_receives_the_mqtt_uplink(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exactly once across kill -9 of the edge process and ``andon serve`` ×10 (together) and
    of the broker ×5 (issue 11): each kill lands as soon as the restarted side is seen to store
    more. The edge's ×20 kills (a million points) are ``tests/edge/test_fault.py``'s: ten more
    edge starts here would cost ~20 s of a budget that ``andon serve``'s restarts fill."""
    w = world
    check = subprocess.run(
        [sys.executable, "-m", "andon.cli", "serve", "--check", "--config", str(w.serve.config)],
        env=w.serve.env,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    w.serve.start()
    monkeypatch.setenv("ANDON_TEST_KEY_A", w.keys.key_a)  # the edge process inherits it
    data = w.tmp / "edge"
    source = json.dumps(
        [
            {
                "type": "synthetic",
                "name": "gen",
                "signals": NAMES,
                "batch_points": 30,
                "rate_points_s": RATE,
                "start_us": DEFAULT_START,
            }
        ]
    )
    site = w.tmp / "site.yaml"
    site.write_text(
        _site_file(w, "line-1", "ANDON_TEST_KEY_A", data, source) + "status_interval_s: 0.05\n",
        encoding="utf-8",
    )
    log = w.tmp / "edge.log"

    async def go() -> None:
        proc: subprocess.Popen[bytes] | None = None

        async def moves_on(what: str) -> None:
            assert proc is not None
            pid = proc.pid
            base = max(_acked(data, pid), 0)
            await until(lambda: _acked(data, pid) > base, 60, what)

        async def kill_edge() -> None:
            assert proc is not None
            proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(proc.wait, 10)
            assert proc.returncode == -signal.SIGKILL

        try:
            proc = spawn_edge(site, log)
            await moves_on("the first points stored")
            for rnd in range(ROUNDS):
                await asyncio.gather(kill_edge(), asyncio.to_thread(w.serve.kill9))
                proc = spawn_edge(site, log)  # both start at once: the edge buffers meanwhile
                await asyncio.to_thread(w.serve.start)
                await moves_on(f"edge and andon serve storing again (round {rnd})")
                if rnd in BROKER_ROUNDS:
                    await asyncio.to_thread(w.broker.kill9)
                    await asyncio.to_thread(w.broker.start)
                    await moves_on(f"the broker passing data again (round {rnd})")
            await kill_edge()
            proc = None
            # what the last life left unsent goes up with the same key, and nothing new comes
            buf = await EdgeBuffer.open(data / "buffer.db")
            up = Uplink(buf, UplinkConfig("line-1", w.keys.key_a, port=w.broker.port, tls=_tls(w)))
            drain = asyncio.create_task(up.run())
            try:

                async def drained() -> bool:
                    return (await buf.stats()).pending_points == 0

                await until_async(drained, 60, "the buffer drained")
                stats = await buf.stats()
                total = stats.put_points
                assert stats.acked_points == total and stats.dropped_points == 0
                assert total < 100_000  # the API reads up to 100 000 rows at once
                # exactly once, read back through the API: point k has value k
                got = await asyncio.to_thread(_values, w)
                k = np.arange(total)
                for i, n in enumerate(NAMES):
                    assert got[n] == k[k % len(NAMES) == i].astype(float).tolist(), n

                # a key of another site and a key of another tenant are refused and counted
                other_site = await _refused_edge(w, w.keys.key_other_site, "edge-x")
                assert "site_not_permitted" in other_site.stats.last_error
                other_tenant = await _refused_edge(w, w.keys.key_other_tenant, "edge-y")
                assert "unknown_site" in other_tenant.stats.last_error
                assert "site_not_permitted" in await asyncio.to_thread(_denials, w)
                stored = await asyncio.to_thread(_values, w)
                assert sum(len(v) for v in stored.values()) == total

                # revoking the key: the gateway refuses the edge's next frame, the edge stops
                await _revoke(w.db_url, w.keys.key_a)
                await asyncio.sleep(1.0)  # the gateway reuses a key's check for key_cache_s
                await buf.put("late", counter_batch(tuple(NAMES), 0, 6, 2 * DEFAULT_START, 1))
                await until(up.halted.is_set, 30, "the revoked edge to stop")
                assert "revoked_key" in up.stats.last_error
                assert (await buf.stats()).pending_points == 6
                assert "revoked_key" in await asyncio.to_thread(_denials, w)
            finally:
                drain.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await drain
                await buf.close()
        finally:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)

        # the broker's password file drops the key: the next login is refused, the edge stops
        w.broker.write_passwords([w.keys.key_other_site, w.keys.key_other_tenant])
        w.broker.reload()
        t0 = time.monotonic()
        again = await _refused_edge(w, w.keys.key_a, "edge-z")
        assert again.stats.connects == 0 and again.stats.connect_failures == 1
        assert again.stats.last_error.startswith("stopped:"), again.stats.last_error
        assert time.monotonic() - t0 < 30

    asyncio.run(go())


def test_serve_check_names_a_bad_broker_setting_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "andon.yaml"
    config.write_text(
        "database_url: sqlite:///x.db\n"
        f"broker: {{tls: true, ca_file: {tmp_path / 'missing-ca.pem'}}}\n",
        encoding="utf-8",
    )
    r = subprocess.run(
        [sys.executable, "-m", "andon.cli", "serve", "--check", "--config", str(config)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "broker" in lines[0] and "missing-ca.pem" in lines[0], r.stderr
    config.write_text("broker: {port: 1883}\ningest: {workers: 0}\n", encoding="utf-8")
    r = subprocess.run(
        [sys.executable, "-m", "andon.cli", "serve", "--check", "--config", str(config)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "ingest.workers" in r.stderr, r.stderr
    config.write_text("broker: {host: mq.example, port: 8883}\n", encoding="utf-8")
    r = subprocess.run(
        [sys.executable, "-m", "andon.cli", "serve", "--check", "--config", str(config)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and "MQTT uplink from mqtt://mq.example:8883" in r.stdout, r.stdout
