"""One API world per metadata backend (SQLite and PostgreSQL), shared by the API tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.world import World, make_world
from tests.platform.dbs import BACKENDS


@pytest.fixture(scope="session", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    with make_world(
        request.param,
        tmp_path_factory.mktemp("world"),
        limits={
            "api_rps": 0,
            "ingest_points_per_s": 0,
            "auth_per_s": 0,
            "principal_rps": 0,
            "anonymous_per_s": 0,
        },
    ) as w:
        yield w
