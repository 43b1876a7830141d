"""``andon serve`` configuration: a YAML file, overridden by ``ANDON_*`` environment variables.

Nested fields use ``__`` in variable names: ``ANDON_LIMITS__API_RPS=50``. A bad file or value
is reported as one ``ConfigError`` naming the file and the field.

>>> s = load_settings(None, env={"ANDON_DATABASE_URL": "sqlite:///m.db"})
>>> s.database_url, s.mode
('sqlite:///m.db', 'embedded')
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from andon.model.loader import ModelError, safe_load

__all__ = [
    "TLS",
    "Apps",
    "Broker",
    "Bus",
    "ConfigError",
    "Ingest",
    "Limits",
    "Monitoring",
    "Oidc",
    "Security",
    "Settings",
    "Smtp",
    "Twin",
    "load_settings",
]


class ConfigError(Exception):
    """A configuration that cannot start the service; the message says where and why."""


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Limits(_Part):
    api_rps: float = Field(20.0, ge=0, description="API requests per second per tenant; 0 = off")
    api_burst: float = Field(200.0, gt=0)
    ingest_points_per_s: float = Field(200_000.0, ge=0, description="0 = off")
    ingest_burst: float = Field(1_000_000.0, gt=0)
    auth_per_s: float = Field(
        2.0, ge=0, description="login/refresh/logout calls per second per source address"
    )
    auth_burst: float = Field(30.0, gt=0)
    principal_rps: float = Field(
        10.0, ge=0, description="API requests per second per user or key (of its tenant's); 0 = off"
    )
    principal_burst: float = Field(100.0, gt=0)
    anonymous_per_s: float = Field(
        2.0, ge=0, description="requests without valid credentials per second per source; 0 = off"
    )
    anonymous_burst: float = Field(30.0, gt=0)
    max_body_bytes: int = Field(8 * 1024 * 1024, gt=0)


class Monitoring(_Part):
    """Shop-floor monitoring: when a machine counts as offline, and when alerts open. The
    evaluator reads each site's store once per ``alert_interval_s`` (0 = off)."""

    stale_after_s: float = Field(
        300.0, gt=0, description="a machine with no sample or state for this long is offline"
    )
    alert_interval_s: float = Field(
        15.0, ge=0, le=3600, description="seconds between alert evaluations; 0 = off"
    )
    down_alert_after_s: float = Field(
        600.0, ge=0, description="a machine down this long opens a 'down' alert"
    )
    unexplained_alert_after_s: float = Field(
        900.0, ge=0, description="a stop without a reason this long after it began alerts"
    )
    unexplained_min_stop_s: float = Field(
        60.0, ge=0, description="shorter finished stops never need a reason"
    )


class Twin(_Part):
    """Twin scenario jobs (``POST /sites/{id}/twin/jobs``): limits and the price of output.
    ``per_hour`` is the contribution of an hour of the line's pacing stage (as the KPI
    engine's ``LossPrices.per_hour``); a good part is worth ``per_hour`` × its cycle time."""

    workers: int = Field(2, ge=1, le=64, description="threads running twin jobs")
    max_jobs_per_tenant: int = Field(2, ge=1, description="queued or running jobs per tenant")
    max_hours: float = Field(720.0, gt=0, description="simulated hours per replication, at most")
    max_replications: int = Field(50, ge=2, description="replications per job, at most")
    history_days: float = Field(7.0, gt=0, description="history the twin is calibrated from")
    heartbeat_s: float = Field(
        5.0,
        gt=0,
        le=300,
        description="how often andon serve stamps its running jobs; another instance on the "
        "same database marks them interrupted after 3 missed beats",
    )
    per_hour: float = Field(3000.0, ge=0)
    currency: str = Field("TWD", min_length=3, max_length=3)


class TLS(_Part):
    """Passed to uvicorn as ``ssl_certfile``/``ssl_keyfile``; HSTS is sent when set."""

    certfile: Path | None = None
    keyfile: Path | None = None
    ca_certs: Path | None = None

    @model_validator(mode="after")
    def _pair(self) -> TLS:
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("tls needs both certfile and keyfile")
        for p in (self.certfile, self.keyfile, self.ca_certs):
            if p is not None and not p.is_file():
                raise ValueError(f"file not found: {p}")
        return self


class Broker(_Part):
    """The MQTT broker edges publish their frames to, and the platform's own connection to
    it: ``andon serve`` receives the MQTT uplink through it (``andon.ingest.mqtt``)."""

    host: str = "127.0.0.1"
    port: int = Field(1883, gt=0, lt=65536)
    tls: bool = Field(False, description="verify the broker against ca_file (system store)")
    ca_file: Path | None = None
    cert_file: Path | None = Field(None, description="client certificate, with key_file")
    key_file: Path | None = None
    username: str | None = None
    password: str | None = None
    password_env: str | None = Field(None, description="environment variable with the password")
    client_id: str = Field("andon-ingest", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    group: str = Field(
        "andon-ingest",
        min_length=1,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="shared subscription group: serve processes in one group share the frames",
    )

    @model_validator(mode="after")
    def _files(self) -> Broker:
        if self.password is not None and self.password_env is not None:
            raise ValueError("broker: give at most one of password and password_env")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("broker: a client certificate needs both cert_file and key_file")
        if (self.ca_file or self.cert_file) and not self.tls:
            raise ValueError("broker: ca_file and cert_file need tls: true")
        for p in (self.ca_file, self.cert_file, self.key_file):
            if p is not None and not p.is_file():
                raise ValueError(f"broker: file not found: {p}")
        if self.password_env is not None and not os.environ.get(self.password_env):
            raise ValueError(f"broker: environment variable {self.password_env} is not set")
        return self

    def resolved_password(self) -> str | None:
        if self.password_env is not None:
            return os.environ.get(self.password_env)
        return self.password


class Ingest(_Part):
    """The ingest gateway (``andon.ingest.gateway``)."""

    workers: int = Field(2, ge=1, le=32, description="MQTT connections sharing the edges' frames")
    key_cache_s: float = Field(
        2.0, ge=0, le=60, description="an edge key's check is reused this long (revocation)"
    )
    max_group_points: int = Field(
        500_000, gt=0, description="frames stored in one write, at most this many points"
    )
    max_frame_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        description="a larger frame is refused before it is read (too_large); an edge's "
        "default largest is about 1 MiB (50,000 points)",
    )
    future_tolerance_s: float = Field(
        300.0, ge=0, description="samples stamped further ahead of the platform clock: future"
    )
    max_signals_per_tenant: int = Field(
        1_000_000, gt=0, description="the store's signal dictionary per tenant (dictionary_full)"
    )
    log_interval_s: float = Field(
        10.0, gt=0, description="refusals are logged once per key and reason this often"
    )


class Smtp(_Part):
    """The mail relay that sends password-reset links."""

    host: str = "127.0.0.1"
    port: int = Field(25, gt=0, lt=65536)
    starttls: bool = Field(False, description="upgrade the connection with STARTTLS")
    username: str | None = None
    password_env: str | None = Field(None, description="environment variable with the password")
    from_addr: str = Field("andon@localhost", min_length=3, max_length=254)
    timeout_s: float = Field(10.0, gt=0, le=120)


class Oidc(_Part):
    """Single sign-on through an OpenID Connect provider (authorization code with PKCE)."""

    issuer: str = Field(min_length=8, description="the provider's issuer URL")
    client_id: str = Field(min_length=1)
    client_secret: str | None = Field(None, description="prefer client_secret_env")
    client_secret_env: str | None = Field(None, description="environment variable with it")
    redirect_uri: str = Field(min_length=8, description="registered at the provider")
    tenant: str = Field(min_length=1, description="whose users sign in this way (by email)")
    name: str | None = Field(
        None, max_length=60, description="the provider on the login page (default: its host)"
    )

    @model_validator(mode="after")
    def _one_secret(self) -> Oidc:
        if (self.client_secret is None) == (self.client_secret_env is None):
            raise ValueError("oidc: give one of client_secret and client_secret_env")
        return self

    def resolved_secret(self) -> str:
        if self.client_secret is not None:
            return self.client_secret
        return os.environ.get(self.client_secret_env or "", "")


class Bus(_Part):
    """The live bus (``andon.bus``): ingest publishes what it stored, live feeds subscribe.
    ``inprocess`` (default) serves one process; ``nats`` lets several ``andon serve``
    processes share one bus on a NATS server (extra ``andon[bus]``)."""

    kind: Literal["inprocess", "nats"] = "inprocess"
    url: str = Field(
        "nats://127.0.0.1:4222",
        pattern=r"^(nats|tls)://[^\s]+$",
        description="the NATS server (kind nats)",
    )
    max_queue: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="messages a live feed may fall behind; beyond, its oldest are dropped "
        "and counted",
    )


class Security(_Part):
    """Secrets, sessions, audit anchoring and account recovery (docs/security.md)."""

    secrets_dir: Path | None = Field(
        None,
        description="folder of the 0600 secret files (JWT key, audit key); default: the "
        "config file's folder, or the current folder without one",
    )
    audit_anchor_file: Path | None = Field(
        None,
        description="append-only file the audit head (seq and MAC) is exported to; "
        "put it where the database's owner cannot rewrite it",
    )
    audit_anchor_interval_s: float = Field(60.0, gt=0, le=86_400)
    session_check_s: float = Field(
        0.5,
        gt=0,
        le=60,
        description="a session's revocation is re-read at most this often (another worker's "
        "revocation reaches requests within this, open live feeds within twice this)",
    )
    max_feeds_per_principal: int = Field(
        8, ge=1, le=1000, description="live feeds one user or key may hold open at once"
    )
    reset_ttl_s: int = Field(3600, ge=60, le=7 * 86_400, description="reset links expire")
    public_url: str | None = Field(
        None, description="the dashboard's address, for the links in reset mails"
    )
    smtp: Smtp | None = Field(None, description="mail relay for reset links (none: no resets)")
    oidc: Oidc | None = Field(None, description="single sign-on provider (none: passwords only)")


class Apps(_Part):
    """Installed apps (``andon.apps``, decisions 0900-0902): ``andon serve`` runs each
    instance sandboxed under bubblewrap; without bubblewrap it refuses them and says why,
    unless ``allow_unsandboxed`` (audited at every start of the service)."""

    enabled: bool = Field(False, description="run installed app instances with the service")
    data_dir: Path = Field(
        Path("andon-apps"), description="each instance's data directory lives under it"
    )
    allow_unsandboxed: bool = Field(
        False, description="run apps without bubblewrap where it cannot run (audited)"
    )
    poll_s: float = Field(
        0.5, gt=0, le=10, description="seconds between the watchdog's reads of an app's usage"
    )
    backoff_s: float = Field(1.0, gt=0, le=600, description="first pause before a restart")
    backoff_cap_s: float = Field(60.0, gt=0, le=3600, description="longest pause")
    crash_loop_after: int = Field(
        5, ge=1, le=100, description="crashes in a row after which an instance stays down"
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ANDON_", env_nested_delimiter="__", extra="forbid"
    )

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    shutdown_grace_s: int = Field(
        5,
        ge=0,
        le=300,
        description="on SIGTERM, wait at most this long for open connections and requests "
        "(an idle keep-alive client would otherwise hold the stop for 30 s)",
    )
    database_url: str = "sqlite:///andon-platform.db"
    telemetry_url: str = "duckdb://andon-telemetry.duckdb"
    secret_key: str | None = Field(None, min_length=32)
    access_token_ttl_s: int = Field(900, ge=30, le=86_400)
    refresh_token_ttl_s: int = Field(14 * 86_400, ge=300)
    max_failed_logins: int = Field(
        5, ge=1, description="failed logins per account and source address per lockout_s"
    )
    max_failed_logins_per_source: int = Field(
        50, ge=1, description="failed logins per source address (any account) per lockout_s"
    )
    lockout_s: int = Field(
        900, ge=1, description="the window of the failed-login throttle (no account is locked)"
    )
    kpi_cache_s: int = Field(
        5, ge=0, le=300, description="today's KPIs are computed once per this many seconds"
    )
    cors_origins: list[str] = Field(default_factory=list)
    web: bool = Field(True, description="serve the web dashboard at / (andon.web)")
    trust_proxy_headers: bool = Field(
        False, description="take the client's address from X-Forwarded-For (behind a proxy)"
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses or networks of the proxies that add X-Forwarded-For entries; "
        "the client is the rightmost entry not added by one (empty: trusted_proxy_hops)",
    )
    trusted_proxy_hops: int = Field(
        1, ge=1, le=16, description="proxies in front of the service, when trusted_proxies is empty"
    )
    tls_terminated_by_proxy: bool = False
    limits: Limits = Field(default_factory=Limits)
    monitoring: Monitoring = Field(default_factory=Monitoring)
    twin: Twin = Field(default_factory=Twin)
    tls: TLS = Field(default_factory=TLS)
    broker: Broker | None = Field(
        None, description="receive the edges' MQTT uplink through this broker (none: HTTPS only)"
    )
    ingest: Ingest = Field(default_factory=Ingest)
    bus: Bus = Field(default_factory=Bus)
    security: Security = Field(default_factory=Security)
    apps: Apps = Field(default_factory=Apps)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment variables override the YAML file (given as init arguments)."""
        return (env_settings, init_settings)

    @property
    def mode(self) -> Literal["embedded", "server"]:
        return "server" if self.database_url.startswith("postgres") else "embedded"

    @model_validator(mode="after")
    def _check(self) -> Settings:
        from andon.platform.database import async_url

        async_url(self.database_url)
        loopback = self.host in ("127.0.0.1", "::1", "localhost")
        if not loopback and self.tls.certfile is None and not self.tls_terminated_by_proxy:
            raise ValueError(
                "serving beyond loopback needs tls.certfile and tls.keyfile "
                "(or tls_terminated_by_proxy: true behind a TLS-terminating proxy)"
            )
        for net in self.trusted_proxies:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(f"trusted_proxies: {net!r} is not an address or network") from None
        if "*" in self.cors_origins:
            raise ValueError("cors_origins: '*' is refused; list the dashboard's origins")
        return self


def _format(exc: ValidationError, source: str) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{source}: {loc}: {err['msg']}{more}"


def load_settings(path: Path | None, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``path`` (YAML) with ``ANDON_*`` environment overrides; ``env`` adds
    variables on top of ``os.environ`` for this call only."""
    data: dict[str, Any] = {}
    source = "environment"
    if path is not None:
        source = str(path)
        try:
            loaded = safe_load(path.read_text(encoding="utf-8"), str(path))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
        except ModelError as exc:
            raise ConfigError(str(exc)) from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
        data = loaded or {}
    environ = os.environ if env is None else env
    overrides = {k: v for k, v in environ.items() if k.upper().startswith("ANDON_")}
    saved = {k: os.environ.get(k) for k in overrides}
    try:
        # pydantic-settings reads os.environ, so an explicit ``env`` is applied for the call
        if env is not None:
            os.environ.update(overrides)
        settings = Settings(**data)
        if settings.security.secrets_dir is None:
            settings.security.secrets_dir = (path.parent if path is not None else Path()).resolve()
        return settings
    except ValidationError as exc:
        raise ConfigError(_format(exc, source)) from exc
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    finally:
        if env is not None:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
