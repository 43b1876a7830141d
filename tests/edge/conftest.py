from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.edge.broker import Broker
from tests.edge.platform_api import ApiPlatform


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path)
    b.start()
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiPlatform]:
    """The platform API served over HTTPS on loopback, with a tenant, a site and an edge key."""
    p = ApiPlatform(tmp_path / "api")
    try:
        p.start()
        p.setup()
        yield p
    finally:
        p.close()
