"""Single sign-on across workers: the state a sign-in starts with lives in the metadata
database, so the provider's callback may reach another ``andon serve`` worker (or one
restarted meanwhile) on the same database; the state works once, at any worker. Against the
real test provider (``tests/oidc``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from andon.api import PREFIX, create_app
from andon.platform import Platform, Role
from andon.platform.config import Settings
from andon.store import DuckDBStore
from tests.api.world import PASSWORD
from tests.oidc.harness import CLIENT_ID, CLIENT_SECRET, provider, sign_in_at_provider

REDIRECT = "http://127.0.0.1:9/sso/callback"  # never fetched: the test reads the redirect
EMAIL = "alice@shared.example"


@pytest.fixture(scope="module")
def workers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[TestClient, TestClient, str]]:
    """Two apps (two workers) on one metadata database, one sign-on provider; and the id of
    tenant ta's user with the provider's email."""
    tmp: Path = tmp_path_factory.mktemp("sso")
    with provider(REDIRECT, {"alice": EMAIL}) as issuer, ExitStack() as stack:
        settings = Settings(
            database_url=f"sqlite:///{tmp / 'meta.db'}",
            limits={"api_rps": 0, "auth_per_s": 0, "ingest_points_per_s": 0},
            monitoring={"alert_interval_s": 0},
            security={
                "oidc": {
                    "issuer": issuer,
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "redirect_uri": REDIRECT,
                    "tenant": "ta",
                }
            },
        )
        clients = []
        for _ in range(2):
            store = DuckDBStore.open(None)
            stack.callback(asyncio.run, store.close())  # after its app has stopped
            clients.append(stack.enter_context(TestClient(create_app(settings, store=store))))
        one, two = clients
        pf: Platform = one.app.state.services.platform  # type: ignore[attr-defined]
        for t in ("ta", "tb"):
            one.portal.call(pf.create_tenant, t, t.upper())  # type: ignore[union-attr]
        # the same address in both tenants (tb's the older): sign-on reaches ta's only
        ids = {
            t: one.portal.call(  # type: ignore[union-attr]
                pf.create_user, t, EMAIL, PASSWORD, [(Role.VIEWER, None)]
            )["id"]
            for t in ("tb", "ta")
        }
        yield one, two, ids["ta"]


def test_a_sign_in_started_at_one_worker_finishes_at_another_once(
    workers: tuple[TestClient, TestClient, str],
) -> None:
    one, two, alice = workers
    r = one.get(PREFIX + "/auth/oidc/start")
    assert r.status_code == 200, r.text
    got = sign_in_at_provider(r.json()["authorization_url"], "alice", REDIRECT)
    back = {"code": got["code"], "state": got["state"]}
    done = two.post(PREFIX + "/auth/oidc/callback", json=back)
    assert done.status_code == 200, done.text
    me = two.get(
        PREFIX + "/auth/me", headers={"Authorization": f"Bearer {done.json()['access_token']}"}
    )
    assert me.status_code == 200
    assert (me.json()["tenant_id"], me.json()["id"]) == ("ta", alice)
    for worker in (one, two):  # a replay is refused at either worker
        again = worker.post(PREFIX + "/auth/oidc/callback", json=back)
        assert again.status_code == 401
    # a state this database never issued: refused before the provider is asked anything
    forged = one.post(PREFIX + "/auth/oidc/callback", json={**back, "state": "forged"})
    assert forged.status_code == 401
