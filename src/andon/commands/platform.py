"""`andon serve` and `andon audit ...`: the platform service's commands."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from fastapi import FastAPI

    from andon.api.deps import Services
    from andon.apps.catalog import SupervisedRunner
    from andon.platform.audit import VerifyResult
    from andon.platform.config import Settings

__all__ = ["platform_app", "register"]

audit_app = typer.Typer(no_args_is_help=True, help="The platform's audit log.")
broker_app = typer.Typer(
    no_args_is_help=True, help="Mosquitto files binding each edge key to its own topics."
)
admin_app = typer.Typer(no_args_is_help=True, help="Platform administrators.")
_err = Console(stderr=True)
_out = Console()

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="YAML settings file; ANDON_* environment variables override"),
]


def _fail(message: str, code: int = 2) -> None:
    _err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _settings(config: Path | None) -> Settings:
    from andon.platform.config import ConfigError, load_settings

    try:
        return load_settings(config)
    except ConfigError as exc:
        _fail(str(exc))
        raise  # pragma: no cover - _fail raises


def serve(
    config: ConfigOpt = None,
    check: Annotated[bool, typer.Option("--check", help="Validate the settings and exit")] = False,
) -> None:
    """Run the platform service (FastAPI under uvicorn, and the ingest gateway's MQTT
    receiver when `broker` is set); `--check` validates and exits."""
    settings = _settings(config)
    mqtt = _check_broker(settings)
    if check:
        live = _check_bus(settings)
        apps = _check_apps(settings)
        _out.print(
            f"[green]ok[/] {config or 'environment'}: {settings.mode} mode, "
            f"http{'s' if settings.tls.certfile else ''}://{settings.host}:{settings.port}, "
            f"{mqtt}, {live}, {apps}",
            highlight=False,
            soft_wrap=True,
        )
        return
    import uvicorn

    uvicorn.run(
        platform_app(settings),
        host=settings.host,
        port=settings.port,
        ssl_certfile=str(settings.tls.certfile) if settings.tls.certfile else None,
        ssl_keyfile=str(settings.tls.keyfile) if settings.tls.keyfile else None,
        ssl_ca_certs=str(settings.tls.ca_certs) if settings.tls.ca_certs else None,
        proxy_headers=settings.trust_proxy_headers,
        server_header=False,
        log_level="info",
        # bounded: idle keep-alive clients (TLS ones never answering the close) held it 30 s
        timeout_graceful_shutdown=settings.shutdown_grace_s,
    )


def platform_app(settings: Settings) -> FastAPI:
    """The app ``andon serve`` runs: the API (``andon.api.create_app``) and, when
    ``settings.web``, the dashboard's pages (``andon.web.mount``) next to it. Composed here,
    not in ``api``, so the API never imports the web package (``docs/layering.md``)."""
    from andon.api import create_app
    from andon.web import mount

    app = create_app(settings, app_runner=_app_runner(settings) if settings.apps.enabled else None)
    if settings.web:
        mount(app)
    return app


def _app_runner(settings: Settings) -> Callable[[Services], SupervisedRunner]:
    """What runs installed apps in ``andon serve`` (``settings.apps``): an ``AppSupervisor``
    behind the catalog's ``SupervisedRunner``. Running unsandboxed is audited at each start."""
    from andon.apps.catalog import SupervisedRunner
    from andon.apps.repository import SqlAppRepository
    from andon.apps.supervisor import AppSupervisor

    a = settings.apps

    class ServeRunner(SupervisedRunner):
        """Also waits, when it closes, for the audit entry of an unsandboxed start."""

        audit_task: asyncio.Task[int] | None = None

        async def close(self) -> None:
            if self.audit_task is not None:
                await self.audit_task
            await super().close()

    def build(svc: Services) -> SupervisedRunner:
        sup = AppSupervisor(
            allow_unsandboxed=a.allow_unsandboxed,
            poll_s=a.poll_s,
            backoff_s=a.backoff_s,
            backoff_cap_s=a.backoff_cap_s,
            crash_loop_after=a.crash_loop_after,
        )
        runner = ServeRunner(
            sup,
            platform=svc.platform,
            store=svc.store,
            bus=svc.bus,
            sink=SqlAppRepository(svc.platform.db, svc.clock),
            clock=svc.clock,
            data_root=a.data_dir.resolve(),
        )
        if a.allow_unsandboxed:
            runner.audit_task = asyncio.get_running_loop().create_task(
                svc.platform.audit.record(
                    tenant_id=None,
                    actor="operator",
                    source="settings",
                    action="apps.allow_unsandboxed",
                    obj="apps",
                    result="ok",
                    detail={"sandbox": sup.sandbox_check().reason},
                )
            )
        return runner

    return build


def _check_apps(settings: Settings) -> str:
    """Whether installed apps will run, in words (``settings.apps`` and ``check_sandbox``)."""
    a = settings.apps
    if not a.enabled:
        return "apps off (apps.enabled: false)"
    from andon.apps.sandbox import check_sandbox

    sb = check_sandbox()
    if sb.ok:
        return f"apps run sandboxed ({sb.reason}; processes capped by {sb.cgroup or 'watchdog'})"
    if a.allow_unsandboxed:
        return f"apps run UNSANDBOXED (apps.allow_unsandboxed, audited): {sb.reason}"
    return f"apps will be refused: {sb.reason} (apps.allow_unsandboxed is off)"


def _check_bus(settings: Settings) -> str:
    """The live bus, in words; for ``nats`` it connects once, and exits 2 when it cannot."""
    b = settings.bus
    if b.kind == "inprocess":
        return "live bus in process"
    import asyncio

    from andon.bus import open_bus

    async def probe() -> None:
        bus = await open_bus(b.kind, b.url)
        await bus.close()

    try:
        asyncio.run(probe())
    except (ConnectionError, ValueError) as exc:
        _fail(f"bus: {exc}")
    return f"live bus on {b.url}"


def _check_broker(settings: Settings) -> str:
    """What the MQTT side will do, in words; exits 2 when its TLS files do not load."""
    b = settings.broker
    if b is None:
        return "no MQTT uplink (no broker section: edges send over HTTPS)"
    if b.tls:
        from andon.wire.net import tls_context

        try:
            tls_context(
                str(b.ca_file) if b.ca_file else None,
                str(b.cert_file) if b.cert_file else None,
                str(b.key_file) if b.key_file else None,
            )
        except ValueError as exc:
            _fail(f"broker: {exc}")
    scheme = "mqtts" if b.tls else "mqtt"
    who = f" as {b.username}" if b.username else ""
    workers = settings.ingest.workers
    return f"MQTT uplink from {scheme}://{b.host}:{b.port}{who}, {workers} ingest workers"


@broker_app.command("acl")
def broker_acl(
    platform_user: Annotated[
        str, typer.Option(help="the broker user of andon serve (settings broker.username)")
    ] = "andon-platform",
) -> None:
    """Print a Mosquitto acl_file: each edge key may publish and read only its own topics."""
    from andon.ingest.broker import mosquitto_acl

    sys.stdout.write(mosquitto_acl(platform_user))


@broker_app.command("passwd")
def broker_passwd() -> None:
    """Read platform edge keys (one a line) on stdin; print their Mosquitto password file
    lines (user = key id, password = secret). Append them to the broker's password file."""
    from andon.ingest.broker import edge_password_line

    for n, raw in enumerate(sys.stdin, 1):
        key = raw.strip()
        if not key:
            continue
        try:
            sys.stdout.write(edge_password_line(key) + "\n")
        except ValueError as exc:
            _fail(f"stdin line {n}: {exc}")


@audit_app.command("verify")
def audit_verify(config: ConfigOpt = None) -> None:
    """Recompute the audit log's keyed chain (key: ``audit.key`` in the secrets folder) and
    check every head exported to ``security.audit_anchor_file`` is still in it; exit 1 and
    list the problems if it was altered."""
    settings = _settings(config)
    from andon.platform.database import Database
    from andon.platform.service import Platform

    async def go() -> VerifyResult:
        db = Database(settings.database_url)
        try:
            pf = Platform(
                db,
                lambda: 0,
                secret_key=settings.secret_key,
                secrets_dir=settings.security.secrets_dir,
            )
            await pf.start()
            return await pf.audit.verify(anchor_file=settings.security.audit_anchor_file)
        finally:
            await db.close()

    result = asyncio.run(go())
    if result.ok:
        _out.print(f"[green]ok[/] {result.rows} entries, head {result.head}", highlight=False)
        return
    for p in result.problems:
        _err.print(f"[bold red]tampered:[/] {p}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


@admin_app.command("create")
def admin_create(
    email: Annotated[str, typer.Argument(help="The administrator's email (login)")],
    config: ConfigOpt = None,
) -> None:
    """Create a platform administrator; the password is read from ANDON_ADMIN_PASSWORD or
    asked for."""
    settings = _settings(config)
    password = os.environ.get("ANDON_ADMIN_PASSWORD") or typer.prompt(
        "password", hide_input=True, confirmation_prompt=True
    )
    if len(password) < 12:
        _fail("the password needs at least 12 characters")
    from andon.api.deps import wall_clock
    from andon.platform import Conflict, Database, NotFound, Platform, Role

    async def go() -> str:
        db = Database(settings.database_url)
        pf = Platform(
            db,
            wall_clock,
            secret_key=settings.secret_key,
            secrets_dir=settings.security.secrets_dir,
        )
        try:
            await pf.start()
            try:
                await pf.get_tenant("platform")
            except NotFound:
                await pf.create_tenant("platform", "Platform operators")
            user = await pf.create_user("platform", email, password, [(Role.PLATFORM_ADMIN, None)])
            await pf.audit.record(
                tenant_id="platform",
                actor="cli",
                source="local",
                action="admin.create",
                obj=f"user:{user['id']}",
                result="ok",
            )
            return str(user["id"])
        finally:
            await db.close()

    try:
        uid = asyncio.run(go())
    except Conflict as exc:
        _fail(str(exc))
    _out.print(f"[green]ok[/] platform administrator {email} ({uid})", highlight=False)
    sys.stdout.flush()


def register(app: typer.Typer) -> None:
    """Add the platform's commands to the top-level ``andon`` app."""
    app.command("serve")(serve)
    app.add_typer(audit_app, name="audit")
    app.add_typer(admin_app, name="admin")
    app.add_typer(broker_app, name="broker")
