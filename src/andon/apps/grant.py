"""``AppGrant``: what one installed app instance may reach (decision 0900), and the
permissions an app may ask for.

The gateway decides every request on the grant alone: the tenant's data, the granted sites,
the granted permissions. Reading permissions map onto the platform's own
(``andon.platform.permissions``) so an app is authorised by the same code as an API key
(``principal()``).

>>> from andon.platform.permissions import Permission
>>> g = AppGrant("t1", "i1", "energy_idle", "1.0.0", frozenset({"s1"}),
...              frozenset({"telemetry:read"}), {})
>>> p = g.principal()
>>> p.can(Permission.TELEMETRY_READ, "s1"), p.can(Permission.TELEMETRY_READ, "s2")
(True, False)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:  # the platform package is heavy; reading a manifest does not need it
    from andon.platform.service import Principal

__all__ = ["APP_PERMISSIONS", "PLATFORM_PERMISSION", "AppGrant"]

APP_PERMISSIONS: Final = (
    "telemetry:read",
    "states:read",
    "parts:read",
    "kpi:read",
    "live:subscribe",
    "findings:write",
    "workorders:propose",
    "feedback:read",
)
"""What a manifest may ask for (the table of decision 0900); ``sites.list``,
``machines.list``, ``state.*``, ``settings.get``, ``log`` and ``time.now`` need none."""

PLATFORM_PERMISSION: Final[dict[str, str]] = {
    "telemetry:read": "telemetry:read",
    "states:read": "state:read",
    "parts:read": "state:read",
    "kpi:read": "kpi:read",
    "live:subscribe": "telemetry:read",
}
"""The platform permission (``andon.platform.permissions.Permission``'s value) each reading
app permission is checked as, per site."""


@dataclass(frozen=True, slots=True)
class AppGrant:
    """One installation: ``tenant_id``'s ``instance_id`` of ``app_id`` at ``app_version``,
    on ``site_ids`` with ``permissions`` and its ``settings`` (already validated against
    the manifest's schema)."""

    tenant_id: str
    instance_id: str
    app_id: str
    app_version: str
    site_ids: frozenset[str]
    permissions: frozenset[str]
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.permissions) - set(APP_PERMISSIONS))
        if unknown:
            raise ValueError(
                f"app grant: unknown permission {unknown[0]!r}; "
                f"expected some of {', '.join(APP_PERMISSIONS)}"
            )
        for what in ("tenant_id", "instance_id", "app_id", "app_version"):
            if not getattr(self, what):
                raise ValueError(f"app grant: {what} is empty")

    def principal(self) -> Principal:
        """The instance as the platform's ``Principal`` (kind ``app``): on each granted
        site, the platform permissions its app permissions map to."""
        from andon.platform.permissions import Permission
        from andon.platform.service import Principal

        perms = frozenset(
            Permission(PLATFORM_PERMISSION[p]) for p in self.permissions if p in PLATFORM_PERMISSION
        )
        return Principal(
            kind="app",
            id=self.instance_id,
            tenant_id=self.tenant_id,
            per_site={s: perms for s in self.site_ids},
        )
