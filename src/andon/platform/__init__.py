"""The platform: tenants, sites, users, role grants, API keys, logins and the audit log, kept
in a metadata database (SQLite embedded, PostgreSQL in server mode) migrated by Alembic."""

from __future__ import annotations

from andon.platform.audit import AuditEntry, AuditLog, VerifyResult
from andon.platform.config import ConfigError, Settings, load_settings
from andon.platform.database import Database
from andon.platform.permissions import KeyKind, Permission, Role
from andon.platform.ratelimit import RateLimiter, TokenBucket
from andon.platform.service import (
    Conflict,
    Invalid,
    LoginFailed,
    NotFound,
    Platform,
    PlatformError,
    Principal,
    TokenPair,
)

__all__ = [
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
]
