"""Schemathesis against the published OpenAPI document, over real HTTP to a live server, on
SQLite and on PostgreSQL metadata: no 5xx, responses conform to the schema, calls without
credentials are rejected, and (stateful) sequences that follow the links schemathesis infers
between operations (create a site, read it, import its model, delete it; create a key, read
it, revoke it; ...) keep those properties."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from andon.api import PREFIX, create_app
from andon.platform import Role
from andon.platform.config import Settings
from andon.store import DuckDBStore
from tests.api.live import LiveServer, live_server
from tests.api.world import PASSWORD, demo_yaml
from tests.platform.dbs import BACKENDS, database_url

_OFFLINE = Settings(database_url="sqlite:///unused.db")
DOC = create_app(_OFFLINE).openapi()
# the live feeds stream for up to an hour of real time: tests/api/test_live.py and
# tests/api/test_kiosk.py cover them
schema = schemathesis.openapi.from_dict(DOC).exclude(
    operation_id_regex=r"^(live\.values|kiosk\.feed)$"
)
# without credentials every call stops at the door: random inputs suffice, no coverage phase
anonymous = schemathesis.openapi.from_dict(DOC)
anonymous.config.phases.coverage.enabled = False
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    tmp: Path = tmp_path_factory.mktemp("st")
    store = DuckDBStore.open(None)
    with database_url(request.param, tmp) as url:
        app = create_app(
            Settings(
                database_url=url,
                limits={"api_rps": 0, "auth_per_s": 0, "principal_rps": 0, "anonymous_per_s": 0},
            ),
            store=store,
        )
        with _started(app) as started:
            yield started
    asyncio.run(store.close())


@contextmanager
def _started(app: Any) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    with live_server(app) as live:
        httpx.get(f"{live.url}{PREFIX}/health", timeout=30).raise_for_status()
        pf = app.state.services.platform
        live.run(pf.create_tenant("ta", "A"))
        live.run(pf.create_user("ta", "admin@ta.example", PASSWORD, [(Role.TENANT_ADMIN, None)]))
        live.run(pf.create_site("ta", demo_yaml()))
        r = httpx.post(
            f"{live.url}{PREFIX}/auth/login",
            json={"email": "admin@ta.example", "password": PASSWORD},
        )
        r.raise_for_status()
        yield live, {"Authorization": f"Bearer {r.json()['access_token']}"}


_SETTINGS = settings(
    max_examples=4,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


@schema.parametrize()
@_SETTINGS
def test_api_conforms_to_its_schema(
    case: schemathesis.Case[Any], server: tuple[LiveServer, dict[str, str]]
) -> None:
    live, auth = server
    case.call_and_validate(base_url=live.url, headers=auth, checks=CHECKS)


@anonymous.parametrize()
@_SETTINGS
def test_calls_without_credentials_are_rejected(
    case: schemathesis.Case[Any], server: tuple[LiveServer, dict[str, str]]
) -> None:
    live, _ = server
    response = case.call(base_url=live.url)
    op = DOC["paths"][case.operation.path][case.operation.method.lower()]
    assert response.status_code < 500
    if case.method.upper() != case.operation.method.upper():
        assert response.status_code in (401, 405), response.text
    elif op.get("x-scope") != "public":
        # 401, or refused before authentication because the body is not even parseable
        assert response.status_code in (400, 401, 413, 422), response.text
        if response.status_code == 401:
            assert response.headers.get("www-authenticate") == ["Bearer"]


_TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,50}$")
_serial = itertools.count()


def _unique_names(case: schemathesis.Case[Any]) -> None:
    """Make generated emails and tenant ids unique before the call. Hypothesis draws the same
    short ones again ("0@A.COM"); the second would get 409 where the first got 201, so a
    bundle filled in one example stays empty in the next and Hypothesis (rightly) calls the
    data generation flaky. Values that are invalid stay invalid."""
    body = case.body
    if not isinstance(body, dict):
        return
    n = next(_serial)
    for field in ("email", "admin_email"):
        v = body.get(field)
        if isinstance(v, str) and v.count("@") == 1 and len(v.split("@")[0]) <= 50:
            body[field] = f"s{n}.{v}"
    v = body.get("id")
    if isinstance(v, str) and _TENANT_ID.match(v):
        body["id"] = f"{v}-s{n}"


def test_stateful_sequences_conform(server: tuple[LiveServer, dict[str, str]]) -> None:
    """Sequences of calls chained by the links schemathesis infers from the schema: each
    step's response must conform and no step may fail with 5xx."""
    live, auth = server
    workflow = schema.as_state_machine()
    assert len(workflow.bundles) >= 10, "too few links inferred: the stateful phase is empty"
    calls: list[str] = []

    class Workflow(workflow):  # type: ignore[misc,valid-type]
        def before_call(self, case: schemathesis.Case[Any], **kwargs: Any) -> None:
            _unique_names(case)

        def get_call_kwargs(self, case: schemathesis.Case[Any]) -> dict[str, Any]:
            calls.append(f"{case.method} {case.path}")
            return {"base_url": live.url, "headers": auth}

        def validate_response(
            self, response: Any, case: schemathesis.Case[Any], **kwargs: Any
        ) -> None:
            case.validate_response(response, checks=CHECKS)

    Workflow.run(
        settings=settings(
            max_examples=12,
            stateful_step_count=6,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
    )
    chained = {c for c in calls if "{" in c}
    assert len(calls) >= 24 and len(chained) >= 3, (len(calls), sorted(chained))
