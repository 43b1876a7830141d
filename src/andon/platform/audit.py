"""The audit log: append-only and hash-chained.

Each entry's ``hash`` is SHA-256 over the previous entry's hash and the entry's own fields
(canonical JSON), and entries are numbered without gaps from 1. A one-row ``audit_head``
table holds the last number and hash. ``verify`` recomputes the chain: an edited, inserted,
reordered or deleted row, or a truncated tail, breaks it. Someone able to rewrite the whole
table *and* the head can forge a consistent chain; record the head hash that ``andon audit
verify`` prints somewhere else to detect that too.

>>> h = entry_hash(GENESIS, {"seq": 1, "action": "login"})
>>> len(h), h == entry_hash(GENESIS, {"action": "login", "seq": 1})
(64, True)
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from andon.model.types import Micros
from andon.platform.database import Database
from andon.platform.tables import audit_head, audit_log

__all__ = ["GENESIS", "AuditEntry", "AuditLog", "VerifyResult", "entry_hash"]

GENESIS = "0" * 64
_FIELDS = ("seq", "ts", "tenant_id", "actor", "source", "action", "object", "result", "detail")


def entry_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    body = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


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

    def __init__(self, db: Database, clock: Callable[[], Micros]) -> None:
        self.db = db
        self.clock = clock
        self._lock = asyncio.Lock()

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
            digest = entry_hash(prev, row)
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

    async def verify(self, chunk: int = 5000) -> VerifyResult:
        """Walk the whole chain; every problem found is listed (the first is the one to read)."""
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
                    if entry_hash(r["prev_hash"], fields) != r["hash"]:
                        out.problems.append(f"entry {seq}: content does not match its hash")
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
        out.head = prev
        return out
