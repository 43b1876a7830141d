"""Secrets: argon2 password hashes, API keys and refresh tokens (SHA-256 at rest), JWTs.

API keys and refresh tokens are 256-bit random secrets, so a fast hash (SHA-256) is as safe
as a slow one and keeps per-request authentication cheap; passwords are chosen by people and
get argon2id (see docs/decisions/0602-api-key-hashing.md).

>>> key, key_id, secret = new_api_key()
>>> parse_api_key(key) == (key_id, secret)
True
>>> parse_api_key("andon_nope") is None
True
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from andon.model.types import Micros

__all__ = [
    "KEY_PREFIX",
    "AccessClaims",
    "TokenError",
    "decode_access_token",
    "hash_password",
    "issue_access_token",
    "new_api_key",
    "new_id",
    "new_token",
    "parse_api_key",
    "password_needs_rehash",
    "sha256_hex",
    "verify_password",
    "verify_secret",
]

KEY_PREFIX = "andon_"
_HASHER = PasswordHasher()
_ALG = "HS256"


class TokenError(Exception):
    """An access token that is malformed, forged or expired."""


def new_id() -> str:
    """A random 128-bit id, hex: unguessable, so ids leak nothing across tenants."""
    return secrets.token_hex(16)


def new_token() -> str:
    """A 256-bit random secret, URL-safe."""
    return secrets.token_urlsafe(32)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def verify_secret(secret: str, digest: str) -> bool:
    """Constant-time comparison of a secret with its stored SHA-256 digest."""
    return hmac.compare_digest(sha256_hex(secret), digest)


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password: str, digest: str) -> bool:
    try:
        return _HASHER.verify(digest, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_needs_rehash(digest: str) -> bool:
    return _HASHER.check_needs_rehash(digest)


def new_api_key() -> tuple[str, str, str]:
    """``(full key, key id, secret)``; the full key is ``andon_<id>_<secret>``."""
    key_id = new_id()
    secret = new_token()
    return f"{KEY_PREFIX}{key_id}_{secret}", key_id, secret


def parse_api_key(key: str) -> tuple[str, str] | None:
    """``(key id, secret)`` of a well-formed key, else ``None``."""
    if not key.startswith(KEY_PREFIX):
        return None
    key_id, sep, secret = key[len(KEY_PREFIX) :].partition("_")
    if not sep or len(key_id) != 32 or not secret:
        return None
    return key_id, secret


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: str
    tenant_id: str
    expires_at: Micros
    session_id: str | None = None
    """The login session (``sid``) the token belongs to; revoking it ends the token."""


def issue_access_token(
    secret: str,
    user_id: str,
    tenant_id: str,
    now: Micros,
    ttl_s: int,
    session_id: str | None = None,
) -> tuple[str, Micros]:
    """A signed short-lived access token and its expiry (``sid``: its login session)."""
    exp = now + ttl_s * 1_000_000
    payload: dict[str, Any] = {
        "sub": user_id,
        "tid": tenant_id,
        "typ": "access",
        "iat": now // 1_000_000,
        "exp": exp // 1_000_000,
        "jti": new_id(),
    }
    if session_id is not None:
        payload["sid"] = session_id
    return jwt.encode(payload, secret, algorithm=_ALG), exp


def decode_access_token(secret: str, token: str, now: Micros) -> AccessClaims:
    """Check signature, type and expiry against ``now`` (injectable time, not the wall clock)."""
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[_ALG],
            # expiry is checked below against ``now``; PyJWT would check "iat" against the
            # wall clock, refusing every token after a clock step or under a plant clock
            options={
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "require": ["sub", "tid", "exp", "typ"],
            },
        )
    except jwt.PyJWTError as exc:
        raise TokenError(f"invalid token: {exc}") from exc
    if payload.get("typ") != "access":
        raise TokenError("not an access token")
    exp = int(payload["exp"]) * 1_000_000
    if now >= exp:
        raise TokenError("token expired")
    sid = payload.get("sid")
    return AccessClaims(
        str(payload["sub"]), str(payload["tid"]), exp, None if sid is None else str(sid)
    )
