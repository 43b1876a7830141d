"""End-to-end ingest with authentication on, over both uplinks:

* **MQTT**: edge buffer → Mosquitto (QoS 1; the edge logs in with its platform edge key,
  password file and the ``andon broker`` ACL) → ingest gateway (the frame's key checked,
  tenant and site checked, validated) → DuckDB;
* **HTTPS**: edge buffer → the platform API over TLS (``create_app`` under uvicorn, the key a
  bearer checked against the metadata database) → the same gateway → DuckDB.

Two processes, as in a plant: this one runs the broker and the platform; a child process runs
the edge (a counting source writing batches to the durable ``EdgeBuffer`` with fsync, and the
uplink). Every batch is stamped with the wall time it was created; the gateway notes when it
is stored.

Figures (one JSON object per line on stdout), for each leg (``mqtt``, ``https``):

* ``ingest_e2e_<leg>_points_per_s``: points / (last point stored − first batch created),
  with the source unthrottled (``--points`` points in batches of ``--batch``).
* ``ingest_e2e_<leg>_latency_p50_ms`` / ``_p99_ms``: sample created → stored, per point,
  with the source paced at ``--rate`` points/s (the floor, by default).

Run: ``.venv/bin/python benchmarks/ingest_e2e.py [--leg mqtt|https|both] [--points N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import ipaddress
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path

import numpy as np

from andon.connect.counting import DEFAULT_START, counter_batch
from andon.edge.buffer import EdgeBuffer
from andon.edge.https_uplink import HttpsUplink, HttpsUplinkConfig
from andon.edge.uplink import Uplink, UplinkConfig
from andon.ingest import Ingestor
from andon.ingest.broker import edge_password_line, mosquitto_acl, mosquitto_password_line
from andon.ingest.gateway import EdgeIdentity, IngestGateway, StaticKeys, StaticSites
from andon.ingest.mqtt import MqttReceiver, ReceiverConfig
from andon.store.duckdb_store import DuckDBStore
from andon.wire.frames import Frame
from andon.wire.net import tls_context

__all__ = ["main"]

TENANT = "bench"
KEY_ID = "b" * 32
KEY = f"andon_{KEY_ID}_bench-secret"
SIGNALS = tuple(f"site/area/line/m{i // 20}/s{i}" for i in range(200))
PLATFORM_USER, PLATFORM_PASSWORD = "andon-platform", "bench-platform-password"


def _machine() -> str:
    return (
        f"{os.cpu_count()} cpu, {platform.machine()}, {platform.system()} {platform.release()}, "
        f"python {platform.python_version()}"
    )


def emit(figure: str, value: float, unit: str) -> None:
    print(
        json.dumps({"figure": figure, "value": value, "unit": unit, "machine": _machine()}),
        flush=True,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_port(port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


# ---------------------------------------------------------------------------------------------
# the edge (child process)
# ---------------------------------------------------------------------------------------------


async def _edge(a: argparse.Namespace) -> None:
    buf = await EdgeBuffer.open(a.dir / "edge.db", max_bytes=1 << 34)
    names = tuple(json.loads(a.names))
    up: Uplink | HttpsUplink
    if a.leg == "mqtt":
        up = Uplink(buf, UplinkConfig("edge-1", a.key, port=a.port, window=32, ack_timeout_s=30))
    else:
        cfg = HttpsUplinkConfig("edge-1", a.url, a.site, a.key, tls_context(a.ca), window=4)
        up = HttpsUplink(buf, cfg)
    task = asyncio.create_task(up.run())
    t0 = time.monotonic()
    for k in range(0, a.points, a.batch):
        k1 = min(a.points, k + a.batch)
        if a.rate:
            delay = t0 + k1 / a.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        b = counter_batch(names, k, k1, a.start, 1_000)
        await buf.put("gen", b, str(k1), created_us=time.time_ns() // 1000)
    while (await buf.stats()).acked_points < a.points:
        if task.done():
            raise RuntimeError(f"the uplink stopped: {up.stats.last_error}")
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await buf.close()


# ---------------------------------------------------------------------------------------------
# the platform (this process)
# ---------------------------------------------------------------------------------------------


class _Recorder:
    """The gateway's ``on_stored``: each stored frame with the wall time it was stored."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.stamps: list[int] = []

    def __call__(self, frames: list[Frame]) -> None:
        now = time.time_ns() // 1000
        self.frames.extend(frames)
        self.stamps.extend([now] * len(frames))

    def result(self, points: int) -> tuple[float, np.ndarray]:
        total = sum(len(f.batch) for f in self.frames)
        if total < points:
            raise RuntimeError(f"stored {total} of {points} points")
        created = np.array([f.created_us for f in self.frames], dtype=np.int64)
        at = np.array(self.stamps, dtype=np.int64)
        sizes = np.array([len(f.batch) for f in self.frames])
        elapsed_s = (at.max() - created.min()) / 1e6
        return points / elapsed_s, np.repeat((at - created) / 1e3, sizes)


async def _run_edge(args: list[str]) -> None:
    proc = await asyncio.create_subprocess_exec(sys.executable, __file__, "--role", "edge", *args)
    if await proc.wait() != 0:
        raise RuntimeError(f"the edge process failed ({proc.returncode})")


def _edge_args(
    work: Path, names: tuple[str, ...], points: int, batch: int, rate: float | None
) -> list[str]:
    edge_dir = work / f"edge-{time.monotonic_ns()}"
    edge_dir.mkdir()
    args = ["--dir", str(edge_dir), "--points", str(points), "--batch", str(batch)]
    args += ["--names", json.dumps(list(names))]
    return args + (["--rate", str(rate)] if rate else [])


@contextmanager
def _broker(work: Path) -> Iterator[int]:
    """Mosquitto with a password file (the edge key, the platform user) and the ACL."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = _free_port()
    (work / "passwd").write_text(
        mosquitto_password_line(PLATFORM_USER, PLATFORM_PASSWORD)
        + "\n"
        + edge_password_line(KEY)
        + "\n"
    )
    (work / "acl").write_text(mosquitto_acl(PLATFORM_USER))
    conf = work / "mosquitto.conf"
    conf.write_text(
        f"user {getpass.getuser()}\n"
        f"listener {port} 127.0.0.1\nallow_anonymous false\npersistence false\n"
        f"password_file {work / 'passwd'}\nacl_file {work / 'acl'}\n"
        "set_tcp_nodelay true\nmax_queued_messages 100000\n"
    )
    broker = subprocess.Popen([exe, "-c", str(conf)], stderr=subprocess.DEVNULL)
    try:
        _wait_port(port)
        yield port
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(10)


async def _mqtt(
    work: Path, port: int, points: int, batch: int, rate: float | None
) -> tuple[float, np.ndarray]:
    store = DuckDBStore.open(work / f"platform-{time.monotonic_ns()}.duckdb")
    ing = Ingestor(store)
    ing.register(TENANT, SIGNALS, [])
    gateway = IngestGateway(
        ing,
        StaticKeys({KEY: EdgeIdentity(KEY_ID, TENANT)}),
        StaticSites({TENANT: {"site": "site-1"}}),
    )
    rec = _Recorder()
    gateway.on_stored = rec
    receiver = MqttReceiver(
        gateway,
        ReceiverConfig(
            port=port,
            username=PLATFORM_USER,
            password=PLATFORM_PASSWORD,
            client_id=f"bench-{time.monotonic_ns()}",
            workers=1,
        ),
    )
    task = asyncio.create_task(receiver.run())
    try:
        await asyncio.wait_for(receiver.connected.wait(), 10)
        args = ["--leg", "mqtt", "--port", str(port), "--key", KEY]
        await _run_edge(args + _edge_args(work, SIGNALS, points, batch, rate))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    if ing.stats.rejected:
        raise RuntimeError(f"rejected {ing.stats.rejected}")
    out = rec.result(points)
    await store.close()
    return out


def _self_signed(work: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the edge trusts exactly it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "andon bench")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    c, k = work / "api.pem", work / "api-key.pem"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return c, k


class _Api:
    """``create_app`` under uvicorn over TLS in a thread, with a tenant, the demo site and an
    edge key; the gateway's ``on_stored`` records."""

    def __init__(self, work: Path) -> None:
        import uvicorn

        from andon.api import create_app
        from andon.platform.config import Settings

        self.work = work
        self.port = _free_port()
        self.cert, key = _self_signed(work)
        settings = Settings(
            database_url=f"sqlite:///{work / 'platform.db'}",
            telemetry_url=f"duckdb://{work / 'telemetry.duckdb'}",
            secret_key="b" * 40,
            web=False,
            monitoring={"alert_interval_s": 0},
            limits={"api_rps": 0, "principal_rps": 0, "ingest_points_per_s": 0},
        )
        self.app = create_app(settings)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            ssl_certfile=str(self.cert),
            ssl_keyfile=str(key),
        )
        self.server = uvicorn.Server(config)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the API did not start")
            time.sleep(0.01)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.serve())

    def call(self, fn: Callable[[], object]) -> object:
        async def go() -> object:
            got = fn()
            return await got if asyncio.iscoroutine(got) else got

        return asyncio.run_coroutine_threadsafe(go(), self.loop).result(60)

    def setup(self) -> tuple[str, str, tuple[str, ...], _Recorder]:
        from andon.model.loader import parse_plant
        from andon.platform import KeyKind, Permission
        from andon.platform.service import Principal

        svc = self.app.state.services
        pf = svc.platform
        yaml = (files("andon.sim") / "plants" / "demo.yaml").read_text(encoding="utf-8")
        self.call(lambda: pf.create_tenant(TENANT, "Bench"))
        site = self.call(lambda: pf.create_site(TENANT, yaml))
        assert isinstance(site, dict)
        admin = Principal("user", "bench", TENANT, tenant_wide=frozenset(Permission))
        made = self.call(
            lambda: pf.create_api_key(
                TENANT,
                admin,
                name="edge",
                kind=KeyKind.EDGE,
                permissions=[Permission.INGEST_WRITE],
                site_ids=[site["id"]],
                ttl_s=3600,
            )
        )
        assert isinstance(made, tuple)
        rec = _Recorder()
        svc.gateway.on_stored = rec
        names = tuple(parse_plant(yaml).signal_paths())
        return str(site["id"]), str(made[1]), names, rec

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


async def _https(
    api: _Api,
    setup: tuple[str, str, tuple[str, ...], _Recorder],
    work: Path,
    points: int,
    batch: int,
    rate: float | None,
    start: int,
) -> tuple[float, np.ndarray]:
    site, key, names, rec = setup
    rec.frames.clear()
    rec.stamps.clear()
    url = f"https://127.0.0.1:{api.port}"
    args = ["--leg", "https", "--url", url, "--site", site, "--key", key, "--ca", str(api.cert)]
    args += ["--start", str(start)]
    await _run_edge(args + _edge_args(work, names, points, batch, rate))
    return rec.result(points)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--role", choices=["bench", "edge"], default="bench")
    p.add_argument("--leg", choices=["mqtt", "https", "both"], default="both")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--dir", type=Path)
    p.add_argument("--points", type=int, default=4_000_000)
    p.add_argument("--batch", type=int, default=20_000)
    p.add_argument("--rate", type=float, default=None)
    p.add_argument("--names", default="[]")
    p.add_argument("--key", default=KEY)
    p.add_argument("--url", default="")
    p.add_argument("--site", default="")
    p.add_argument("--ca", default=None)
    p.add_argument("--start", type=int, default=DEFAULT_START)
    a = p.parse_args()
    if a.role == "edge":
        asyncio.run(_edge(a))
        return
    paced = a.rate or 200_000.0
    legs = ["mqtt", "https"] if a.leg == "both" else [a.leg]
    with tempfile.TemporaryDirectory(prefix="andon-bench-") as d:
        work = Path(d)
        if "mqtt" in legs:
            with _broker(work) as port:
                rate, _ = asyncio.run(_mqtt(work, port, a.points, a.batch, None))
                emit("ingest_e2e_mqtt_points_per_s", round(rate), "points/s")
                _, lat = asyncio.run(_mqtt(work, port, int(paced * 10), a.batch // 4, paced))
                emit(
                    "ingest_e2e_mqtt_latency_p50_ms", round(float(np.percentile(lat, 50)), 1), "ms"
                )
                emit(
                    "ingest_e2e_mqtt_latency_p99_ms", round(float(np.percentile(lat, 99)), 1), "ms"
                )
        if "https" in legs:
            api = _Api(work)
            try:
                setup = api.setup()
                rate, _ = asyncio.run(
                    _https(api, setup, work, a.points, a.batch, None, DEFAULT_START)
                )
                emit("ingest_e2e_https_points_per_s", round(rate), "points/s")
                later = DEFAULT_START + 10**12  # the same store: points not sent before
                _, lat = asyncio.run(
                    _https(api, setup, work, int(paced * 10), a.batch // 4, paced, later)
                )
                emit(
                    "ingest_e2e_https_latency_p50_ms", round(float(np.percentile(lat, 50)), 1), "ms"
                )
                emit(
                    "ingest_e2e_https_latency_p99_ms", round(float(np.percentile(lat, 99)), 1), "ms"
                )
            finally:
                api.close()


if __name__ == "__main__":
    main()
