"""The platform's business logic: tenants, sites, users, role grants, API keys and logins.

Every method that touches tenant data takes the tenant as its first argument and puts it in
the ``WHERE`` clause; a row of another tenant is indistinguishable from a missing row
(``NotFound``). Callers (the API) decide who the tenant is from the authenticated principal,
never from the request body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from andon.model.loader import ModelError, parse_plant
from andon.model.plant import Plant
from andon.model.process import die_with_parent
from andon.model.types import Micros
from andon.platform.audit import AuditLog
from andon.platform.database import Database
from andon.platform.permissions import (
    KEY_KIND_PERMISSIONS,
    ROLE_PERMISSIONS,
    TENANT_ONLY,
    KeyKind,
    Permission,
    Role,
)
from andon.platform.secretfiles import AUDIT_KEY, JWT_KEY, SecretFileError, read_or_create
from andon.platform.security import (
    TokenError,
    decode_access_token,
    hash_password,
    issue_access_token,
    new_api_key,
    new_id,
    new_token,
    parse_api_key,
    sha256_hex,
    verify_password,
    verify_secret,
)
from andon.platform.sessions import RefreshRefused, ResetToken, Sessions
from andon.platform.tables import (
    api_keys,
    refresh_tokens,
    role_grants,
    secrets,
    sites,
    tenants,
    users,
)
from andon.platform.throttle import LoginThrottle

__all__ = [
    "HASH_SLOTS",
    "PARSE_SLOTS",
    "Conflict",
    "Invalid",
    "LoginFailed",
    "NotFound",
    "Platform",
    "PlatformError",
    "Principal",
    "TokenPair",
]


PARSE_SLOTS = 1
"""Plant models parsed at once, in a process of their own: pure-Python YAML holds the GIL,
so a thread would still slow every request while a hostile upload is refused."""
HASH_SLOTS = max(1, (os.cpu_count() or 2) // 2)
"""Password hashes computed at once, in threads of their own (argon2 releases the GIL but
keeps a core busy): at most half the cores, so a login flood leaves the rest to the API."""
_POOLS: dict[str, ThreadPoolExecutor] = {}


def _pool(name: str, workers: int) -> ThreadPoolExecutor:
    """A process-wide pool of its own for CPU-heavy work: not the event loop's default
    executor, which serves the store's queries (a flood must not queue them behind it)."""
    pool = _POOLS.get(name)
    if pool is None:
        pool = _POOLS[name] = ThreadPoolExecutor(
            workers, thread_name_prefix=f"andon-{name}", initializer=_in_background
        )
    return pool


def _in_background() -> None:
    """Run the calling thread (and the threads it starts: argon2's lanes) at a lower CPU
    priority than the event loop, so an attacker's work waits for the API's, not the
    reverse. Where the OS refuses, the work runs as before."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


_PARSER: list[ProcessPoolExecutor] = []


def _parser() -> ProcessPoolExecutor:
    """The process that parses plant models (spawned on first use, replaced if it dies)."""
    if not _PARSER:
        ctx = multiprocessing.get_context("spawn")  # never fork a process with threads
        _PARSER.append(
            ProcessPoolExecutor(
                PARSE_SLOTS, mp_context=ctx, initializer=_parser_init, initargs=(os.getpid(),)
            )
        )
    return _PARSER[0]


def _parser_init(parent: int) -> None:
    """The parser process dies with the service (even by ``kill -9``, as the twin's job
    workers do) and runs at the background priority. The pool is process-wide and may be
    started from any thread (an app's event loop, a test client's portal), so only the
    parent-pid watch ends it, not the signal bound to the starting thread."""
    die_with_parent(parent, with_thread=False)
    _in_background()


class PlatformError(Exception):
    """Base of the service's refusals; the API maps each subclass to one status code."""


class NotFound(PlatformError):
    """No such object in this tenant (whether it exists elsewhere is not said)."""


class Conflict(PlatformError):
    """The object already exists."""


class Invalid(PlatformError):
    """The request is well-formed but not acceptable (bad model, permission not grantable)."""


class LoginFailed(PlatformError):
    """Wrong credentials, locked or disabled account, or an invalid refresh token; the
    reason and the account (when known) are for the audit log, not for the caller."""

    def __init__(self, reason: str, tenant_id: str | None = None, user_id: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.tenant_id = tenant_id
        self.user_id = user_id


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user (by role grants) or an API key (by its scopes)."""

    kind: Literal["user", "edge", "app"]
    id: str
    tenant_id: str
    tenant_wide: frozenset[Permission] = frozenset()
    per_site: Mapping[str, frozenset[Permission]] = field(default_factory=dict)

    @property
    def actor(self) -> str:
        return f"{'user' if self.kind == 'user' else 'key'}:{self.id}"

    def can(self, perm: Permission, site_id: str | None = None) -> bool:
        """Tenant-level permissions need a tenant-wide grant; site-level ones a grant at the
        site or tenant-wide."""
        if perm in self.tenant_wide:
            return True
        if site_id is None or perm in TENANT_ONLY:
            return False
        return perm in self.per_site.get(site_id, frozenset())

    def can_somewhere(self, perm: Permission) -> bool:
        if perm in self.tenant_wide:
            return True
        return perm not in TENANT_ONLY and any(perm in p for p in self.per_site.values())

    def sites_with(self, perm: Permission) -> set[str] | None:
        """Sites where ``perm`` holds; ``None`` means every site of the tenant."""
        if perm in self.tenant_wide:
            return None
        return {s for s, p in self.per_site.items() if perm in p}


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_at: Micros


def _json_list(values: Iterable[str]) -> str:
    return json.dumps(sorted(set(values)))


def _site_out(r: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "id": r["id"],
        "key": r["key"],
        "name": r["name"],
        "created_at": int(r["created_at"]),
        "updated_at": int(r["updated_at"]),
    }


def _key_out(r: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "id": r["id"],
        "name": r["name"],
        "kind": r["kind"],
        "permissions": json.loads(r["permissions"]),
        "site_ids": json.loads(r["site_ids"]),
        "created_by": r["created_by"],
        "created_at": int(r["created_at"]),
        "expires_at": int(r["expires_at"]),
        "revoked_at": None if r["revoked_at"] is None else int(r["revoked_at"]),
    }


class Platform:
    """Service layer over the metadata database. ``clock`` returns ``Micros`` (injectable)."""

    def __init__(
        self,
        db: Database,
        clock: Callable[[], Micros],
        *,
        secret_key: str | None = None,
        secrets_dir: Path | None = None,
        session_check_s: float = 0.5,
        reset_ttl_s: int = 3600,
        access_ttl_s: int = 900,
        refresh_ttl_s: int = 14 * 86_400,
        max_failed_logins: int = 5,
        lockout_s: int = 900,
        max_failed_logins_per_source: int = 50,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.audit = AuditLog(db, clock)
        self._secret = secret_key
        self.access_ttl_s = access_ttl_s
        self.refresh_ttl_s = refresh_ttl_s
        self.max_failed_logins = max_failed_logins
        self.lockout_s = lockout_s
        self._plants: dict[tuple[str, str, int], Plant] = {}
        self.sessions = Sessions(
            db, clock, refresh_ttl_s=refresh_ttl_s, cache_s=session_check_s, reset_ttl_s=reset_ttl_s
        )
        self.secrets_dir = secrets_dir
        self.throttle = LoginThrottle(
            max_failed_logins,
            max_failed_logins_per_source,
            lockout_s,
            monotonic or (lambda: self.clock() / 1e6),
        )
        """Failed logins per (account, source) and per source (no account lockout)."""

    async def start(self) -> None:
        """Migrate to the newest schema and load (or create once) the token-signing secret:
        from ``secrets_dir`` (files, see ``secretfiles``) when given, else from the
        database (the embedded tests' mode); with ``secrets_dir`` the audit log is keyed."""
        await self.db.migrate()
        if self.secrets_dir is not None:
            await self._load_secret_files(self.secrets_dir)
        elif self._secret is None:
            async with self.db.begin() as conn:
                row = (
                    await conn.execute(select(secrets.c.value).where(secrets.c.name == "jwt"))
                ).one_or_none()
                if row is None:
                    self._secret = new_token()
                    try:
                        async with conn.begin_nested():
                            await conn.execute(
                                insert(secrets).values(name="jwt", value=self._secret)
                            )
                    except IntegrityError:
                        row = (
                            await conn.execute(
                                select(secrets.c.value).where(secrets.c.name == "jwt")
                            )
                        ).one()
                if row is not None:
                    self._secret = str(row.value)

    async def _load_secret_files(self, folder: Path) -> None:
        """The JWT key from ``jwt.key`` (an install that kept it in the database has it
        moved there once: written to the file, deleted from the table) and the audit MAC key
        from ``audit.key`` (entries from the head at its creation on are keyed)."""
        async with self.db.begin() as conn:
            row = (
                await conn.execute(select(secrets.c.value).where(secrets.c.name == "jwt"))
            ).one_or_none()
        old = None if row is None else str(row.value)
        if self._secret is None:
            self._secret, _ = read_or_create(folder / JWT_KEY, lambda: old or new_token())
        if old is not None:
            async with self.db.begin() as conn:
                await conn.execute(delete(secrets).where(secrets.c.name == "jwt"))
        seq, _ = await self.audit.head()
        text, _ = read_or_create(
            folder / AUDIT_KEY,
            lambda: json.dumps({"key": new_token(), "keyed_from": seq + 1}),
        )
        try:
            got = json.loads(text)
            key, keyed_from = str(got["key"]).encode(), int(got["keyed_from"])
        except (ValueError, KeyError, TypeError) as exc:
            raise SecretFileError(f"{folder / AUDIT_KEY}: not an audit key file: {exc}") from exc
        self.audit.use_key(key, keyed_from)

    @property
    def secret(self) -> str:
        if self._secret is None:
            raise RuntimeError("Platform.start() has not run")
        return self._secret

    # ---- tenants -------------------------------------------------------------------------

    async def create_tenant(self, tenant_id: str, name: str) -> dict[str, Any]:
        now = self.clock()
        try:
            async with self.db.begin() as conn:
                await conn.execute(insert(tenants).values(id=tenant_id, name=name, created_at=now))
        except IntegrityError as exc:
            raise Conflict(f"tenant {tenant_id!r} already exists") from exc
        return {"id": tenant_id, "name": name, "created_at": now}

    async def get_tenant(self, tenant_id: str) -> dict[str, Any]:
        async with self.db.begin() as conn:
            r = (
                (await conn.execute(select(tenants).where(tenants.c.id == tenant_id)))
                .mappings()
                .one_or_none()
            )
        if r is None:
            raise NotFound("tenant")
        return {"id": r["id"], "name": r["name"], "created_at": int(r["created_at"])}

    async def list_tenants(self) -> list[dict[str, Any]]:
        async with self.db.begin() as conn:
            rows = (await conn.execute(select(tenants).order_by(tenants.c.id))).mappings().all()
        return [
            {"id": r["id"], "name": r["name"], "created_at": int(r["created_at"])} for r in rows
        ]

    # ---- users and grants ----------------------------------------------------------------

    async def create_user(
        self,
        tenant_id: str,
        email: str,
        password: str,
        roles: Iterable[tuple[Role, str | None]] = (),
    ) -> dict[str, Any]:
        """A user of ``tenant_id`` with role grants ``(role, site id or None for all sites)``."""
        uid = new_id()
        now = self.clock()
        digest = await self.hash_password(password)
        try:
            async with self.db.begin() as conn:
                await conn.execute(
                    insert(users).values(
                        id=uid,
                        tenant_id=tenant_id,
                        email=email.lower(),
                        password_hash=digest,
                        failed_logins=0,
                        locked_until=0,
                        disabled=False,
                        created_at=now,
                    )
                )
        except IntegrityError as exc:
            # only this tenant's users are compared: another tenant's are none of its business
            raise Conflict("a user with this email already exists in this tenant") from exc
        for role, site in roles:
            await self.grant_role(tenant_id, uid, role, site)
        return await self.get_user(tenant_id, uid)

    async def get_user(self, tenant_id: str, user_id: str) -> dict[str, Any]:
        async with self.db.begin() as conn:
            r = (
                (
                    await conn.execute(
                        select(users).where(users.c.tenant_id == tenant_id, users.c.id == user_id)
                    )
                )
                .mappings()
                .one_or_none()
            )
            if r is None:
                raise NotFound("user")
            grants = (
                (
                    await conn.execute(
                        select(role_grants).where(
                            role_grants.c.tenant_id == tenant_id, role_grants.c.user_id == user_id
                        )
                    )
                )
                .mappings()
                .all()
            )
        return {
            "id": r["id"],
            "email": r["email"],
            "disabled": bool(r["disabled"]),
            "locked_until": int(r["locked_until"]),
            "created_at": int(r["created_at"]),
            "grants": [
                {"id": g["id"], "role": g["role"], "site_id": g["site_id"]}
                for g in sorted(grants, key=lambda g: (g["role"], g["site_id"] or ""))
            ],
        }

    async def user_emails(self, tenant_id: str, user_ids: Iterable[str]) -> dict[str, str]:
        """Email by user id, for the given ids of the tenant that still exist (one query)."""
        wanted = sorted(set(user_ids))
        if not wanted:
            return {}
        async with self.db.begin() as conn:
            rows = await conn.execute(
                select(users.c.id, users.c.email).where(
                    users.c.tenant_id == tenant_id, users.c.id.in_(wanted)
                )
            )
            return {str(r.id): str(r.email) for r in rows}

    async def list_users(self, tenant_id: str) -> list[dict[str, Any]]:
        async with self.db.begin() as conn:
            ids = (
                (
                    await conn.execute(
                        select(users.c.id)
                        .where(users.c.tenant_id == tenant_id)
                        .order_by(users.c.email)
                    )
                )
                .scalars()
                .all()
            )
        return [await self.get_user(tenant_id, str(i)) for i in ids]

    async def delete_user(self, tenant_id: str, user_id: str) -> None:
        async with self.db.begin() as conn:
            await conn.execute(
                delete(role_grants).where(
                    role_grants.c.tenant_id == tenant_id, role_grants.c.user_id == user_id
                )
            )
            await conn.execute(
                delete(refresh_tokens).where(
                    refresh_tokens.c.user_id.in_(
                        select(users.c.id).where(
                            users.c.tenant_id == tenant_id, users.c.id == user_id
                        )
                    )
                )
            )
            res = await conn.execute(
                delete(users).where(users.c.tenant_id == tenant_id, users.c.id == user_id)
            )
            if res.rowcount != 1:
                raise NotFound("user")
        self.sessions.bump()

    async def grant_role(
        self, tenant_id: str, user_id: str, role: Role, site_id: str | None
    ) -> dict[str, Any]:
        await self.get_user(tenant_id, user_id)
        if site_id is not None:
            await self.get_site(tenant_id, site_id)
        if role is Role.PLATFORM_ADMIN and site_id is not None:
            raise Invalid("platform-admin is not a site role")
        gid = new_id()
        async with self.db.begin() as conn:
            await conn.execute(
                insert(role_grants).values(
                    id=gid, tenant_id=tenant_id, user_id=user_id, site_id=site_id, role=role.value
                )
            )
        return {"id": gid, "role": role.value, "site_id": site_id}

    async def revoke_grant(self, tenant_id: str, user_id: str, grant_id: str) -> None:
        async with self.db.begin() as conn:
            res = await conn.execute(
                delete(role_grants).where(
                    role_grants.c.tenant_id == tenant_id,
                    role_grants.c.user_id == user_id,
                    role_grants.c.id == grant_id,
                )
            )
        if res.rowcount != 1:
            raise NotFound("grant")
        self.sessions.bump()

    # ---- sites and their asset model -----------------------------------------------------

    async def _parse(self, tenant_id: str, model_yaml: str) -> Plant:
        """Parse in a worker thread (the event loop keeps answering), at most
        ``PARSE_SLOTS`` at once, so a flood of uploads cannot take every thread."""
        loop = asyncio.get_running_loop()
        try:
            plant = await loop.run_in_executor(_parser(), parse_plant, model_yaml, "model.yaml")
        except BrokenProcessPool:
            _PARSER.clear()
            raise Invalid("model.yaml: the parser stopped on this file") from None
        except ModelError as exc:
            raise Invalid(str(exc)) from exc
        except yaml.YAMLError as exc:  # parse_plant lets the reader's errors through
            raise Invalid(f"model.yaml: not valid YAML: {exc}") from exc
        # the tenant is the caller's, whatever the file says
        return plant.model_copy(update={"tenant": tenant_id})

    async def create_site(self, tenant_id: str, model_yaml: str) -> dict[str, Any]:
        plant = await self._parse(tenant_id, model_yaml)
        sid = new_id()
        now = self.clock()
        try:
            async with self.db.begin() as conn:
                await conn.execute(
                    insert(sites).values(
                        id=sid,
                        tenant_id=tenant_id,
                        key=plant.site.id,
                        name=plant.site.name or plant.site.id,
                        model_yaml=model_yaml,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError as exc:
            raise Conflict(f"site {plant.site.id!r} already exists in this tenant") from exc
        return await self.get_site(tenant_id, sid)

    async def _site_row(self, tenant_id: str, site_id: str) -> Mapping[Any, Any]:
        async with self.db.begin() as conn:
            r = (
                (
                    await conn.execute(
                        select(sites).where(sites.c.tenant_id == tenant_id, sites.c.id == site_id)
                    )
                )
                .mappings()
                .one_or_none()
            )
        if r is None:
            raise NotFound("site")
        return r

    async def get_site(self, tenant_id: str, site_id: str) -> dict[str, Any]:
        return _site_out(await self._site_row(tenant_id, site_id))

    async def site_model(self, tenant_id: str, site_id: str) -> tuple[str, Plant]:
        """The stored YAML and the parsed plant (cached by site and version)."""
        r = await self._site_row(tenant_id, site_id)
        key = (tenant_id, site_id, int(r["updated_at"]))
        plant = self._plants.get(key)
        if plant is None:
            plant = await self._parse(tenant_id, str(r["model_yaml"]))
            self._plants = {k: v for k, v in self._plants.items() if k[:2] != key[:2]}
            self._plants[key] = plant
        return str(r["model_yaml"]), plant

    async def list_sites(
        self, tenant_id: str, only: set[str] | None = None, key: str | None = None
    ) -> list[dict[str, Any]]:
        q = select(sites).where(sites.c.tenant_id == tenant_id)
        if only is not None:
            q = q.where(sites.c.id.in_(sorted(only)))
        if key is not None:
            q = q.where(sites.c.key == key)
        async with self.db.begin() as conn:
            rows = (await conn.execute(q.order_by(sites.c.key))).mappings().all()
        return [_site_out(r) for r in rows]

    async def update_site_model(
        self, tenant_id: str, site_id: str, model_yaml: str
    ) -> dict[str, Any]:
        old = await self._site_row(tenant_id, site_id)
        plant = await self._parse(tenant_id, model_yaml)
        if plant.site.id != old["key"]:
            raise Invalid(
                f"the model describes site {plant.site.id!r}, this is site {old['key']!r}"
            )
        now = max(self.clock(), int(old["updated_at"]) + 1)
        async with self.db.begin() as conn:
            await conn.execute(
                update(sites)
                .where(sites.c.tenant_id == tenant_id, sites.c.id == site_id)
                .values(
                    model_yaml=model_yaml, name=plant.site.name or plant.site.id, updated_at=now
                )
            )
        return await self.get_site(tenant_id, site_id)

    async def delete_site(self, tenant_id: str, site_id: str) -> None:
        await self._site_row(tenant_id, site_id)
        async with self.db.begin() as conn:
            await conn.execute(
                delete(role_grants).where(
                    role_grants.c.tenant_id == tenant_id, role_grants.c.site_id == site_id
                )
            )
            await conn.execute(
                delete(sites).where(sites.c.tenant_id == tenant_id, sites.c.id == site_id)
            )

    # ---- API keys ------------------------------------------------------------------------

    async def create_api_key(
        self,
        tenant_id: str,
        creator: Principal,
        *,
        name: str,
        kind: KeyKind,
        permissions: Iterable[Permission],
        site_ids: Iterable[str],
        ttl_s: int,
    ) -> tuple[dict[str, Any], str]:
        """A new key and its secret, which is shown this once and stored only hashed. A key
        never holds more than its kind allows nor more than its creator holds."""
        perms = set(permissions)
        sites_ = set(site_ids)
        allowed = KEY_KIND_PERMISSIONS[kind]
        if not perms:
            raise Invalid("a key needs at least one permission")
        if not perms <= allowed:
            bad = sorted(p.value for p in perms - allowed)
            raise Invalid(f"a {kind.value} key cannot hold {', '.join(bad)}")
        for sid in sites_:
            await self.get_site(tenant_id, sid)
        for p in perms:
            ok = all(creator.can(p, s) for s in sites_) if sites_ else creator.can(p, None)
            if not ok:
                raise Invalid(f"you cannot grant {p.value} where you do not hold it")
        full, kid, secret = new_api_key()
        now = self.clock()
        row = {
            "id": kid,
            "tenant_id": tenant_id,
            "name": name,
            "kind": kind.value,
            "secret_hash": sha256_hex(secret),
            "permissions": _json_list(p.value for p in perms),
            "site_ids": _json_list(sites_),
            "created_by": creator.actor,
            "created_at": now,
            "expires_at": now + ttl_s * 1_000_000,
            "revoked_at": None,
        }
        async with self.db.begin() as conn:
            await conn.execute(insert(api_keys).values(**row))
        return _key_out(row), full

    async def get_api_key(self, tenant_id: str, key_id: str) -> dict[str, Any]:
        async with self.db.begin() as conn:
            r = (
                (
                    await conn.execute(
                        select(api_keys).where(
                            api_keys.c.tenant_id == tenant_id, api_keys.c.id == key_id
                        )
                    )
                )
                .mappings()
                .one_or_none()
            )
        if r is None:
            raise NotFound("api key")
        return _key_out(r)

    async def list_api_keys(
        self, tenant_id: str, kind: KeyKind | None = None
    ) -> list[dict[str, Any]]:
        q = select(api_keys).where(api_keys.c.tenant_id == tenant_id)
        if kind is not None:
            q = q.where(api_keys.c.kind == kind.value)
        async with self.db.begin() as conn:
            rows = (await conn.execute(q.order_by(api_keys.c.created_at))).mappings().all()
        return [_key_out(r) for r in rows]

    async def revoke_api_key(self, tenant_id: str, key_id: str) -> dict[str, Any]:
        key = await self.get_api_key(tenant_id, key_id)
        if key["revoked_at"] is None:
            async with self.db.begin() as conn:
                await conn.execute(
                    update(api_keys)
                    .where(api_keys.c.tenant_id == tenant_id, api_keys.c.id == key_id)
                    .values(revoked_at=self.clock())
                )
            self.sessions.bump()
        return await self.get_api_key(tenant_id, key_id)

    async def authenticate_key(self, key: str) -> Principal | None:
        parsed = parse_api_key(key)
        if parsed is None:
            return None
        kid, secret = parsed
        async with self.db.begin() as conn:
            r = (
                (await conn.execute(select(api_keys).where(api_keys.c.id == kid)))
                .mappings()
                .one_or_none()
            )
        if r is None or not verify_secret(secret, r["secret_hash"]):
            return None
        if r["revoked_at"] is not None or self.clock() >= int(r["expires_at"]):
            return None
        perms = frozenset(Permission(p) for p in json.loads(r["permissions"]))
        site_list: list[str] = json.loads(r["site_ids"])
        kind: Literal["edge", "app"] = "edge" if r["kind"] == KeyKind.EDGE else "app"
        if not site_list:
            return Principal(kind, kid, str(r["tenant_id"]), tenant_wide=perms)
        return Principal(kind, kid, str(r["tenant_id"]), per_site=dict.fromkeys(site_list, perms))

    # ---- logins and tokens ---------------------------------------------------------------

    async def principal_for_user(self, tenant_id: str, user_id: str) -> Principal | None:
        async with self.db.begin() as conn:
            u = (
                await conn.execute(
                    select(users.c.disabled).where(
                        users.c.tenant_id == tenant_id, users.c.id == user_id
                    )
                )
            ).one_or_none()
            if u is None or u.disabled:
                return None
            grants = (
                await conn.execute(
                    select(role_grants.c.role, role_grants.c.site_id).where(
                        role_grants.c.tenant_id == tenant_id, role_grants.c.user_id == user_id
                    )
                )
            ).all()
        wide: set[Permission] = set()
        per_site: dict[str, set[Permission]] = {}
        for g in grants:
            perms = ROLE_PERMISSIONS[Role(g.role)]
            if g.site_id is None:
                wide |= perms
            else:
                per_site.setdefault(g.site_id, set()).update(perms - TENANT_ONLY)
        return Principal(
            "user",
            user_id,
            tenant_id,
            tenant_wide=frozenset(wide),
            per_site={s: frozenset(p) for s, p in per_site.items()},
        )

    async def principal_for_token(self, token: str) -> Principal | None:
        """The user of an access token whose session is still live (``None``: revoked
        session, disabled or deleted user). Raises ``TokenError`` for a bad token."""
        claims = decode_access_token(self.secret, token, self.clock())
        if claims.session_id is None:
            raise TokenError("token has no session (issued before sessions): log in again")
        if not await self.sessions.active(claims.session_id):
            return None
        return await self.principal_for_user(claims.tenant_id, claims.user_id)

    def session_of(self, token: str) -> str | None:
        """The session id an access token names (signature checked), else ``None``."""
        try:
            return decode_access_token(self.secret, token, self.clock()).session_id
        except TokenError:
            return None

    async def _issue(
        self, user_id: str, tenant_id: str, session_id: str | None = None
    ) -> TokenPair:
        """A new access and refresh token of ``session_id`` (a new session when ``None``)."""
        async with self.db.begin() as conn:
            if session_id is None:
                session_id = await self.sessions.open(conn, tenant_id, user_id)
            refresh = await self.sessions.new_refresh(conn, user_id, session_id)
        access, exp = issue_access_token(
            self.secret, user_id, tenant_id, self.clock(), self.access_ttl_s, session_id
        )
        return TokenPair(access, refresh, exp)

    async def hash_password(self, password: str) -> str:
        """argon2id in a worker thread, at most ``HASH_SLOTS`` at once: the event loop keeps
        answering while it runs, and a flood of logins cannot take every thread."""
        pool = _pool("hash", HASH_SLOTS)
        return await asyncio.get_running_loop().run_in_executor(pool, hash_password, password)

    async def verify_password(self, password: str, digest: str) -> bool:
        """``security.verify_password`` off the event loop, like ``hash_password``."""
        pool = _pool("hash", HASH_SLOTS)
        return await asyncio.get_running_loop().run_in_executor(
            pool, verify_password, password, digest
        )

    async def login(
        self, email: str, password: str, source: str = "unknown", tenant: str | None = None
    ) -> tuple[str, str, TokenPair]:
        """``(tenant, user id, tokens)``. One email may have accounts in several tenants:
        ``tenant`` (its id) picks one; without it the oldest account of that email is the
        one tried, so a tenant that adds an address another tenant already uses changes
        nothing for the older account's logins. Every attempt verifies exactly one argon2
        hash (a dummy one for an unknown, disabled or throttled account, or an unknown
        tenant), so neither the answer nor its time says whether an email exists in a tenant.
        A ``source`` that failed ``max_failed_logins`` times on this account, or
        ``max_failed_logins_per_source`` times on any, within ``lockout_s`` is throttled
        (refused even the right password) until its failures age out; other sources are not
        affected: there is no account lockout.
        Raises ``LoginFailed`` with a reason for the audit log (the caller shows one message)."""
        email = email.lower()
        q = select(users.c.id, users.c.tenant_id, users.c.password_hash, users.c.disabled)
        q = q.where(users.c.email == email)
        if tenant is not None:
            q = q.where(users.c.tenant_id == tenant.lower())
        async with self.db.begin() as conn:
            u = (
                await conn.execute(q.order_by(users.c.created_at, users.c.id).limit(1))
            ).one_or_none()
        # throttled per account (the same one however it is named), else per name tried
        account = f"user:{u.id}" if u is not None else f"{tenant or ''}/{email}"
        allowed = self.throttle.allowed(account, source)
        digest = _DUMMY_HASH
        tid = uid = None
        if u is not None:
            tid, uid = str(u.tenant_id), str(u.id)
            if allowed and not u.disabled:
                digest = str(u.password_hash)
        ok = await self.verify_password(password, digest)
        if not allowed:
            raise LoginFailed("throttled", tid, uid)
        if tid is None or uid is None or digest is _DUMMY_HASH or not ok:
            self.throttle.failed(account, source)
            why = "unknown user" if uid is None else "wrong password"
            raise LoginFailed(
                "account disabled" if uid and digest is _DUMMY_HASH else why, tid, uid
            )
        self.throttle.succeeded(account, source)
        return tid, uid, await self._issue(uid, tid)

    async def refresh(self, token: str) -> tuple[str, str, TokenPair]:
        """Exchange a refresh token for a new pair of the same session; the old one is spent
        (rotation). Reusing a spent one revokes the session (``sessions.Sessions``).
        ``LoginFailed`` names the tenant and user whenever the token identifies them."""
        try:
            tid, uid, sid = await self.sessions.take_refresh(token)
        except RefreshRefused as exc:
            raise LoginFailed(exc.reason, exc.tenant_id, exc.user_id) from None
        return tid, uid, await self._issue(uid, tid, sid)

    async def logout(self, token: str) -> tuple[str, str] | None:
        """End the refresh token's session: its access tokens stop working at once."""
        try:
            tid, uid, sid = await self.sessions.take_refresh(token)
        except RefreshRefused:
            return None
        await self.sessions.revoke("logout", session_id=sid)
        return tid, uid

    # ---- account lifecycle: disable, password change and reset -------------------------------

    async def set_user_disabled(self, tenant_id: str, user_id: str, disabled: bool) -> int:
        """Disable (every session ends at once) or enable a user; returns sessions ended."""
        async with self.db.begin() as conn:
            res = await conn.execute(
                update(users)
                .where(users.c.tenant_id == tenant_id, users.c.id == user_id)
                .values(disabled=disabled)
            )
            if res.rowcount != 1:
                raise NotFound("user")
            ended = 0
            if disabled:
                ended = await self.sessions.revoke("user disabled", user_id=user_id, conn=conn)
        self.sessions.bump()
        return ended

    async def change_password(
        self, tenant_id: str, user_id: str, current: str, new: str, keep_session: str | None
    ) -> int:
        """Set a new password after checking the current one (``LoginFailed`` if wrong);
        every other session of the user ends. Returns how many ended."""
        async with self.db.begin() as conn:
            r = (
                await conn.execute(
                    select(users.c.password_hash).where(
                        users.c.tenant_id == tenant_id, users.c.id == user_id
                    )
                )
            ).one_or_none()
        if r is None:
            raise NotFound("user")
        if not await self.verify_password(current, str(r.password_hash)):
            raise LoginFailed("wrong current password", tenant_id, user_id)
        digest = await self.hash_password(new)
        async with self.db.begin() as conn:
            await conn.execute(
                update(users)
                .where(users.c.tenant_id == tenant_id, users.c.id == user_id)
                .values(password_hash=digest)
            )
            return await self.sessions.revoke(
                "password changed", user_id=user_id, keep=keep_session, conn=conn
            )

    async def sso_login(self, tenant_id: str, email: str) -> tuple[str, TokenPair]:
        """Sign in the enabled user of ``tenant_id`` with ``email`` (vouched for by the
        single sign-on provider): ``(user id, tokens)`` of a new session."""
        async with self.db.begin() as conn:
            u = (
                await conn.execute(
                    select(users.c.id, users.c.disabled).where(
                        users.c.tenant_id == tenant_id, users.c.email == email.lower()
                    )
                )
            ).one_or_none()
        if u is None:
            raise LoginFailed("no user with this email in the sign-on tenant", tenant_id)
        if u.disabled:
            raise LoginFailed("account disabled", tenant_id, str(u.id))
        return str(u.id), await self._issue(str(u.id), tenant_id)

    async def request_reset(self, email: str, tenant: str | None = None) -> list[ResetToken]:
        """A one-time reset token for each enabled account of ``email`` (in ``tenant`` only,
        when given): one link per account, since one address may have several."""
        return await self.sessions.new_reset(email, tenant)

    async def reset_password(self, token: str, new: str) -> tuple[str, str]:
        """Spend a reset token and set the password: ``(tenant, user id)``. Every session of
        the user ends and a login lockout is lifted. ``LoginFailed`` when the token is
        unknown, used or expired."""
        digest = await self.hash_password(new)
        try:
            async with self.db.begin() as conn:
                tid, uid = await self.sessions.use_reset(token, conn)
                await conn.execute(
                    update(users)
                    .where(users.c.id == uid)
                    .values(password_hash=digest, failed_logins=0, locked_until=0)
                )
                await self.sessions.revoke("password reset", user_id=uid, conn=conn)
        except RefreshRefused as exc:
            raise LoginFailed(exc.reason, exc.tenant_id, exc.user_id) from None
        return tid, uid


_DUMMY_HASH = hash_password("andon-timing-equaliser")
