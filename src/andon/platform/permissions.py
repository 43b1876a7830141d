"""Permissions, roles and what each role grants: the one table authorization is built from.

Roles are granted per site (or for every site of the tenant). A role grants a fixed set of
permissions; API keys carry permissions directly, limited to what their kind may hold.

>>> Permission.SITE_WRITE in ROLE_PERMISSIONS[Role.ENGINEER]
True
>>> Permission.AUDIT_READ in ROLE_PERMISSIONS[Role.MANAGER]
False
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "KEY_KIND_PERMISSIONS",
    "ROLE_PERMISSIONS",
    "TENANT_ONLY",
    "KeyKind",
    "Permission",
    "Role",
]


class Permission(StrEnum):
    """What a principal may do. ``platform:*`` permissions are never tenant-scoped."""

    TENANT_READ = "tenant:read"
    SITE_READ = "site:read"
    SITE_WRITE = "site:write"
    TELEMETRY_READ = "telemetry:read"
    STATE_READ = "state:read"
    KPI_READ = "kpi:read"
    INGEST_WRITE = "ingest:write"
    REASON_WRITE = "reason:write"
    ALERT_ACK = "alert:ack"
    TWIN_RUN = "twin:run"
    EDGE_READ = "edge:read"
    BOARD_READ = "board:read"
    """The kiosk board and its live feed, nothing else: all a board device's key holds."""
    BOARD_MANAGE = "board:manage"
    """Register, list and revoke a site's board devices; set line targets."""
    USER_READ = "user:read"
    USER_WRITE = "user:write"
    APIKEY_READ = "apikey:read"
    APIKEY_WRITE = "apikey:write"
    AUDIT_READ = "audit:read"
    APP_MANAGE = "app:manage"
    """Install, configure, upgrade, roll back and uninstall apps; read their status and logs."""
    FINDING_REVIEW = "finding:review"
    """Confirm or reject an app's finding with a comment (the decision goes back to the app)."""
    PLATFORM_ADMIN = "platform:admin"


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ENGINEER = "engineer"
    MANAGER = "manager"
    TENANT_ADMIN = "tenant-admin"
    PLATFORM_ADMIN = "platform-admin"


class KeyKind(StrEnum):
    """``edge`` keys send data; ``app`` keys read it."""

    EDGE = "edge"
    APP = "app"
    BOARD = "board"
    """A kiosk device of one site: reads that site's board and nothing else."""


_VIEW = frozenset(
    {
        Permission.TENANT_READ,
        Permission.SITE_READ,
        Permission.TELEMETRY_READ,
        Permission.STATE_READ,
        Permission.KPI_READ,
        Permission.BOARD_READ,
    }
)

_FLOOR = frozenset({Permission.REASON_WRITE, Permission.ALERT_ACK, Permission.FINDING_REVIEW})
"""What an operator adds to a viewer: entering downtime reasons, acknowledging alerts and
confirming or rejecting apps' findings."""

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: _VIEW,
    Role.OPERATOR: _VIEW | _FLOOR,
    Role.ENGINEER: _VIEW
    | _FLOOR
    | {Permission.SITE_WRITE, Permission.TWIN_RUN, Permission.EDGE_READ},
    Role.MANAGER: _VIEW
    | _FLOOR
    | {
        Permission.SITE_WRITE,
        Permission.TWIN_RUN,
        Permission.EDGE_READ,
        Permission.USER_READ,
        Permission.BOARD_MANAGE,
    },
    Role.TENANT_ADMIN: _VIEW
    | _FLOOR
    | {
        Permission.TWIN_RUN,
        Permission.EDGE_READ,
        Permission.SITE_WRITE,
        Permission.INGEST_WRITE,
        Permission.USER_READ,
        Permission.USER_WRITE,
        Permission.APIKEY_READ,
        Permission.APIKEY_WRITE,
        Permission.AUDIT_READ,
        Permission.BOARD_MANAGE,
        Permission.APP_MANAGE,
    },
    Role.PLATFORM_ADMIN: frozenset({Permission.PLATFORM_ADMIN}),
}
"""Operators differ from viewers by entering downtime reasons and acknowledging alerts;
engineers and managers also run twin scenarios and read edge connection health; managers
(and tenant admins) register the kiosk boards of their sites and set line targets. The platform
admin runs the platform, not the tenants: it creates and lists tenants but reads no tenant's
plant data."""

KEY_KIND_PERMISSIONS: dict[KeyKind, frozenset[Permission]] = {
    KeyKind.EDGE: frozenset({Permission.INGEST_WRITE, Permission.SITE_READ}),
    KeyKind.APP: _VIEW,
    KeyKind.BOARD: frozenset({Permission.BOARD_READ}),
}

TENANT_ONLY: frozenset[Permission] = frozenset(
    {
        Permission.USER_READ,
        Permission.USER_WRITE,
        Permission.APIKEY_READ,
        Permission.APIKEY_WRITE,
        Permission.AUDIT_READ,
        Permission.APP_MANAGE,
    }
)
"""Permissions that only a tenant-wide grant (not a single-site grant) confers."""
