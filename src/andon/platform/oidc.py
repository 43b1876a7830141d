"""Single sign-on with OpenID Connect: the authorization code flow with PKCE.

``start`` makes a one-time ``state`` (with its nonce and PKCE verifier, kept in memory for
``PENDING_S``) and the provider's authorization URL; ``finish`` takes the code and state the
provider sent back, exchanges the code at the token endpoint (client secret and verifier),
and checks the ID token: signature against the provider's JWKS, issuer, audience, expiry,
nonce, and a verified email (from the ID token, else from userinfo for the same subject).
The caller then signs in the andon user with that email, in the configured tenant only;
nobody is created by a sign-in.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from andon.platform.config import Oidc

__all__ = ["PENDING_S", "OidcError", "OidcIdentity", "OidcLogin"]

PENDING_S = 600.0
"""How long a started sign-in may take before its state is forgotten."""
_ALGS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]


class OidcError(Exception):
    """A sign-in that cannot be completed; the message says why (for the audit log)."""


@dataclass(frozen=True, slots=True)
class OidcIdentity:
    subject: str
    email: str


class OidcLogin:
    """One provider's sign-ins (one per app)."""

    def __init__(self, cfg: Oidc, *, timeout_s: float = 10.0) -> None:
        self.cfg = cfg
        self.timeout_s = timeout_s
        self._pending: dict[str, tuple[str, str, float]] = {}
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
        now = time.monotonic()
        self._pending = {s: p for s, p in self._pending.items() if p[2] > now}
        if len(self._pending) >= 10_000:
            raise OidcError("too many sign-ins in progress")
        state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
        self._pending[state] = (nonce, verifier, now + PENDING_S)
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
        """Redeem the code of a sign-in this process started (``state``, used once)."""
        pending = self._pending.pop(state, None)
        if pending is None or pending[2] <= time.monotonic():
            raise OidcError("unknown or expired sign-in state")
        nonce, verifier, _ = pending
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
