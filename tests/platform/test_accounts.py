"""Password-reset tokens: stored hashed, single use, expiring; a session's refresh tokens
form one family."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from andon.platform import Database, Platform, Role
from andon.platform.service import LoginFailed
from andon.platform.tables import password_resets

PASSWORD = "correct horse battery"


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000_000_000_000

    def __call__(self) -> int:
        return self.now


def test_reset_tokens_are_hashed_single_use_and_expire(db_url: str) -> None:
    clock = _Clock()

    async def go() -> None:
        db = Database(db_url)
        try:
            pf = Platform(db, clock)
            await pf.start()
            await pf.create_tenant("t", "T")
            await pf.create_user("t", "a@t.example", PASSWORD, [(Role.VIEWER, None)])
            assert await pf.request_reset("nobody@t.example") == []
            [late] = await pf.request_reset("A@t.example")
            async with db.begin() as conn:
                stored = (await conn.execute(select(password_resets.c.token_hash))).scalars().all()
            assert late.token not in stored and len(stored) == 1  # only its SHA-256
            clock.now += pf.sessions.reset_ttl_s * 1_000_000
            with pytest.raises(LoginFailed, match="expired") as exc:
                await pf.reset_password(late.token, "a fresh passphrase")
            assert exc.value.tenant_id == "t"
            [first] = await pf.request_reset("a@t.example")
            [second] = await pf.request_reset("a@t.example")
            with pytest.raises(LoginFailed, match="already used"):  # voided by the newer one
                await pf.reset_password(first.token, "a fresh passphrase")
            assert await pf.reset_password(second.token, "a fresh passphrase") == (
                "t",
                second.user_id,
            )
            with pytest.raises(LoginFailed, match="already used"):
                await pf.reset_password(second.token, "another passphrase")
            with pytest.raises(LoginFailed, match="unknown"):
                await pf.reset_password("forged", "another passphrase")
            await pf.login("a@t.example", "a fresh passphrase")
        finally:
            await db.close()

    asyncio.run(go())
