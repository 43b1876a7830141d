"""The audit chain: any edited, deleted or inserted row is found by verification, and by
``andon audit verify`` (exit 1)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import delete, insert, select, update
from typer.testing import CliRunner

from andon.cli import app as cli
from andon.platform import AuditLog, Database
from andon.platform.audit import GENESIS
from andon.platform.tables import audit_head, audit_log

FIELDS = (
    "ts",
    "tenant_id",
    "actor",
    "source",
    "action",
    "object",
    "result",
    "detail",
    "prev_hash",
    "hash",
)


async def _fill(db: Database, n: int) -> AuditLog:
    await db.migrate()
    t = iter(range(1_000, 10_000))
    log = AuditLog(db, lambda: next(t))
    for i in range(n):
        await log.record(
            tenant_id="ta" if i % 2 else "tb",
            actor=f"user:{i}",
            source="127.0.0.1",
            action="sites.create",
            obj=f"site:{i}",
            result="ok",
            detail={"i": i},
        )
    return log


def _changed(value: object) -> object:
    if isinstance(value, int):
        return value + 1
    if value is None:
        return "ta"
    return str(value)[:-1] + ("0" if not str(value).endswith("0") else "1")


def test_chain_verifies_and_every_tampering_is_found(db_url: str) -> None:
    async def go() -> None:
        db = Database(db_url)
        try:
            log = await _fill(db, 5)
            ok = await log.verify()
            assert ok.ok and ok.rows == 5 and ok.head != GENESIS
            assert [e.seq for e in await log.query("ta")] == [2, 4]
            for seq in (1, 3, 5):
                for field in FIELDS:
                    async with db.begin() as conn:
                        old = (
                            await conn.execute(
                                select(audit_log.c[field]).where(audit_log.c.seq == seq)
                            )
                        ).scalar_one()
                        await conn.execute(
                            update(audit_log)
                            .where(audit_log.c.seq == seq)
                            .values({field: _changed(old)})
                        )
                    bad = await log.verify()
                    assert not bad.ok, (seq, field)
                    assert any(f"entry {seq}" in p or "head" in p for p in bad.problems)
                    async with db.begin() as conn:
                        await conn.execute(
                            update(audit_log).where(audit_log.c.seq == seq).values({field: old})
                        )
                    assert (await log.verify()).ok
        finally:
            await db.close()

    asyncio.run(go())


def test_deleted_and_appended_rows_are_found(db_url: str) -> None:
    async def go() -> None:
        db = Database(db_url)
        try:
            log = await _fill(db, 4)
            async with db.begin() as conn:
                row = dict(
                    (await conn.execute(select(audit_log).where(audit_log.c.seq == 2)))
                    .mappings()
                    .one()
                )
                await conn.execute(delete(audit_log).where(audit_log.c.seq == 2))
            assert "entries 2..2 are missing" in (await log.verify()).problems
            async with db.begin() as conn:
                await conn.execute(insert(audit_log).values(**row))
            assert (await log.verify()).ok
            # dropping the newest entry (the head still names it)
            async with db.begin() as conn:
                await conn.execute(delete(audit_log).where(audit_log.c.seq == 4))
            assert not (await log.verify()).ok
            # ... and forging the head too is found against the recorded head hash only
            async with db.begin() as conn:
                last = (
                    await conn.execute(select(audit_log.c.hash).where(audit_log.c.seq == 3))
                ).scalar_one()
                await conn.execute(update(audit_head).values(seq=3, hash=last))
            forged = await log.verify()
            assert forged.ok and forged.head == last
        finally:
            await db.close()

    asyncio.run(go())


def test_cli_audit_verify(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    cfg = tmp_path / "andon.yaml"
    cfg.write_text(f"database_url: {url}\n", encoding="utf-8")

    async def fill() -> None:
        db = Database(url)
        await _fill(db, 3)
        await db.close()

    asyncio.run(fill())
    runner = CliRunner()
    good = runner.invoke(cli, ["audit", "verify", "--config", str(cfg)])
    assert good.exit_code == 0 and "3 entries" in good.output

    async def tamper() -> None:
        db = Database(url)
        async with db.begin() as conn:
            await conn.execute(update(audit_log).where(audit_log.c.seq == 2).values(result="ok!"))
        await db.close()

    asyncio.run(tamper())
    bad = runner.invoke(cli, ["audit", "verify", "--config", str(cfg)])
    assert bad.exit_code == 1
    assert "entry 2: content does not match its hash" in bad.output
