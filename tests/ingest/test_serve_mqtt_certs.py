"""Edges that log in to the broker with a client certificate instead of a password (issue 11,
decision 0316), against ``andon serve`` (a real process) and a Mosquitto running
``examples/mosquitto/certificates.conf``: the certificate's CN is the id of the edge's platform
key, the broker makes it the user name, and the ACL's ``%u`` binds it to its key's topics.

* an edge with its certificate (and no broker password anywhere) gets its data stored;
* a connection without a certificate is refused by the broker;
* a certificate for a key of another site: that key's frames for this site are refused by the
  gateway (the edge stops, audited); a site file pairing a key with another key's certificate
  is refused at load, and frames published that way are denied by the broker's ACL;
* revoking the key stops the connected edge at its next frame; the certificate on the CRL
  (SIGHUP) makes the broker refuse its next connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import getpass
import json
import shutil
import signal
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from andon.connect.counting import DEFAULT_START, counter_batch
from andon.edge.agent import make_uplink
from andon.edge.buffer import EdgeBuffer
from andon.edge.config import parse_edge_config
from andon.edge.uplink import Uplink
from andon.ingest.broker import mosquitto_acl, mosquitto_password_line
from andon.model.types import SampleBatch
from andon.wire.frames import key_parts, up_topic
from andon.wire.net import tls_context
from tests.connect.pki import Pair, make_ca, tls_leaf
from tests.edge.broker import free_port, wait_port
from tests.edge.helpers import until, until_async
from tests.ingest.test_serve_mqtt import (
    ADMIN,
    NAMES,
    PASSWORD,
    PLATFORM_PASSWORD,
    PLATFORM_USER,
    SECRET,
    Provisioned,
    Serve,
    _provision,
    _revoke,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mosquitto"
_DAY = dt.timedelta(days=1)


def _key_id(key: str) -> str:
    parts = key_parts(key)
    assert parts is not None
    return parts[0]


class EdgeCa:
    """The CA that signs edges' client certificates (and here the broker's too) and its CRL."""

    def __init__(self, dir_: Path) -> None:
        self.dir = dir_
        self.pair = make_ca(dir_, "edge-ca")
        self.cert = x509.load_pem_x509_certificate(self.pair.cert.read_bytes())
        key = serialization.load_pem_private_key(self.pair.key.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        self.key = key
        self.crl = dir_ / "edge-ca.crl"
        self.revoke()

    def client(self, cn: str) -> tuple[Pair, int]:
        """A client certificate with subject CN ``cn``; and its serial number."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY)
            .not_valid_after(now + _DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .sign(self.key, hashes.SHA256())
        )
        c, k = self.dir / f"{cn}.pem", self.dir / f"{cn}-key.pem"
        c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        k.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return Pair(c, k), cert.serial_number

    def revoke(self, *serials: int) -> None:
        """Write the CRL listing ``serials`` (none: an empty CRL, which the broker needs)."""
        now = dt.datetime.now(dt.UTC)
        b = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(now - dt.timedelta(minutes=1))
            .next_update(now + _DAY)
        )
        for s in serials:
            b = b.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(s)
                .revocation_date(now - dt.timedelta(minutes=1))
                .build()
            )
        crl = b.sign(self.key, hashes.SHA256())
        self.crl.write_bytes(crl.public_bytes(serialization.Encoding.PEM))


class CertBroker:
    """Mosquitto running ``examples/mosquitto/certificates.conf`` with this test's paths and
    ports: ``edge_port`` takes client certificates only, ``platform_port`` the platform's
    password."""

    def __init__(self, tmp: Path, ca: EdgeCa, server: Pair) -> None:
        self.edge_port, self.platform_port = free_port(), free_port()
        passwd, acl = tmp / "passwd", tmp / "acl"
        passwd.write_text(
            mosquitto_password_line(PLATFORM_USER, PLATFORM_PASSWORD) + "\n", encoding="utf-8"
        )
        acl_text = (EXAMPLES / "acl").read_text(encoding="utf-8")
        assert acl_text == mosquitto_acl(PLATFORM_USER)  # the shipped ACL is andon broker acl's
        acl.write_text(acl_text, encoding="utf-8")
        text = (EXAMPLES / "certificates.conf").read_text(encoding="utf-8")
        for old, new in [
            ("listener 8883\n", f"listener {self.edge_port} 127.0.0.1\n"),
            ("listener 8884\n", f"listener {self.platform_port} 127.0.0.1\n"),
            ("/etc/mosquitto/certs/edge-ca.pem", str(ca.pair.cert)),
            ("/etc/mosquitto/certs/edge-ca.crl", str(ca.crl)),
            ("/etc/mosquitto/certs/broker.pem", str(server.cert)),
            ("/etc/mosquitto/certs/broker-key.pem", str(server.key)),
            ("/etc/mosquitto/passwd", str(passwd)),
            ("/etc/mosquitto/acl", str(acl)),
        ]:
            assert old in text, old
            text = text.replace(old, new)
        conf = tmp / "mosquitto.conf"
        # started as root, mosquitto would drop to a user who cannot read this directory;
        # log_type all: the ACL's denials are logged at debug level
        conf.write_text(f"user {getpass.getuser()}\nlog_type all\n{text}", encoding="utf-8")
        self.log_path = tmp / "mosquitto.log"
        self.log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)],
            stdout=self.log,
            stderr=self.log,
        )
        wait_port(self.edge_port, up=True)
        wait_port(self.platform_port, up=True)

    def logged(self, text: str) -> bool:
        return text in self.log_path.read_text(encoding="utf-8", errors="replace")

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self.log.close()


_CONNECT = b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01t"
"""An MQTT 3.1.1 CONNECT of client ``t`` (clean session, keepalive 60 s)."""


def _connect_outcome(port: int, ctx: ssl.SSLContext) -> str:
    """``connected`` when the broker answers an MQTT CONNECT on a TLS connection made with
    ``ctx``, else the TLS error (in TLS 1.3 a refused client certificate shows on the first
    read, after the handshake)."""
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s,
        ):
            s.sendall(_CONNECT)
            head = s.recv(4)
            return "connected" if head[:1] == b"\x20" else f"answered {head!r}"
    except (ssl.SSLError, OSError) as exc:
        return str(exc)


@dataclass
class World:
    tmp: Path
    db_url: str
    keys: Provisioned
    ca: EdgeCa
    broker: CertBroker
    serve: Serve
    api: httpx.Client

    def site_file(self, name: str, cert: Pair, key_env: str) -> str:
        return (
            f"edge: {{id: {name}}}\n"
            f"data_dir: {self.tmp / name}\n"
            f"uplink: {{host: 127.0.0.1, port: {self.broker.edge_port}, tls: true,\n"
            f"  ca_file: {self.ca.pair.cert}, cert_file: {cert.cert}, key_file: {cert.key},\n"
            f"  key_env: {key_env}, ack_timeout_s: 1.0}}\n"
        )

    def stored(self) -> list[float]:
        """Every stored value of NAMES at site A (read through the API with an app key)."""
        r = self.api.get(
            f"/sites/{self.keys.site_a}/telemetry/range",
            params={"signal": NAMES, "start": DEFAULT_START, "end": 2**62 - 1},
            headers={"Authorization": f"Bearer {self.keys.app_key}"},
        )
        assert r.status_code == 200, r.text
        return sorted(float(v) for v in r.json()["value"])

    def denials(self) -> list[str]:
        r = self.api.post("/auth/login", json={"email": ADMIN, "password": PASSWORD})
        assert r.status_code == 200, r.text
        r = self.api.get(
            "/audit",
            params={"action": "ingest.write", "result": "denied", "limit": 1000},
            headers={"Authorization": f"Bearer {r.json()['access_token']}"},
        )
        assert r.status_code == 200, r.text
        return [str(e["detail"].get("why")) for e in r.json()]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    ca = EdgeCa(tmp_path / "pki")
    server = tls_leaf(tmp_path / "pki", ca.pair, "broker")
    db_url = f"sqlite:///{tmp_path / 'platform.db'}"
    keys = asyncio.run(_provision(db_url))
    broker = CertBroker(tmp_path, ca, server)
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
                    "port": broker.platform_port,
                    "tls": True,
                    "ca_file": str(ca.pair.cert),
                    "username": PLATFORM_USER,
                    "password_env": "ANDON_TEST_BROKER_PASSWORD",
                },
                "ingest": {"workers": 1, "key_cache_s": 0.5},
            }
        ),
        encoding="utf-8",
    )
    serve = Serve(tmp_path, config, port)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=30)
    try:
        yield World(tmp_path, db_url, keys, ca, broker, serve, client)
    finally:
        client.close()
        serve.close()
        broker.close()


def _batch(n: int, start_us: int) -> SampleBatch:
    return counter_batch(tuple(NAMES), 0, n, start_us, 1000)


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.mark.slow
def test_edges_log_in_with_client_certificates_mapped_to_their_keys(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world
    k = w.keys
    cert_a, serial_a = w.ca.client(_key_id(k.key_a))
    cert_x, _ = w.ca.client(_key_id(k.key_other_site))
    monkeypatch.setenv("ANDON_TEST_KEY_A", k.key_a)
    monkeypatch.setenv("ANDON_TEST_KEY_X", k.key_other_site)
    ca = str(w.ca.pair.cert)
    ctx_a = tls_context(ca, str(cert_a.cert), str(cert_a.key))
    ctx_x = tls_context(ca, str(cert_x.cert), str(cert_x.key))

    # only a certificate of the edge CA gets in on the edges' listener
    assert _connect_outcome(w.broker.edge_port, ctx_a) == "connected"
    refused = _connect_outcome(w.broker.edge_port, tls_context(ca))
    assert refused != "connected"
    assert w.broker.logged("peer did not return a certificate"), refused
    w.serve.start()

    async def go() -> None:
        # the edge with its certificate: the data is stored, exactly once
        cfg = parse_edge_config(w.site_file("edge-a", cert_a, "ANDON_TEST_KEY_A"))
        assert cfg.uplink.resolved_password() is None  # no broker password for the edge
        buf = await EdgeBuffer.open(w.tmp / "a.db")
        up = make_uplink(buf, cfg)
        assert isinstance(up, Uplink)
        run = asyncio.create_task(up.run())
        try:
            await buf.put("gen", _batch(600, DEFAULT_START))

            async def drained() -> bool:
                return (await buf.stats()).pending_points == 0

            await until_async(drained, 60, "edge A's points acknowledged")
            assert await asyncio.to_thread(w.stored) == [float(v) for v in range(600)]
            assert w.broker.logged(f"u'{_key_id(k.key_a)}'")  # the CN became the user name

            # a certificate for a key of another site: that key may not write site A
            cfg_x = parse_edge_config(w.site_file("edge-x", cert_x, "ANDON_TEST_KEY_X"))
            buf_x = await EdgeBuffer.open(w.tmp / "x.db")
            try:
                await buf_x.put("gen", _batch(100, DEFAULT_START + 3 * 10**9))
                up_x = make_uplink(buf_x, cfg_x)
                await asyncio.wait_for(up_x.run(), 30)  # returns by itself
                assert isinstance(up_x, Uplink)
                assert "site_not_permitted" in up_x.stats.last_error, up_x.stats.last_error
                assert (await buf_x.stats()).pending_points == 100  # kept for after the fix
            finally:
                await buf_x.close()
            assert "site_not_permitted" in await asyncio.to_thread(w.denials)

            # key A with the other key's certificate: refused at load; sent anyway, the
            # broker's ACL denies it (user = the certificate's CN, topic = key A's)
            bad = parse_edge_config(w.site_file("edge-b", cert_x, "ANDON_TEST_KEY_A"))
            with pytest.raises(ValueError, match="certificate's CN is"):
                bad.uplink.resolved_key()
            async with aiomqtt.Client(
                "127.0.0.1", w.broker.edge_port, identifier="edge-b", tls_context=ctx_x
            ) as intruder:
                await intruder.publish(up_topic(_key_id(k.key_a)), b"frame", qos=1)
            denied = f"Denied PUBLISH from edge-b (d0, q1, r0, m1, '{up_topic(_key_id(k.key_a))}'"
            await until(lambda: w.broker.logged(denied), 30, "the broker's ACL denial")
            assert len(await asyncio.to_thread(w.stored)) == 600

            # revoking key A: the gateway refuses the connected edge's next frame
            await _revoke(w.db_url, k.key_a)
            n = 0
            while not up.halted.is_set():  # frames within key_cache_s of it still pass
                n += 1
                assert n < 200, "the revoked key's frames are still accepted"
                await buf.put("late", _batch(6, DEFAULT_START + 7 * 10**9 + n * 10_000))

                async def answered() -> bool:
                    return up.halted.is_set() or (await buf.stats()).pending_points == 0

                await until_async(answered, 30, "the late frame answered")
            assert "revoked_key" in up.stats.last_error, up.stats.last_error
            assert (await buf.stats()).pending_points == 6
            assert "revoked_key" in await asyncio.to_thread(w.denials)
        finally:
            await _stop(run)
            await buf.close()

        # its certificate on the CRL: the broker refuses the edge's next connection
        await asyncio.to_thread(w.ca.revoke, serial_a)
        w.broker.proc.send_signal(signal.SIGHUP)

        def revoked() -> bool:
            return "CERTIFICATE_REVOKED" in _connect_outcome(w.broker.edge_port, ctx_a)

        await until(revoked, 30, "the broker to refuse the revoked certificate")
        assert _connect_outcome(w.broker.edge_port, ctx_x) == "connected"

    asyncio.run(go())


def test_a_client_certificate_must_name_the_edge_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The site file's check, without a broker: the CN must be the key's id unless
    ``uplink.username`` says the broker login is not the certificate's."""
    ca = EdgeCa(tmp_path)
    key = "andon_" + "a" * 32 + "_secret"
    good, _ = ca.client("a" * 32)
    other, _ = ca.client("b" * 32)
    monkeypatch.setenv("ANDON_TEST_KEY", key)

    def site(cert: Path, extra: str = "") -> str:
        return (
            "edge: {id: e1}\ndata_dir: /tmp/x\n"
            f"uplink: {{tls: true, cert_file: {cert}, key_file: {cert}, key_env: ANDON_TEST_KEY"
            f"{extra}}}\n"
        )

    assert parse_edge_config(site(good.cert)).uplink.resolved_key() == key
    with pytest.raises(ValueError, match=r"other\.pem|b{32}") as info:
        parse_edge_config(site(other.cert)).uplink.resolved_key()
    assert "'" + "b" * 32 + "'" in str(info.value) and "'" + "a" * 32 + "'" in str(info.value)
    assert parse_edge_config(site(other.cert, ", username: u")).uplink.resolved_key() == key
    with pytest.raises(ValueError, match=r"nope\.pem"):
        parse_edge_config(site(tmp_path / "nope.pem")).uplink.resolved_key()
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate", encoding="utf-8")
    with pytest.raises(ValueError, match=r"garbage\.pem: not a PEM certificate"):
        parse_edge_config(site(garbage)).uplink.resolved_key()
