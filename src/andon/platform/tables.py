"""The metadata database's tables (SQLAlchemy Core). Times are ``Micros`` (int64 µs, UTC).

Every table that holds tenant data has a ``tenant_id`` column; the service layer never
queries such a table without it.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "alarm_limits",
    "alerts",
    "api_keys",
    "app_feedback",
    "app_findings",
    "app_installations",
    "app_state",
    "app_work_orders",
    "apps",
    "audit_head",
    "audit_log",
    "edge_health",
    "line_targets",
    "metadata",
    "oidc_states",
    "password_resets",
    "reason_entries",
    "refresh_tokens",
    "role_grants",
    "secrets",
    "sessions",
    "sites",
    "tenants",
    "twin_jobs",
    "users",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

tenants = Table(
    "tenants",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

sites = Table(
    "sites",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(64), ForeignKey("tenants.id"), nullable=False),
    Column("key", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("model_yaml", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("tenant_id", "key", name="uq_sites_tenant_key"),
)

users = Table(
    "users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(64), ForeignKey("tenants.id"), nullable=False),
    Column("email", String(254), nullable=False),
    Column("password_hash", String(200), nullable=False),
    Column("failed_logins", Integer, nullable=False, default=0),
    Column("locked_until", BigInteger, nullable=False, default=0),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("tenant_id", "email", name="uq_users_tenant_email"),
    Index("ix_users_tenant", "tenant_id"),
    Index("ix_users_email", "email"),
)
"""An email is unique within its tenant only (migration 0007): one address may hold an
account in several tenants, and no tenant learns of the others' (docs/security.md)."""

role_grants = Table(
    "role_grants",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(64), ForeignKey("tenants.id"), nullable=False),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("site_id", String(32), ForeignKey("sites.id", ondelete="CASCADE"), nullable=True),
    Column("role", String(32), nullable=False),
    Index("ix_role_grants_user", "user_id"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(64), ForeignKey("tenants.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("permissions", Text, nullable=False),
    Column("site_ids", Text, nullable=False),
    Column("created_by", String(100), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Index("ix_api_keys_tenant", "tenant_id"),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("token_hash", String(64), nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Column("session_id", String(32), nullable=True),
    Index("ix_refresh_tokens_session", "session_id"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(64), ForeignKey("tenants.id"), nullable=False),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Column("revoked_why", String(100), nullable=True),
    Index("ix_sessions_user", "user_id"),
)
"""One login; its refresh tokens (a rotation family) and access tokens (``sid``) end with it."""

password_resets = Table(
    "password_resets",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(64), ForeignKey("tenants.id"), nullable=False),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("used_at", BigInteger, nullable=True),
)
"""One-time password-reset links: SHA-256 of the token, single use, expiring."""

oidc_states = Table(
    "oidc_states",
    metadata,
    Column("state_hash", String(64), primary_key=True),
    Column("nonce", String(100), nullable=False),
    Column("verifier", String(100), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Index("ix_oidc_states_expires", "expires_at"),
)
"""Single sign-ons in progress (migration 0007): the SHA-256 of the ``state`` sent to the
provider, with the nonce and PKCE verifier it needs back; taken (deleted) once, by whichever
worker receives the callback, and refused after ``expires_at``."""

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ts", BigInteger, nullable=False),
    Column("tenant_id", String(64), nullable=True),
    Column("actor", String(200), nullable=False),
    Column("source", String(100), nullable=False),
    Column("action", String(100), nullable=False),
    Column("object", String(300), nullable=False),
    Column("result", String(32), nullable=False),
    Column("detail", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_log_tenant_ts", "tenant_id", "ts"),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

secrets = Table(
    "secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(200), nullable=False),
)

reason_entries = Table(
    "reason_entries",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(64), ForeignKey("tenants.id"), nullable=False),
    Column("site_id", String(32), ForeignKey("sites.id", ondelete="CASCADE"), nullable=False),
    Column("machine", String(300), nullable=False),
    Column("stop_start", BigInteger, nullable=False),
    Column("category", String(100), nullable=False),
    Column("reason", String(100), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("entered_at", BigInteger, nullable=False),
    Column("note", Text, nullable=True),
    Index("ix_reason_entries_site_stop", "tenant_id", "site_id", "stop_start", "machine"),
)
"""Operator reasons for stops, appended and never updated: per (machine, stop_start) the
latest entry is the reason, the earliest is the acknowledgement MTTA is measured to."""

alerts = Table(
    "alerts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(64), ForeignKey("tenants.id"), nullable=False),
    Column("site_id", String(32), ForeignKey("sites.id", ondelete="CASCADE"), nullable=False),
    Column("machine", String(300), nullable=True),
    Column("kind", String(32), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("message", Text, nullable=False),
    Column("opened_at", BigInteger, nullable=False),
    Column("closed_at", BigInteger, nullable=True),
    Column("acked_by", String(200), nullable=True),
    Column("acked_at", BigInteger, nullable=True),
    Column("changed_at", BigInteger, nullable=False),
    Column("open_key", String(400), nullable=True),
    Column("signal", String(400), nullable=True),
    Column("value", Float, nullable=True),
    Column("threshold", Float, nullable=True),
    Column("shelved_by", String(200), nullable=True),
    Column("shelved_at", BigInteger, nullable=True),
    Column("shelved_until", BigInteger, nullable=True),
    Column("shelve_reason", Text, nullable=True),
    UniqueConstraint("open_key", name="uq_alerts_open_key"),
    Index("ix_alerts_site_opened", "tenant_id", "site_id", "opened_at"),
    Index("ix_alerts_site_changed", "tenant_id", "site_id", "changed_at"),
)
"""``open_key`` is ``site|machine|kind`` while the alert is open and NULL once closed, so the
unique constraint allows one open alert per (site, machine, kind) and any number of closed
ones (NULLs never collide, on SQLite and PostgreSQL alike). ``changed_at`` is bumped on open,
ack and close so the live feed can ask "what changed since".

Signal alarms (migration 0003) are rows of this table too: ``signal`` is the signal path
(NULL for machine alerts) and ``open_key`` is ``site|signal|kind``; ``value`` and
``threshold`` are the evidence. Any alert can be shelved until ``shelved_until``."""

alarm_limits = Table(
    "alarm_limits",
    metadata,
    Column("tenant_id", String(64), ForeignKey("tenants.id"), primary_key=True),
    Column("site_id", String(32), ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True),
    Column("signal", String(400), primary_key=True),
    Column("config", Text, nullable=False),
    Column("updated_by", String(200), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)
"""An engineer's alarm limits for one signal (JSON ``config``), overriding the plant
model's ``alarms:`` block; one row per signal, replaced on change."""

twin_jobs = Table(
    "twin_jobs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(64), ForeignKey("tenants.id"), nullable=False),
    Column("site_id", String(32), ForeignKey("sites.id", ondelete="CASCADE"), nullable=False),
    Column("line", String(200), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("progress", Float, nullable=False),
    Column("request", Text, nullable=False),
    Column("result", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("finished_at", BigInteger, nullable=True),
    Column("owner", String(32), nullable=True),
    Column("heartbeat_at", BigInteger, nullable=True),
    Index("ix_twin_jobs_site_created", "tenant_id", "site_id", "created_at"),
)
"""Twin scenario runs; ``request`` and ``result`` are JSON text. ``owner`` is the
``andon serve`` instance running the job and ``heartbeat_at`` (wall-clock Micros) its last
sign of life: another instance marks the job interrupted only once that is stale."""

edge_health = Table(
    "edge_health",
    metadata,
    Column("tenant_id", String(64), ForeignKey("tenants.id"), primary_key=True),
    Column("site_id", String(32), ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True),
    Column("edge", String(200), primary_key=True),
    Column("reported_us", BigInteger, nullable=False),
    Column("received_us", BigInteger, nullable=False),
    Column("reporter", String(200), nullable=False),
    Column("body", Text, nullable=False),
)
"""The latest connection-health report of each edge agent (JSON ``body``), upserted."""

line_targets = Table(
    "line_targets",
    metadata,
    Column("tenant_id", String(64), ForeignKey("tenants.id"), primary_key=True),
    Column("site_id", String(32), ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True),
    Column("line", String(300), primary_key=True),
    Column("oee", Float, nullable=True),
    Column("per_hour", Float, nullable=True),
    Column("per_shift", Float, nullable=True),
    Column("updated_by", String(200), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)
"""A manager's goals for one line (migration 0004): target OEE (0–1), good output per hour
and per shift; NULL = no goal. Board devices need no table: they are API keys of kind
``board`` (see docs/decisions/0613-*)."""

apps = Table(
    "apps",
    metadata,
    Column("app_id", String(64), primary_key=True),
    Column("version", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("vendor", String(200), nullable=False),
    Column("category", String(64), nullable=False),
    Column("source_dir", Text, nullable=False),
    Column("manifest", Text, nullable=False),
    Column("report", Text, nullable=False),
    Column("figures", Text, nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("published_by", String(200), nullable=False),
    Column("published_at", BigInteger, nullable=False),
    Column("digest", String(64), nullable=False),
)
"""The app catalog (migration 0008): one row per published app version, shared by every
tenant. ``manifest``, ``report`` (the test harness's report) and ``figures`` (the claims it
measured) are JSON text; ``source_dir`` is the app's directory the supervisor runs and
``digest`` the SHA-256 of its files when published (a changed directory is not run)."""

app_installations = Table(
    "app_installations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(64), ForeignKey("tenants.id"), nullable=False),
    Column("app_id", String(64), nullable=False),
    Column("version", String(64), nullable=False),
    Column("site_ids", Text, nullable=False),
    Column("settings", Text, nullable=False),
    Column("permissions", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("previous_version", String(64), nullable=True),
    Column("previous_settings", Text, nullable=True),
    Column("previous_permissions", Text, nullable=True),
    Column("installed_by", String(200), nullable=False),
    Column("installed_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("uninstalled_at", BigInteger, nullable=True),
    Index("ix_app_installations_tenant", "tenant_id", "state"),
)
"""An app instance of one tenant on chosen sites (JSON lists ``site_ids`` and the granted
``permissions``, JSON ``settings``); ``state`` is ``installed`` or ``uninstalled`` (the row
stays, the grant is gone). ``previous_*`` is what a rollback returns to."""

app_findings = Table(
    "app_findings",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(64), ForeignKey("tenants.id"), nullable=False),
    Column("site_id", String(32), ForeignKey("sites.id", ondelete="CASCADE"), nullable=False),
    Column("installation_id", String(32), nullable=False),
    Column("app_id", String(64), nullable=False),
    Column("type", String(100), nullable=False),
    Column("machine", String(500), nullable=True),
    Column("start_us", BigInteger, nullable=False),
    Column("end_us", BigInteger, nullable=False),
    Column("score", Float, nullable=False),
    Column("title", String(300), nullable=False),
    Column("explanation", Text, nullable=False),
    Column("signals", Text, nullable=False),
    Column("evidence", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_app_findings_site_created", "tenant_id", "site_id", "created_at"),
    Index("ix_app_findings_installation", "installation_id", "created_at"),
)
"""What apps found (``andon.sdk.Finding``): ``signals`` (JSON list) are drawn as evidence
over ``start_us``..``end_us``; ``evidence`` is the app's small JSON."""

app_feedback = Table(
    "app_feedback",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(64), ForeignKey("tenants.id"), nullable=False),
    Column(
        "finding_id",
        String(32),
        ForeignKey("app_findings.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("installation_id", String(32), nullable=False),
    Column("verdict", String(16), nullable=False),
    Column("comment", Text, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("at", BigInteger, nullable=False),
    Index("ix_app_feedback_installation_at", "installation_id", "at"),
    Index("ix_app_feedback_finding", "finding_id"),
)
"""A person's verdict on a finding, ``confirmed`` or ``rejected``, with a comment;
appended, the latest one per finding stands. The app reads them back (``feedback.list``)."""

app_work_orders = Table(
    "app_work_orders",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("tenant_id", String(64), ForeignKey("tenants.id"), nullable=False),
    Column("site_id", String(32), ForeignKey("sites.id", ondelete="CASCADE"), nullable=False),
    Column("installation_id", String(32), nullable=False),
    Column("machine", String(500), nullable=False),
    Column("title", String(300), nullable=False),
    Column("detail", Text, nullable=False),
    Column("due_us", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_app_work_orders_site_created", "tenant_id", "site_id", "created_at"),
)
"""Work orders an app proposes (``workorders.propose``); people decide on them."""

app_state = Table(
    "app_state",
    metadata,
    Column("installation_id", String(32), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("tenant_id", String(64), ForeignKey("tenants.id"), nullable=False),
    Column("value", Text, nullable=False),
    Column("size", Integer, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)
"""An instance's small key/value state (JSON ``value``; the sizes add up to at most the
cap, 1 MiB per instance)."""
