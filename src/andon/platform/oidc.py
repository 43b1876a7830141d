"""Single sign-on with OpenID Connect: the authorization code flow with PKCE.

``start`` makes a one-time ``state`` (with its nonce and PKCE verifier, kept in the
metadata database's ``oidc_states`` for ``PENDING_S``, so the callback may reach any worker
sharing that database, or one restarted meanwhile) and the provider's authorization URL;
``finish`` takes the code and state the provider sent back (the state is taken from the
database once: a replay finds nothing), exchanges the code at the token endpoint (client
secret and verifier), and checks the ID token: signature against the provider's JWKS,
issuer, audience, expiry, nonce, and a verified email (from the ID token, else from
userinfo for the same subject). The caller then signs in the andon user with that email,
in the configured tenant only; nobody is created by a sign-in.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from sqlalchemy import delete, func, insert, select

from andon.model.types import Micros
from andon.platform.config import Oidc
from andon.platform.database import Database
from andon.platform.security import sha256_hex
from andon.platform.tables import oidc_states

__all__ = ["MAX_PENDING", "PENDING_S", "OidcError", "OidcIdentity", "OidcLogin", "SignInStates"]

PENDING_S = 600
"""How long a started sign-in may take before its state is refused (seconds)."""
MAX_PENDING = 10_000
"""Sign-ins in progress at most (unexpired states); beyond, ``start`` refuses."""
_ALGS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]


class OidcError(Exception):
    """A sign-in that cannot be completed; the message says why (for the audit log)."""


@dataclass(frozen=True, slots=True)
class OidcIdentity:
    subject: str
    email: str


class SignInStates:
    """Sign-ins in progress, in the metadata database: each state's nonce and PKCE verifier,
    stored under the state's SHA-256 (a copy of the database cannot name a live state), taken
    at most once and refused after ``PENDING_S``. ``clock``: ``Micros`` (injectable)."""

    def __init__(self, db: Database, clock: Callable[[], Micros]) -> None:
        self.db = db
        self.clock = clock

    async def put(self, state: str, nonce: str, verifier: str) -> None:
        """Keep a new sign-in's secrets; expired ones are deleted on the way. Raises
        ``OidcError`` when ``MAX_PENDING`` sign-ins are already in progress."""
        now = self.clock()
        async with self.db.begin() as conn:
            await conn.execute(delete(oidc_states).where(oidc_states.c.expires_at <= now))
            live = (await conn.execute(select(func.count()).select_from(oidc_states))).scalar()
            if int(live or 0) >= MAX_PENDING:
                raise OidcError("too many sign-ins in progress")
            await conn.execute(
                insert(oidc_states).values(
                    state_hash=sha256_hex(state),
                    nonce=nonce,
                    verifier=verifier,
                    created_at=now,
                    expires_at=now + PENDING_S * 1_000_000,
                )
            )

    async def take(self, state: str) -> tuple[str, str]:
        """``(nonce, verifier)`` of a live sign-in, deleted in the same statement, so two
        callbacks with one state (a replay, or two workers at once) get it once. Raises
        ``OidcError`` for a state never issued, already taken or expired."""
        now = self.clock()
        async with self.db.begin() as conn:
            row = (
                await conn.execute(
                    delete(oidc_states)
                    .where(oidc_states.c.state_hash == sha256_hex(state))
                    .returning(
                        oidc_states.c.nonce, oidc_states.c.verifier, oidc_states.c.expires_at
                    )
                )
            ).one_or_none()
        if row is None:
            raise OidcError("unknown or already used sign-in state")
        if int(row.expires_at) <= now:
            raise OidcError("expired sign-in state")
        return str(row.nonce), str(row.verifier)


class OidcLogin:
    """One provider's sign-ins (one per app; its states are shared through ``db``)."""

    def __init__(
        self,
        cfg: Oidc,
        db: Database,
        clock: Callable[[], Micros],
        *,
        timeout_s: float = 10.0,
    ) -> None:
        self.cfg = cfg
        self.timeout_s = timeout_s
        self.states = SignInStates(db, clock)
        self._meta: dict[str, Any] | None = None

    async def _get(self, url: str) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=self.timeout_s) as client:
            r = await client.get(url)
        if r.status_code != 200:
            raise OidcError(f"{url}: answered {r.status_code}")
        doc: dict[str, Any] = r.json()
        return doc

    async def metadata(self) -> dict[str, Any]:
        if self._meta is None:
            issuer = self.cfg.issuer.rstrip("/")
            meta = await self._get(f"{issuer}/.well-known/openid-configuration")
            if str(meta.get("issuer", "")).rstrip("/") != issuer:
                raise OidcError(f"the provider names issuer {meta.get('issuer')!r}, not {issuer!r}")
            self._meta = meta
        return self._meta

    def _secret(self) -> str:
        return self.cfg.resolved_secret()

    async def start(self) -> str:
        """The provider's authorization URL for a new sign-in."""
        meta = await self.metadata()
        state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
        await self.states.put(state, nonce, verifier)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        query = {
            "response_type": "code",
            "client_id": self.cfg.client_id,
            "redirect_uri": self.cfg.redirect_uri,
            "scope": "openid email",
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
        }
        return f"{meta['authorization_endpoint']}?{urllib.parse.urlencode(query)}"

    async def _userinfo(self, url: str, access_token: object) -> dict[str, Any]:
        if not isinstance(access_token, str):
            raise OidcError("the token endpoint sent no access token for userinfo")
        async with httpx.AsyncClient(timeout=self.timeout_s) as client:
            r = await client.get(url, headers={"Authorization": f"Bearer {access_token}"})
        if r.status_code != 200:
            raise OidcError(f"userinfo answered {r.status_code}")
        info: dict[str, Any] = r.json()
        return info

    async def finish(self, code: str, state: str) -> OidcIdentity:
        """Redeem the code of a sign-in started by any worker on this database (``state``,
        used once)."""
        nonce, verifier = await self.states.take(state)
        meta = await self.metadata()
        async with httpx.AsyncClient(timeout=self.timeout_s) as client:
            r = await client.post(
                meta["token_endpoint"],
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": self.cfg.redirect_uri,
                    "code_verifier": verifier,
                },
                auth=(self.cfg.client_id, self._secret()),
            )
        if r.status_code != 200:
            raise OidcError(f"the token endpoint refused the code ({r.status_code})")
        tokens = r.json()
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise OidcError("the token endpoint sent no ID token")
        jwks = jwt.PyJWKSet.from_dict(await self._get(meta["jwks_uri"]))
        try:
            kid = jwt.get_unverified_header(id_token).get("kid")
            keys = [k for k in jwks.keys if kid is None or k.key_id == kid]
            if not keys:
                raise OidcError(f"the ID token's key {kid!r} is not in the provider's JWKS")
            claims = jwt.decode(
                id_token,
                keys[0].key,
                algorithms=_ALGS,
                audience=self.cfg.client_id,
                issuer=str(meta["issuer"]),
                options={"require": ["iss", "aud", "exp", "iat", "sub"]},
                leeway=30,
            )
        except jwt.PyJWTError as exc:
            raise OidcError(f"ID token refused: {exc}") from exc
        if claims.get("nonce") != nonce:
            raise OidcError("ID token nonce does not match the sign-in")
        if "email" not in claims and "userinfo_endpoint" in meta:
            # providers conforming to OIDC Core 5.4 put scope claims in userinfo only
            info = await self._userinfo(meta["userinfo_endpoint"], tokens.get("access_token"))
            if info.get("sub") != claims["sub"]:
                raise OidcError("userinfo names another subject than the ID token")
            claims = {**info, **claims}
        email = claims.get("email")
        if not isinstance(email, str) or claims.get("email_verified") is not True:
            raise OidcError("the provider vouches for no verified email")
        return OidcIdentity(str(claims["sub"]), email.lower())
