"""Secrets outside the database (0600 files) and the keyed, anchored audit chain: someone
holding only the database can neither re-hash the chain consistently nor drop its newest
entries unnoticed."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

from sqlalchemy import delete, select, update

from andon.platform import Database, Platform
from andon.platform.audit import GENESIS, entry_hash, read_anchors
from andon.platform.secretfiles import AUDIT_KEY, JWT_KEY
from andon.platform.tables import audit_head, audit_log, secrets

_FIELDS = ("seq", "ts", "tenant_id", "actor", "source", "action", "object", "result", "detail")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def _record(pf: Platform, n: int, action: str = "test.action") -> None:
    for i in range(n):
        await pf.audit.record(
            tenant_id="t", actor="user:u", source="s", action=action, obj=f"o{i}", result="ok"
        )


async def _rehash_plainly(db: Database) -> None:
    """What someone with write access to the database (and the code) can do: edit an entry
    and recompute every hash after it, and the head, with the public algorithm."""
    async with db.begin() as conn:
        await conn.execute(update(audit_log).where(audit_log.c.seq == 2).values(result="denied"))
        rows = (await conn.execute(select(audit_log).order_by(audit_log.c.seq))).mappings().all()
        prev = GENESIS
        for r in rows:
            digest = entry_hash(prev, {k: r[k] for k in _FIELDS})
            await conn.execute(
                update(audit_log)
                .where(audit_log.c.seq == r["seq"])
                .values(prev_hash=prev, hash=digest)
            )
            prev = digest
        await conn.execute(update(audit_head).values(seq=len(rows), hash=prev))


def test_jwt_secret_moves_from_the_database_to_a_0600_file(db_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "secrets"

    async def go() -> None:
        db = Database(db_url)
        try:
            legacy = Platform(db, lambda: 1)  # an install from before: the key in the table
            await legacy.start()
            old = legacy.secret
            moved = Platform(db, lambda: 1, secrets_dir=folder)
            await moved.start()
            assert moved.secret == old  # tokens issued before the upgrade stay verifiable
            assert (folder / JWT_KEY).read_text() == old
            assert _mode(folder / JWT_KEY) == 0o600
            assert _mode(folder / AUDIT_KEY) == 0o600
            async with db.begin() as conn:
                assert (await conn.execute(select(secrets.c.name))).all() == []
            again = Platform(db, lambda: 1, secrets_dir=folder)
            await again.start()
            assert again.secret == old
        finally:
            await db.close()

    asyncio.run(go())


def test_a_world_readable_secret_file_is_narrowed_to_0600(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / JWT_KEY).write_text("k" * 43)
    (folder / JWT_KEY).chmod(0o644)

    async def go() -> None:
        db = Database(f"sqlite:///{tmp_path / 'm.db'}")
        try:
            pf = Platform(db, lambda: 1, secrets_dir=folder)
            await pf.start()
            assert pf.secret == "k" * 43
        finally:
            await db.close()

    asyncio.run(go())
    assert _mode(folder / JWT_KEY) == 0o600


def test_a_chain_rehashed_from_the_database_alone_fails_verification(
    db_url: str, tmp_path: Path
) -> None:
    async def go() -> None:
        db = Database(db_url)
        try:
            pf = Platform(db, lambda: 5, secrets_dir=tmp_path)
            await pf.start()
            await _record(pf, 4)
            assert (await pf.audit.verify()).ok
            await _rehash_plainly(db)
            result = await pf.audit.verify()
            assert not result.ok
            assert "entry 1: content does not match its hash" in result.problems
        finally:
            await db.close()

    asyncio.run(go())


def test_entries_from_before_the_key_stay_valid_and_later_ones_are_keyed(
    db_url: str, tmp_path: Path
) -> None:
    async def go() -> None:
        db = Database(db_url)
        try:
            legacy = Platform(db, lambda: 5)
            await legacy.start()
            await _record(legacy, 3)
            keyed = Platform(db, lambda: 6, secrets_dir=tmp_path)
            await keyed.start()
            assert json.loads((tmp_path / AUDIT_KEY).read_text())["keyed_from"] == 4
            await _record(keyed, 2)
            assert (await keyed.audit.verify()).ok
            await _rehash_plainly(db)
            assert (
                "entry 4: content does not match its hash" in (await keyed.audit.verify()).problems
            )
        finally:
            await db.close()

    asyncio.run(go())


def test_removing_the_newest_entries_is_caught_by_the_exported_anchor(
    db_url: str, tmp_path: Path
) -> None:
    anchor = tmp_path / "anchor" / "audit-head.jsonl"

    async def go() -> None:
        db = Database(db_url)
        try:
            pf = Platform(db, lambda: 5, secrets_dir=tmp_path)
            await pf.start()
            await _record(pf, 3)
            kept = await pf.audit.head()
            assert await pf.audit.export_head(anchor) == kept
            assert await pf.audit.export_head(anchor) is None  # unchanged head: no new line
            await _record(pf, 2, "evidence")
            assert (await pf.audit.export_head(anchor))[0] == 5  # type: ignore[index]
            assert _mode(anchor) == 0o600
            assert [s for s, _ in read_anchors(anchor)] == [3, 5]
            # drop the newest two entries and roll the head back: a consistent chain again
            async with db.begin() as conn:
                await conn.execute(delete(audit_log).where(audit_log.c.seq > 3))
                await conn.execute(update(audit_head).values(seq=kept[0], hash=kept[1]))
            assert (await pf.audit.verify()).ok  # the database alone cannot tell
            result = await pf.audit.verify(anchor_file=anchor)
            assert result.problems == [
                "entry 5 was exported to the anchor file but is gone from the log "
                "(newest entries removed?)"
            ]
        finally:
            await db.close()

    asyncio.run(go())


def test_cli_verify_uses_the_key_next_to_the_config_and_the_anchor_file(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from andon.cli import app as cli

    url = f"sqlite:///{tmp_path / 'm.db'}"
    anchor = tmp_path / "worm" / "head.jsonl"
    cfg = tmp_path / "andon.yaml"
    cfg.write_text(
        f"database_url: {url}\nsecurity:\n  audit_anchor_file: {anchor}\n", encoding="utf-8"
    )

    async def fill() -> None:
        db = Database(url)
        try:
            pf = Platform(db, lambda: 5, secrets_dir=tmp_path)  # the config's folder
            await pf.start()
            await _record(pf, 4)
            await pf.audit.export_head(anchor)
            async with db.begin() as conn:  # the newest entry removed, the head rolled back
                prev = (
                    await conn.execute(select(audit_log.c.hash).where(audit_log.c.seq == 3))
                ).scalar_one()
                await conn.execute(delete(audit_log).where(audit_log.c.seq == 4))
                await conn.execute(update(audit_head).values(seq=3, hash=prev))
        finally:
            await db.close()

    asyncio.run(fill())
    assert _mode(tmp_path / AUDIT_KEY) == 0o600
    bad = CliRunner().invoke(cli, ["audit", "verify", "--config", str(cfg)])
    assert bad.exit_code == 1, bad.output
    assert "entry 4 was exported to the anchor file but is gone" in bad.output
