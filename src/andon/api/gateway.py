"""The ingest gateway as ``andon serve`` runs it: edge keys are the platform's API keys, sites
are the tenant's sites with their plant models, and the MQTT receiver connects to the broker
of the settings. Built in the app's lifespan (``andon.api.app``)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from sqlalchemy import select

from andon.api.deps import Services
from andon.ingest.gateway import EdgeIdentity, IngestGateway, KeyCheck, Refusal, SiteRef
from andon.ingest.mqtt import MqttReceiver, ReceiverConfig
from andon.platform.config import Settings
from andon.platform.database import Database
from andon.platform.permissions import KeyKind, Permission
from andon.platform.security import parse_api_key, verify_secret
from andon.platform.tables import api_keys
from andon.wire.net import tls_context

__all__ = ["PlatformKeys", "PlatformSites", "build_gateway", "build_receiver"]


class PlatformKeys:
    """Edge keys checked against the platform's ``api_keys`` table: the secret's hash, not
    revoked, not expired, an edge key holding ``ingest:write``."""

    def __init__(self, db: Database, clock: Callable[[], int]) -> None:
        self.db = db
        self.clock = clock

    async def check(self, key: str) -> KeyCheck:
        parsed = parse_api_key(key)
        if parsed is None:
            return KeyCheck(None, "not_a_platform_key")
        kid, secret = parsed
        async with self.db.begin() as conn:
            r = (
                (await conn.execute(select(api_keys).where(api_keys.c.id == kid)))
                .mappings()
                .one_or_none()
            )
        if r is None:
            return KeyCheck(None, "unknown_key", key_id=kid)
        if not verify_secret(secret, r["secret_hash"]):
            return KeyCheck(None, "bad_secret", key_id=kid)
        tenant = str(r["tenant_id"])
        if r["revoked_at"] is not None:
            return KeyCheck(None, "revoked_key", True, kid, tenant)
        if self.clock() >= int(r["expires_at"]):
            return KeyCheck(None, "expired_key", True, kid, tenant)
        perms = set(json.loads(r["permissions"]))
        if r["kind"] != KeyKind.EDGE.value or Permission.INGEST_WRITE.value not in perms:
            return KeyCheck(None, "not_an_edge_key", True, kid, tenant)
        sites: list[str] = json.loads(r["site_ids"])
        identity = EdgeIdentity(kid, tenant, frozenset(sites) if sites else None)
        return KeyCheck(identity, key_id=kid)


class PlatformSites:
    """A tenant's site by its plant key, its model's signals and machines registered in the
    app's ingestor (``Services.model``); answers are reused for ``ttl_s``."""

    def __init__(
        self, services: Services, ttl_s: float, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.services = services
        self.ttl_s = ttl_s
        self._monotonic = monotonic
        self._cache: dict[tuple[str, str], tuple[float, SiteRef | None]] = {}

    async def by_key(self, tenant: str, site_key: str) -> SiteRef | None:
        now = self._monotonic()
        hit = self._cache.get((tenant, site_key))
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        found = await self.services.platform.list_sites(tenant, key=site_key)
        ref = None
        if found:
            site = found[0]
            await self.services.model(tenant, site)
            ref = SiteRef(str(site["id"]), site_key)
        if len(self._cache) >= 10_000:
            self._cache.clear()
        self._cache[(tenant, site_key)] = (now, ref)
        return ref


def build_gateway(services: Services) -> IngestGateway:
    """The app's gateway over its ingestor, the platform's keys and sites; frames refused
    over MQTT from a key whose secret the sender showed are written to the audit log, as
    the API's own refusals are, and MQTT frames count against the tenant's ingest rate limit
    (``limits.ingest_points_per_s``) as HTTPS ingest does."""
    s = services.settings.ingest
    keys = PlatformKeys(services.platform.db, services.clock)
    gateway = IngestGateway(
        services.ingestor,
        keys,
        PlatformSites(services, s.key_cache_s),
        key_cache_s=s.key_cache_s,
        max_frame_bytes=s.max_frame_bytes,
        log_interval_s=s.log_interval_s,
    )

    async def audit(r: Refusal) -> None:
        await services.platform.audit.record(
            tenant_id=r.tenant,
            actor=f"key:{r.key_id}",
            source="mqtt",
            action="ingest.write",
            obj=f"edge:{r.edge}",
            result="denied",
            detail={"status": "refused", "why": r.reason, "points": r.points},
        )

    gateway.on_refused = audit
    gateway.admit = lambda tenant, points: services.limiter.take(tenant, "ingest", points)
    return gateway


def build_receiver(settings: Settings, gateway: IngestGateway) -> MqttReceiver | None:
    """The MQTT receiver of ``settings.broker`` (``None`` when no broker is configured)."""
    b = settings.broker
    if b is None:
        return None
    tls = None
    if b.tls:
        tls = tls_context(
            str(b.ca_file) if b.ca_file else None,
            str(b.cert_file) if b.cert_file else None,
            str(b.key_file) if b.key_file else None,
        )
    return MqttReceiver(
        gateway,
        ReceiverConfig(
            b.host,
            b.port,
            tls,
            b.username,
            b.resolved_password(),
            client_id=b.client_id,
            group=b.group,
            workers=settings.ingest.workers,
            max_group_points=settings.ingest.max_group_points,
        ),
    )
