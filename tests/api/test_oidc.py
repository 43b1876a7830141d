"""Single sign-on against a real OpenID Connect provider (panva/oidc-provider under Node,
started on loopback by the test): the authorization code flow with PKCE signs in the andon
user whose email the provider verified, in the configured tenant only, and every failure is
a 401 that is audited."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from andon.api import PREFIX, create_app
from andon.platform import Platform, Role
from andon.platform.config import Settings
from andon.store import DuckDBStore
from tests.oidc.harness import CLIENT_ID, CLIENT_SECRET, sign_in_at_provider
from tests.oidc.harness import provider as oidc_provider

REDIRECT = "http://127.0.0.1:9/sso/callback"  # never fetched: the test reads the redirect
PASSWORD = "correct horse battery"
ACCOUNTS = {"alice": "alice@ta.example", "mallory": "mallory@elsewhere.example"}


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    with oidc_provider(REDIRECT, ACCOUNTS) as url:
        yield url


@pytest.fixture(scope="module")
def client(provider: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    tmp = tmp_path_factory.mktemp("oidc")
    settings = Settings(
        database_url=f"sqlite:///{tmp / 'meta.db'}",
        limits={"api_rps": 0, "auth_per_s": 0, "ingest_points_per_s": 0},
        monitoring={"alert_interval_s": 0},
        security={
            "oidc": {
                "issuer": provider,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uri": REDIRECT,
                "tenant": "ta",
            }
        },
    )
    store = DuckDBStore.open(None)
    with TestClient(create_app(settings, store=store)) as c:
        pf: Platform = c.app.state.services.platform  # type: ignore[attr-defined]
        c.portal.call(pf.create_tenant, "ta", "TA")  # type: ignore[union-attr]
        c.portal.call(pf.create_tenant, "tb", "TB")  # type: ignore[union-attr]
        c.portal.call(  # type: ignore[union-attr]
            pf.create_user, "ta", ACCOUNTS["alice"], PASSWORD, [(Role.VIEWER, None)]
        )
        # the same address in another tenant: single sign-on reaches only tenant ta
        c.portal.call(  # type: ignore[union-attr]
            pf.create_user, "tb", ACCOUNTS["mallory"], PASSWORD, [(Role.VIEWER, None)]
        )
        yield c


def _sign_in_at_provider(url: str, account: str) -> dict[str, str]:
    return sign_in_at_provider(url, account, REDIRECT)


def _start(client: TestClient) -> str:
    r = client.get(PREFIX + "/auth/oidc/start")
    assert r.status_code == 200, r.text
    url: str = r.json()["authorization_url"]
    return url


def _audit(client: TestClient, tenant: str) -> list[tuple[str, str]]:
    pf: Platform = client.app.state.services.platform  # type: ignore[attr-defined]
    rows = client.portal.call(  # type: ignore[union-attr]
        lambda: pf.audit.query(tenant, action="auth.oidc", limit=1000)
    )
    return [(r.result, r.actor) for r in rows]


def test_a_provider_verified_email_signs_in_that_user(client: TestClient) -> None:
    back = _sign_in_at_provider(_start(client), "alice")
    r = client.post(
        PREFIX + "/auth/oidc/callback", json={"code": back["code"], "state": back["state"]}
    )
    assert r.status_code == 200, r.text
    me = client.get(
        PREFIX + "/auth/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"}
    )
    assert me.status_code == 200 and me.json()["tenant_id"] == "ta"
    assert _audit(client, "ta")[-1] == ("ok", f"user:{me.json()['id']}")
    # the code and the state are spent
    again = client.post(
        PREFIX + "/auth/oidc/callback", json={"code": back["code"], "state": back["state"]}
    )
    assert again.status_code == 401


def test_sign_ins_that_must_fail_are_401_and_audited(client: TestClient) -> None:
    back = _sign_in_at_provider(_start(client), "alice")
    forged = client.post(
        PREFIX + "/auth/oidc/callback", json={"code": back["code"], "state": "forged"}
    )
    assert forged.status_code == 401  # a state this service never issued
    # a verified email that belongs to another tenant's user: not this tenant's to sign in
    back = _sign_in_at_provider(_start(client), "mallory")
    other = client.post(
        PREFIX + "/auth/oidc/callback", json={"code": back["code"], "state": back["state"]}
    )
    assert other.status_code == 401
    assert ("failed", "oidc:mallory") in _audit(client, "ta")
    assert _audit(client, "tb") == []
