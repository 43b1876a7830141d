"""Per-tenant rate limits (API requests, ingest points), request size limit, security headers,
CORS, and TLS served by uvicorn with the documented settings."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from andon.api import PREFIX, create_app
from andon.platform.config import Settings
from andon.store import DuckDBStore
from tests.api.calls import SIGNAL
from tests.api.live import live_server
from tests.api.world import World, make_world

ORIGIN = "https://dashboard.example"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(
        "sqlite",
        tmp_path_factory.mktemp("guarded"),
        limits={
            "api_rps": 5,
            "api_burst": 30,
            "ingest_points_per_s": 10,
            "ingest_burst": 20,
            "max_body_bytes": 50_000,
        },
        cors_origins=[ORIGIN],
    ) as w:
        yield w


def test_api_rate_limit_per_tenant(guarded: World) -> None:
    w = guarded
    statuses = [w.call("GET", "/sites", w.a.app).status_code for _ in range(31)]
    assert statuses[-1] == 429 and set(statuses) == {200, 429}
    r = w.call("GET", "/sites", w.a.app)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    # another tenant has its own bucket
    assert w.call("GET", "/sites", w.b.app).status_code == 200
    w.clock.now += 1_000_000  # one second refills api_rps tokens
    assert [w.call("GET", "/sites", w.a.app).status_code for _ in range(6)] == [200] * 5 + [429]
    assert w.app.state.services.limiter.refused[(w.a.id, "api")] >= 3
    w.clock.now += 10_000_000


def _points(w: World, n: int, t0: int) -> dict[str, object]:
    return {
        "samples": {
            "names": [SIGNAL],
            "index": [0] * n,
            "ts": [t0 + i for i in range(n)],
            "value": [1.0] * n,
            "quality": [0] * n,
        }
    }


def test_ingest_points_per_second(guarded: World) -> None:
    w = guarded
    url = f"/sites/{w.a.site_id}/ingest"
    t0 = w.end + 1_000_000
    assert w.call("POST", url, w.a.edge, _points(w, 15, t0)).status_code == 200
    r = w.call("POST", url, w.a.edge, _points(w, 15, t0 + 100))
    assert r.status_code == 429 and "retry-after" in r.headers
    w.clock.now += 2_000_000
    assert w.call("POST", url, w.a.edge, _points(w, 15, t0 + 200)).status_code == 200
    assert w.call("POST", url, w.a.edge, _points(w, 21, t0 + 300)).status_code == 429


def test_request_size_limit(guarded: World) -> None:
    w = guarded
    big = {"model_yaml": "x" * 60_000}
    assert w.call("POST", "/sites", w.a.admin, big).status_code == 413

    def chunks() -> Iterator[bytes]:
        yield b'{"model_yaml": "'
        for _ in range(10):
            yield b"y" * 10_000
        yield b'"}'

    r = w.client.post(
        f"{PREFIX}/sites",
        content=chunks(),
        headers={**w.a.admin, "content-type": "application/json"},
    )
    assert r.status_code == 413


def test_security_headers_on_every_answer(guarded: World) -> None:
    w = guarded
    for r in (
        w.call("GET", "/health"),
        w.call("GET", "/sites"),
        w.call("GET", f"/sites/{w.b.site_id}", w.a.admin),
    ):
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert "default-src 'none'" in r.headers["content-security-policy"]
        assert r.headers["cache-control"] == "no-store"
        assert "strict-transport-security" not in r.headers  # no TLS here


def test_cors_allows_only_configured_origins(guarded: World) -> None:
    w = guarded
    pre = {
        "access-control-request-method": "GET",
        "access-control-request-headers": "authorization",
    }
    ok = w.client.options(f"{PREFIX}/sites", headers={"origin": ORIGIN, **pre})
    assert ok.headers.get("access-control-allow-origin") == ORIGIN
    bad = w.client.options(f"{PREFIX}/sites", headers={"origin": "https://evil.example", **pre})
    assert "access-control-allow-origin" not in bad.headers
    assert bad.status_code == 400


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tls")
    key, crt = d / "key.pem", d / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            str(key),
            "-out",
            str(crt),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return crt, key


def test_tls_served_by_uvicorn(cert: tuple[Path, Path], tmp_path: Path) -> None:
    crt, key = cert
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'm.db'}",
        tls={"certfile": crt, "keyfile": key},
    )
    store = DuckDBStore.open(None)
    app = create_app(settings, store=store)
    with live_server(app, certfile=crt, keyfile=key) as live:
        assert live.url.startswith("https://")
        ctx = ssl.create_default_context(cafile=str(crt))
        r = httpx.get(f"{live.url}{PREFIX}/health", verify=ctx, timeout=30)
        assert r.status_code == 200
        assert r.headers["strict-transport-security"].startswith("max-age=")
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{live.url}{PREFIX}/health", timeout=30)  # untrusted certificate
        plain = live.url.replace("https://", "http://")
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{plain}{PREFIX}/health", timeout=30)
    asyncio.run(store.close())


def test_login_attempts_are_limited_per_source_address(guarded: World) -> None:
    w = guarded
    ghost = {"email": "ghost@nowhere.example", "password": "not a password"}
    statuses = []
    for _ in range(32):
        statuses.append(w.call("POST", "/auth/login", body=ghost).status_code)
        if statuses[-1] == 429:
            break
    assert statuses[-1] == 429 and set(statuses) == {401, 429}
    w.clock.now += 1_000_000
    assert w.call("POST", "/auth/login", body=ghost).status_code == 401


def test_nul_characters_are_refused_before_the_database(world: World) -> None:
    """PostgreSQL text cannot hold NUL: the stateful schemathesis run once turned one into a
    500. Any request carrying one (JSON body, query, or a body streamed in chunks that split
    the escape) is now a 422 that names it, and nothing is written."""
    w = world
    before = len(w.call("GET", "/users", w.a.admin).json())
    r = w.call("POST", "/users", w.a.admin, {"email": "a\x00b@x.example", "password": "x" * 12})
    assert r.status_code == 422 and "NUL" in r.json()["detail"], r.text
    assert w.call("GET", "/sites", w.a.admin, prefix="a\x00").status_code == 422

    def chunks() -> Iterator[bytes]:
        yield b'{"email": "a\\u00'
        yield b'00b@x.example", "password": "' + b"y" * 12 + b'"}'

    r = w.client.post(
        f"{PREFIX}/users",
        content=chunks(),
        headers={**w.a.admin, "content-type": "application/json"},
    )
    assert r.status_code == 422, r.text
    assert len(w.call("GET", "/users", w.a.admin).json()) == before
