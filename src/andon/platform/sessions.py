"""Login sessions: refresh-token families, revocation checked on every request, and
one-time password-reset tokens.

A session is one login. Each refresh token rotated from it carries the session's id and each
access token names it (the ``sid`` claim), so revoking the session ends both at once: logout,
a password change or reset, disabling the user, and the reuse of a spent refresh token (the
sign that a copy of it was stolen: RFC 6819 5.2.2.3, "refresh token rotation") all do.

Every request asks :meth:`Sessions.active`; the answer is cached in memory for ``cache_s``
(half a second by default) so a busy client costs two indexed reads per second, and a
revocation made in this process clears the cache entry at once. Another worker's revocation
reaches this one's requests within ``cache_s``, and its open feeds within twice that (the
feed's own cached answer, then this one): a second by default. ``generation`` counts this
process's revocations, so long-lived feeds can notice one without a database read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from andon.model.types import Micros
from andon.platform.database import Database
from andon.platform.security import new_id, new_token, sha256_hex
from andon.platform.tables import password_resets, refresh_tokens, sessions, tenants, users

__all__ = ["RefreshRefused", "ResetToken", "Sessions"]

_CACHE_MAX = 50_000
_RESETS_PER_EMAIL = 20
"""Reset links mailed for one request at most (one per account of the address)."""


class RefreshRefused(Exception):
    """A refresh token that cannot be used; ``tenant_id``/``user_id`` when it names a real
    account (for the tenant's audit log)."""

    def __init__(self, reason: str, tenant_id: str | None = None, user_id: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.tenant_id = tenant_id
        self.user_id = user_id


@dataclass(frozen=True, slots=True)
class ResetToken:
    tenant_id: str
    user_id: str
    email: str
    token: str
    expires_at: Micros
    tenant_name: str = ""
    """The tenant's display name, for the mail (one address may have several accounts)."""


class Sessions:
    """The session table and its in-memory revocation cache (one per process)."""

    def __init__(
        self,
        db: Database,
        clock: Callable[[], Micros],
        *,
        refresh_ttl_s: int,
        cache_s: float = 0.5,
        reset_ttl_s: int = 3600,
    ) -> None:
        self.db = db
        self.clock = clock
        self.refresh_ttl_s = refresh_ttl_s
        self.cache_s = cache_s
        self.reset_ttl_s = reset_ttl_s
        self.generation = 0
        """Revocations made by this process (sessions, users, keys, grants) so far."""
        self._cache: dict[str, tuple[bool, float]] = {}

    def bump(self) -> None:
        """Something was revoked in this process: cached answers are stale."""
        self.generation += 1

    # ---- sessions --------------------------------------------------------------------------

    async def open(self, conn: AsyncConnection, tenant_id: str, user_id: str) -> str:
        sid = new_id()
        await conn.execute(
            insert(sessions).values(
                id=sid, tenant_id=tenant_id, user_id=user_id, created_at=self.clock()
            )
        )
        return sid

    async def active(self, sid: str) -> bool:
        """Whether the session is live (cached for ``cache_s``; see the module doc)."""
        now = time.monotonic()
        hit = self._cache.get(sid)
        if hit is not None and now - hit[1] < self.cache_s:
            return hit[0]
        async with self.db.begin() as conn:
            row = (
                await conn.execute(select(sessions.c.revoked_at).where(sessions.c.id == sid))
            ).one_or_none()
        ok = row is not None and row.revoked_at is None
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[sid] = (ok, now)
        return ok

    async def revoke(
        self,
        why: str,
        *,
        session_id: str | None = None,
        user_id: str | None = None,
        keep: str | None = None,
        conn: AsyncConnection | None = None,
    ) -> int:
        """Revoke one session, or every live session of ``user_id`` but ``keep``; their
        refresh tokens are spent too. Returns how many sessions ended."""
        if (session_id is None) == (user_id is None):
            raise ValueError("revoke one session_id or all of a user_id")
        now = self.clock()
        q = update(sessions).where(sessions.c.revoked_at.is_(None))
        if session_id is not None:
            q = q.where(sessions.c.id == session_id)
        else:
            q = q.where(sessions.c.user_id == user_id)
            if keep is not None:
                q = q.where(sessions.c.id != keep)
        q = q.values(revoked_at=now, revoked_why=why[:100]).returning(sessions.c.id)
        if conn is None:
            async with self.db.begin() as own:
                ended = [str(r) for r in (await own.execute(q)).scalars()]
                await self._spend(own, ended, now)
        else:
            ended = [str(r) for r in (await conn.execute(q)).scalars()]
            await self._spend(conn, ended, now)
        for sid in ended:
            self._cache[sid] = (False, time.monotonic())
        self.bump()
        return len(ended)

    async def _spend(self, conn: AsyncConnection, sids: list[str], now: Micros) -> None:
        if sids:
            await conn.execute(
                update(refresh_tokens)
                .where(refresh_tokens.c.session_id.in_(sids), refresh_tokens.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )

    # ---- refresh tokens --------------------------------------------------------------------

    async def new_refresh(self, conn: AsyncConnection, user_id: str, session_id: str) -> str:
        """A refresh token of the session (``<user id>.<secret>``), stored hashed."""
        secret = new_token()
        await conn.execute(
            insert(refresh_tokens).values(
                id=new_id(),
                user_id=user_id,
                session_id=session_id,
                token_hash=sha256_hex(secret),
                expires_at=self.clock() + self.refresh_ttl_s * 1_000_000,
                revoked_at=None,
            )
        )
        return f"{user_id}.{secret}"

    async def take_refresh(self, token: str) -> tuple[str, str, str]:
        """Spend a refresh token: ``(tenant, user id, session id)``. Presenting one that
        was already spent revokes its whole session (the family) and is refused."""
        uid, sep, secret = token.partition(".")
        if not sep:
            raise RefreshRefused("malformed refresh token")
        now = self.clock()
        async with self.db.begin() as conn:
            r = (
                await conn.execute(
                    select(
                        refresh_tokens.c.id,
                        refresh_tokens.c.session_id,
                        refresh_tokens.c.revoked_at,
                        refresh_tokens.c.expires_at,
                        users.c.tenant_id,
                        users.c.disabled,
                        sessions.c.revoked_at.label("session_revoked_at"),
                    )
                    .join(users, users.c.id == refresh_tokens.c.user_id)
                    .outerjoin(sessions, sessions.c.id == refresh_tokens.c.session_id)
                    .where(
                        refresh_tokens.c.user_id == uid,
                        refresh_tokens.c.token_hash == sha256_hex(secret),
                    )
                )
            ).one_or_none()
        if r is None:
            raise RefreshRefused("unknown refresh token")
        tid, sid = str(r.tenant_id), r.session_id
        if sid is None:
            raise RefreshRefused("refresh token without a session", tid, uid)
        if r.session_revoked_at is not None:
            raise RefreshRefused("session revoked", tid, uid)
        if r.revoked_at is not None:
            await self.revoke("refresh token reused", session_id=str(sid))
            raise RefreshRefused("spent refresh token reused: session revoked", tid, uid)
        if int(r.expires_at) <= now:
            raise RefreshRefused("refresh token expired", tid, uid)
        if r.disabled:
            raise RefreshRefused("account disabled", tid, uid)
        async with self.db.begin() as conn:
            res = await conn.execute(
                update(refresh_tokens)
                .where(refresh_tokens.c.id == r.id, refresh_tokens.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            spent = res.rowcount == 1
        if not spent:  # spent by a concurrent request: a copy is in use
            await self.revoke("refresh token reused", session_id=str(sid))
            raise RefreshRefused("spent refresh token reused: session revoked", tid, uid)
        return tid, uid, str(sid)

    # ---- password resets -------------------------------------------------------------------

    async def new_reset(self, email: str, tenant: str | None = None) -> list[ResetToken]:
        """A one-time reset token for each enabled account of ``email`` (of ``tenant`` only,
        when given; at most ``_RESETS_PER_EMAIL``, oldest first). Only their SHA-256 is
        stored; earlier unused tokens of those accounts are voided."""
        now = self.clock()
        q = (
            select(users.c.id, users.c.tenant_id, users.c.email, tenants.c.name)
            .join(tenants, tenants.c.id == users.c.tenant_id)
            .where(users.c.email == email.lower(), users.c.disabled.is_(False))
        )
        if tenant is not None:
            q = q.where(users.c.tenant_id == tenant.lower())
        q = q.order_by(users.c.created_at, users.c.id).limit(_RESETS_PER_EMAIL)
        out: list[ResetToken] = []
        async with self.db.begin() as conn:
            for u in (await conn.execute(q)).all():
                await conn.execute(
                    update(password_resets)
                    .where(password_resets.c.user_id == u.id, password_resets.c.used_at.is_(None))
                    .values(used_at=now)
                )
                token = new_token()
                expires = now + self.reset_ttl_s * 1_000_000
                await conn.execute(
                    insert(password_resets).values(
                        id=new_id(),
                        tenant_id=u.tenant_id,
                        user_id=u.id,
                        token_hash=sha256_hex(token),
                        created_at=now,
                        expires_at=expires,
                        used_at=None,
                    )
                )
                out.append(
                    ResetToken(
                        str(u.tenant_id), str(u.id), str(u.email), token, expires, str(u.name)
                    )
                )
        return out

    async def use_reset(self, token: str, conn: AsyncConnection) -> tuple[str, str]:
        """Spend a reset token inside ``conn``'s transaction: ``(tenant, user id)``; raises
        ``RefreshRefused`` (with the account when known) when it is unknown, used or
        expired."""
        now = self.clock()
        r = (
            await conn.execute(
                select(
                    password_resets.c.id,
                    password_resets.c.tenant_id,
                    password_resets.c.user_id,
                    password_resets.c.expires_at,
                    password_resets.c.used_at,
                ).where(password_resets.c.token_hash == sha256_hex(token))
            )
        ).one_or_none()
        if r is None:
            raise RefreshRefused("unknown reset token")
        tid, uid = str(r.tenant_id), str(r.user_id)
        if r.used_at is not None:
            raise RefreshRefused("reset token already used", tid, uid)
        if int(r.expires_at) <= now:
            raise RefreshRefused("reset token expired", tid, uid)
        res = await conn.execute(
            update(password_resets)
            .where(password_resets.c.id == r.id, password_resets.c.used_at.is_(None))
            .values(used_at=now)
        )
        if res.rowcount != 1:
            raise RefreshRefused("reset token already used", tid, uid)
        return tid, uid
