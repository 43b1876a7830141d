"""Kiosk boards: the devices that show a site's board, and the line targets they show.

A board device is an API key of kind ``board``: limited to one site, holding only
``board:read``, stored as a SHA-256 digest like every key, shown once, revocable, with a long
life (a TV on the wall should survive reboots and holidays without a person logging in).
Reusing the key table means authentication, expiry, revocation and the admin page's key
list need nothing new (docs/decisions/0613-board-devices-are-site-keys.md).

Line targets are a manager's goals per line: target OEE (0–1) and good output per hour or
per shift, each optional.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select

from andon.model.types import Micros
from andon.platform.database import Database
from andon.platform.permissions import KeyKind, Permission
from andon.platform.service import NotFound, Platform, Principal
from andon.platform.tables import line_targets

__all__ = [
    "DEVICE_TTL_S",
    "LineTarget",
    "TargetRecords",
    "list_devices",
    "register_device",
    "revoke_device",
]

DEVICE_TTL_S = 10 * 365 * 86_400
"""A board device's key lives ten years unless revoked."""


async def register_device(
    pf: Platform, tenant: str, site_id: str, creator: Principal, name: str, ttl_s: int
) -> tuple[dict[str, Any], str]:
    """A new board device of ``site_id`` and its credential (shown this once)."""
    return await pf.create_api_key(
        tenant,
        creator,
        name=name,
        kind=KeyKind.BOARD,
        permissions=[Permission.BOARD_READ],
        site_ids=[site_id],
        ttl_s=ttl_s,
    )


async def list_devices(pf: Platform, tenant: str, site_id: str) -> list[dict[str, Any]]:
    """The site's board devices, revoked ones included, oldest first."""
    keys = await pf.list_api_keys(tenant, KeyKind.BOARD)
    return [k for k in keys if k["site_ids"] == [site_id]]


async def revoke_device(pf: Platform, tenant: str, site_id: str, key_id: str) -> dict[str, Any]:
    """Revoke a board device of ``site_id`` (another site's device or any other key is
    ``NotFound``: this endpoint cannot be used to revoke keys the caller does not manage)."""
    key = await pf.get_api_key(tenant, key_id)
    if key["kind"] != KeyKind.BOARD.value or key["site_ids"] != [site_id]:
        raise NotFound("board device")
    return await pf.revoke_api_key(tenant, key_id)


@dataclass(frozen=True, slots=True)
class LineTarget:
    line: str
    oee: float | None
    per_hour: float | None
    per_shift: float | None
    updated_by: str
    updated_at: Micros


class TargetRecords:
    """The ``line_targets`` rows of a tenant's sites."""

    def __init__(self, db: Database, clock: Callable[[], Micros]) -> None:
        self.db = db
        self.clock = clock

    async def of_site(self, tenant: str, site_id: str) -> dict[str, LineTarget]:
        """Targets by line path."""
        q = select(line_targets).where(
            line_targets.c.tenant_id == tenant, line_targets.c.site_id == site_id
        )
        async with self.db.begin() as conn:
            rows = (await conn.execute(q)).mappings().all()
        return {
            str(r["line"]): LineTarget(
                str(r["line"]),
                r["oee"],
                r["per_hour"],
                r["per_shift"],
                str(r["updated_by"]),
                int(r["updated_at"]),
            )
            for r in rows
        }

    async def put(
        self,
        tenant: str,
        site_id: str,
        line: str,
        *,
        oee: float | None,
        per_hour: float | None,
        per_shift: float | None,
        actor: str,
    ) -> LineTarget:
        """Replace the line's targets (all three ``None`` removes them)."""
        now = self.clock()
        where = (
            line_targets.c.tenant_id == tenant,
            line_targets.c.site_id == site_id,
            line_targets.c.line == line,
        )
        async with self.db.begin() as conn:
            await conn.execute(delete(line_targets).where(*where))
            if oee is not None or per_hour is not None or per_shift is not None:
                await conn.execute(
                    insert(line_targets).values(
                        tenant_id=tenant,
                        site_id=site_id,
                        line=line,
                        oee=oee,
                        per_hour=per_hour,
                        per_shift=per_shift,
                        updated_by=actor,
                        updated_at=now,
                    )
                )
        return LineTarget(line, oee, per_hour, per_shift, actor, now)
