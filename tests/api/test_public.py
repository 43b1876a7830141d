"""The public faces of ``andon.api`` and ``andon.platform`` are deliberate and importable."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "andon.api": ["PREFIX", "Endpoint", "Scope", "create_app", "endpoints"],
    "andon.platform": [
        "AuditEntry",
        "AuditLog",
        "ConfigError",
        "Conflict",
        "Database",
        "Invalid",
        "KeyKind",
        "LoginFailed",
        "NotFound",
        "Permission",
        "Platform",
        "PlatformError",
        "Principal",
        "RateLimiter",
        "Role",
        "Settings",
        "TokenBucket",
        "TokenPair",
        "VerifyResult",
        "load_settings",
    ],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_all_is_pinned(module: str) -> None:
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == sorted(PUBLIC[module])
    for name in mod.__all__:
        assert hasattr(mod, name)


def test_openapi_is_published_with_declarations() -> None:
    from andon.api import PREFIX, create_app, endpoints
    from andon.platform.config import Settings

    doc = create_app(Settings(database_url="sqlite:///unused.db")).openapi()
    ops = {op["operationId"]: op for path in doc["paths"].values() for op in path.values()}
    for ep in endpoints():
        op = ops[ep.name]
        assert op["x-scope"] == ep.scope
        assert op.get("x-permission") == (ep.permission.value if ep.permission else None)
        assert (PREFIX + ep.path) in doc["paths"]
        assert ("security" in op) == (ep.scope != "public")
