"""The audit log: append-only and hash-chained.

Each entry's ``hash`` is SHA-256 over the previous entry's hash and the entry's own fields
(canonical JSON), and entries are numbered without gaps from 1. A one-row ``audit_head``
table holds the last number and hash. ``verify`` recomputes the chain: an edited, inserted,
reordered or deleted row, or a truncated tail, breaks it.

Keyed: with a key (``audit.key``, a 0600 file outside the database: ``secretfiles``) every
entry from ``keyed_from`` on is an HMAC-SHA256 instead of a plain hash, so someone with only
the database cannot recompute a consistent chain after editing, appending or re-hashing it.
Anchored: ``export_head`` appends the head (seq and MAC) to a file the operator names
(``security.audit_anchor_file``, somewhere the database's owner cannot rewrite); ``verify``
checks every anchored entry is still there with the same MAC, which catches the removal of
the newest rows together with the head.

>>> h = entry_hash(GENESIS, {"seq": 1, "action": "login"})
>>> len(h), h == entry_hash(GENESIS, {"action": "login", "seq": 1})
(64, True)
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from andon.model.types import Micros
from andon.platform.database import Database
from andon.platform.tables import audit_head, audit_log

__all__ = [
    "GENESIS",
    "AuditEntry",
    "AuditLog",
    "VerifyResult",
    "entry_hash",
    "entry_mac",
    "read_anchors",
]

GENESIS = "0" * 64
_FIELDS = ("seq", "ts", "tenant_id", "actor", "source", "action", "object", "result", "detail")


def entry_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    body = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def entry_mac(key: bytes, prev_hash: str, fields: dict[str, Any]) -> str:
    """The keyed form of :func:`entry_hash` (HMAC-SHA256 over the same bytes)."""
    body = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hmac.new(key, (prev_hash + body).encode(), hashlib.sha256).hexdigest()


def read_anchors(path: Path) -> list[tuple[int, str]]:
    """The ``(seq, mac)`` heads exported to ``path``, oldest first (missing file: none)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    out: list[tuple[int, str]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            out.append((int(rec["seq"]), str(rec["hash"])))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{n}: not an audit anchor line: {exc}") from None
    return out


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    ts: Micros
    tenant_id: str | None
    actor: str
    source: str
    action: str
    object: str
    result: str
    detail: dict[str, Any]
    hash: str


@dataclass
class VerifyResult:
    rows: int
    head: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class _Conflict(Exception):
    pass


class AuditLog:
    """Appends entries one at a time (in-process lock, optimistic check of the head row
    across processes) and verifies the chain."""

    def __init__(
        self,
        db: Database,
        clock: Callable[[], Micros],
        *,
        key: bytes | None = None,
        keyed_from: int = 1,
    ) -> None:
        self.db = db
        self.clock = clock
        self._lock = asyncio.Lock()
        self.key = key
        self.keyed_from = keyed_from

    def use_key(self, key: bytes, keyed_from: int) -> None:
        """MAC entries from ``keyed_from`` on with ``key`` (earlier ones stay plain hashes)."""
        self.key, self.keyed_from = key, keyed_from

    def _digest(self, seq: int, prev: str, fields: dict[str, Any]) -> str:
        if self.key is not None and seq >= self.keyed_from:
            return entry_mac(self.key, prev, fields)
        return entry_hash(prev, fields)

    async def head(self) -> tuple[int, str]:
        async with self.db.begin() as conn:
            row = (
                await conn.execute(
                    select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
                )
            ).one_or_none()
        return (int(row.seq), str(row.hash)) if row else (0, GENESIS)

    async def export_head(self, path: Path) -> tuple[int, str] | None:
        """Append the head to the anchor file (created 0600) unless it is already the last
        line there; returns what was appended."""
        seq, digest = await self.head()
        anchors = await asyncio.to_thread(read_anchors, path)
        if seq == 0 or (anchors and anchors[-1][0] == seq):
            return None
        line = json.dumps({"seq": seq, "hash": digest, "ts": self.clock()}) + "\n"

        def append() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)

        await asyncio.to_thread(append)
        return seq, digest

    async def record(
        self,
        *,
        tenant_id: str | None,
        actor: str,
        source: str,
        action: str,
        obj: str,
        result: str,
        detail: dict[str, Any] | None = None,
    ) -> int:
        """Append one entry in its own transaction (so a denial is kept even when the request
        fails); returns its sequence number."""
        fields: dict[str, Any] = {
            "tenant_id": tenant_id,
            "actor": actor[:200],
            "source": source[:100],
            "action": action[:100],
            "object": obj[:300],
            "result": result[:32],
            "detail": json.dumps(detail or {}, sort_keys=True, separators=(",", ":")),
        }
        async with self._lock:
            for _ in range(50):
                try:
                    return await self._append(fields)
                except (_Conflict, IntegrityError):
                    continue
        raise RuntimeError("audit log: could not append after 50 attempts")

    async def _append(self, fields: dict[str, Any]) -> int:
        async with self.db.begin() as conn:
            head = (
                await conn.execute(
                    select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
                )
            ).one_or_none()
            seq, prev = (int(head.seq), str(head.hash)) if head else (0, GENESIS)
            row = {"seq": seq + 1, "ts": self.clock(), **fields}
            digest = self._digest(seq + 1, prev, row)
            await conn.execute(insert(audit_log).values(**row, prev_hash=prev, hash=digest))
            if head is None:
                await conn.execute(insert(audit_head).values(id=1, seq=seq + 1, hash=digest))
            else:
                res = await conn.execute(
                    update(audit_head)
                    .where(audit_head.c.id == 1, audit_head.c.seq == seq)
                    .values(seq=seq + 1, hash=digest)
                )
                if res.rowcount != 1:
                    raise _Conflict
            return seq + 1

    async def query(
        self,
        tenant_id: str,
        *,
        since: Micros | None = None,
        until: Micros | None = None,
        action: str | None = None,
        actor: str | None = None,
        result: str | None = None,
        after_seq: int = 0,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """A tenant's entries, oldest first (tenant scope is not optional)."""
        q = select(audit_log).where(audit_log.c.tenant_id == tenant_id, audit_log.c.seq > after_seq)
        if since is not None:
            q = q.where(audit_log.c.ts >= since)
        if until is not None:
            q = q.where(audit_log.c.ts < until)
        if action is not None:
            q = q.where(audit_log.c.action == action)
        if actor is not None:
            q = q.where(audit_log.c.actor == actor)
        if result is not None:
            q = q.where(audit_log.c.result == result)
        q = q.order_by(audit_log.c.seq).limit(limit)
        async with self.db.begin() as conn:
            rows = (await conn.execute(q)).mappings().all()
        return [
            AuditEntry(
                seq=int(r["seq"]),
                ts=int(r["ts"]),
                tenant_id=r["tenant_id"],
                actor=r["actor"],
                source=r["source"],
                action=r["action"],
                object=r["object"],
                result=r["result"],
                detail=json.loads(r["detail"]),
                hash=r["hash"],
            )
            for r in rows
        ]

    async def verify(self, chunk: int = 5000, anchor_file: Path | None = None) -> VerifyResult:
        """Walk the whole chain; every problem found is listed (the first is the one to read).
        With ``anchor_file``, every exported head must still be in the chain unchanged."""
        anchors = dict(read_anchors(anchor_file)) if anchor_file is not None else {}
        seen: dict[int, str] = {}
        prev = GENESIS
        expected = 1
        out = VerifyResult(rows=0, head=GENESIS)
        async with self.db.begin() as conn:
            while True:
                rows = (
                    (
                        await conn.execute(
                            select(audit_log)
                            .where(audit_log.c.seq >= expected)
                            .order_by(audit_log.c.seq)
                            .limit(chunk)
                        )
                    )
                    .mappings()
                    .all()
                )
                if not rows:
                    break
                for r in rows:
                    seq = int(r["seq"])
                    if seq != expected:
                        out.problems.append(f"entries {expected}..{seq - 1} are missing")
                    if r["prev_hash"] != prev:
                        out.problems.append(f"entry {seq}: link to the previous entry is broken")
                    fields = {k: r[k] for k in _FIELDS}
                    if self._digest(seq, r["prev_hash"], fields) != r["hash"]:
                        out.problems.append(f"entry {seq}: content does not match its hash")
                    if seq in anchors:
                        seen[seq] = str(r["hash"])
                    prev = r["hash"]
                    expected = seq + 1
                    out.rows += 1
            head = (await conn.execute(select(audit_head.c.seq, audit_head.c.hash))).one_or_none()
        last = expected - 1
        if head is None:
            if last:
                out.problems.append("the chain head record is missing")
        else:
            if int(head.seq) != last:
                out.problems.append(
                    f"the head records {int(head.seq)} entries but the chain ends at {last}"
                )
            if head.hash != prev:
                out.problems.append("the head hash does not match the last entry")
        for seq, digest in sorted(anchors.items()):
            if seq not in seen:
                out.problems.append(
                    f"entry {seq} was exported to the anchor file but is gone from the log "
                    "(newest entries removed?)"
                )
            elif seen[seq] != digest:
                out.problems.append(f"entry {seq} differs from its exported anchor")
        out.head = prev
        return out
