"""Request and response bodies. Request models forbid unknown fields and never contain
``tenant``, ``role`` or owner fields: those come from the authenticated caller (no mass
assignment)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict

from andon.platform.permissions import KeyKind, Permission, Role

__all__ = [
    "AggregatesOut",
    "ApiKeyCreate",
    "ApiKeyCreated",
    "ApiKeyOut",
    "AuditOut",
    "GrantCreate",
    "GrantOut",
    "IngestIn",
    "IngestOut",
    "KpiOut",
    "LastValueOut",
    "LastValuesOut",
    "LoginIn",
    "MeOut",
    "PartsIn",
    "RefreshIn",
    "SamplesIn",
    "SeriesOut",
    "SiteModelIn",
    "SiteOut",
    "StatesIn",
    "StatesOut",
    "TenantCreate",
    "TenantCreated",
    "TenantOut",
    "TokenOut",
    "UserCreate",
    "UserOut",
]

Email = Annotated[str, Field(pattern=r"^[^@\s]{1,64}@[^@\s]{1,189}$", max_length=254)]
Password = Annotated[str, Field(min_length=12, max_length=256)]
ObjectId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
Int64 = Annotated[int, Field(ge=-(2**63), lt=2**63)]
MAX_POINTS = 200_000


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TenantOut(BaseModel):
    id: str
    name: str
    created_at: int


class TenantCreate(_In):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    admin_email: Email
    admin_password: Password


class GrantOut(BaseModel):
    id: str
    role: Role
    site_id: str | None


class UserOut(BaseModel):
    id: str
    email: str
    disabled: bool
    locked_until: int
    created_at: int
    grants: list[GrantOut]


class TenantCreated(BaseModel):
    tenant: TenantOut
    admin: UserOut


class GrantCreate(_In):
    role: Role
    site_id: ObjectId | None = None


class UserCreate(_In):
    email: Email
    password: Password
    grants: Annotated[list[GrantCreate], Field(max_length=20)] = Field(
        default_factory=list,
        description="roles to grant with the user, in one step (each site must be the tenant's)",
    )


class SiteModelIn(_In):
    model_yaml: Annotated[str, Field(min_length=1, max_length=2_000_000)]


class SiteOut(BaseModel):
    id: str
    key: str
    name: str
    created_at: int
    updated_at: int
    timezone: str = Field(description="the site's IANA time zone (its shifts and days)")


class ApiKeyCreate(_In):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    kind: KeyKind
    permissions: Annotated[list[Permission], Field(min_length=1, max_length=20)]
    site_ids: Annotated[list[ObjectId], Field(max_length=100)] = []
    ttl_days: Annotated[int, Field(ge=1, le=366)] = 90


class ApiKeyOut(BaseModel):
    id: str
    name: str
    kind: KeyKind
    permissions: list[Permission]
    site_ids: list[str]
    created_by: str
    created_at: int
    expires_at: int
    revoked_at: int | None


class ApiKeyCreated(BaseModel):
    key: ApiKeyOut
    secret: str = Field(description="Shown once; only its hash is stored")


class LoginIn(_In):
    email: Annotated[str, Field(min_length=1, max_length=254)]
    password: Annotated[str, Field(min_length=1, max_length=256)]
    tenant: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")] | None = Field(
        None, description="the tenant's id, when the email has accounts in several tenants"
    )


class RefreshIn(_In):
    refresh_token: Annotated[str, Field(min_length=1, max_length=200)]


class TokenOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_at: int


class MeOut(BaseModel):
    kind: str
    id: str
    tenant_id: str
    tenant_wide: list[str]
    per_site: dict[str, list[str]]


class LastValueOut(BaseModel):
    signal: str
    ts: int
    value: float | None
    quality: int


class LastValuesOut(BaseModel):
    values: list[LastValueOut]


class SeriesOut(BaseModel):
    signals: list[str]
    index: list[int]
    ts: list[int]
    value: list[float | None]
    quality: list[int]
    truncated: bool


class AggregatesOut(BaseModel):
    signals: list[str]
    index: list[int]
    bucket: list[int]
    min: list[float | None]
    max: list[float | None]
    mean: list[float | None]
    last: list[float | None]
    count: list[int]


class StatesOut(BaseModel):
    machines: list[str]
    index: list[int]
    start: list[int]
    end: list[int]
    state: list[str]
    reason: list[str]


class KpiOut(BaseModel):
    start: int
    end: int
    machines: list[dict[str, Any]]
    lines: list[dict[str, Any]]
    """Per line: ``good_out`` (good parts of its last stations), ``planned_production_s``
    and ``throughput_per_h`` (``good_out`` per planned production hour)."""
    meters: list[dict[str, Any]]


class RangeOut(BaseModel):
    start: int
    end: int
    label: str = Field(description="`YYYY-MM-DD` (production day) or `YYYY-MM-DD shift`")


class RangesOut(BaseModel):
    at: int
    today: RangeOut = Field(description="the production day that contains `at`, up to `at`")
    shift: RangeOut = Field(description="the latest shift started by `at`, up to `at` or its end")


Names = Annotated[list[Annotated[str, Field(max_length=300)]], Field(max_length=10_000)]
Codes = Annotated[list[Annotated[int, Field(ge=0, lt=2**31)]], Field(max_length=MAX_POINTS)]
Times = Annotated[list[Int64], Field(max_length=MAX_POINTS)]


class SamplesIn(_In):
    names: Names
    index: Codes
    ts: Times
    value: Annotated[
        list[Annotated[float, Strict()] | None],
        Field(max_length=MAX_POINTS, description='numbers only: "12" and true are refused'),
    ]
    quality: Annotated[list[Annotated[int, Field(ge=0, le=255)]], Field(max_length=MAX_POINTS)]


class TextsIn(_In):
    """Text values (decision 0202): strings, enumeration labels, events; ``code`` an
    enumeration's numeric code where there is one."""

    names: Names
    index: Codes
    ts: Times
    value: Annotated[
        list[Annotated[str, Strict(), Field(max_length=16_384)]],
        Field(max_length=MAX_POINTS, description="text only: numbers are refused"),
    ]
    quality: Annotated[list[Annotated[int, Field(ge=0, le=255)]], Field(max_length=MAX_POINTS)]
    code: Annotated[
        list[Annotated[float, Strict()] | None] | None, Field(max_length=MAX_POINTS)
    ] = None


class StatesIn(_In):
    names: Names
    index: Codes
    start: Times
    end: Times
    state: Annotated[list[Annotated[int, Field(ge=0, le=255)]], Field(max_length=MAX_POINTS)]
    reason: Annotated[list[Annotated[str, Field(max_length=100)]], Field(max_length=MAX_POINTS)]


class PartsIn(_In):
    names: Names
    index: Codes
    ts: Times
    product: Annotated[list[Annotated[str, Field(max_length=100)]], Field(max_length=MAX_POINTS)]
    good: Annotated[list[Annotated[int, Field(ge=0, lt=2**31)]], Field(max_length=MAX_POINTS)]
    scrap: Annotated[list[Annotated[int, Field(ge=0, lt=2**31)]], Field(max_length=MAX_POINTS)]


class IngestIn(_In):
    samples: SamplesIn | None = None
    texts: TextsIn | None = None
    states: StatesIn | None = None
    parts: PartsIn | None = None
    open_states: StatesIn | None = Field(
        None,
        description="states still going on: start = when each began, end = when last "
        "confirmed (they show on the live board until the closed interval arrives)",
    )


class IngestOut(BaseModel):
    accepted: int
    duplicates: int
    """Points not stored because their ``(signal, ts)`` already was (the first write wins)."""
    rejected: dict[str, int]
    conflicts: int = 0
    """Part of ``duplicates`` with another value or quality than the stored point: not a
    resend but two readings for one instant (decision 0312)."""
    states: int
    parts: int
    open_states: int = 0
    texts: int = 0
    """Text values stored (decision 0202); their refusals are in ``rejected``."""
    texts_duplicate: int = 0


class AuditOut(BaseModel):
    seq: int
    ts: int
    actor: str
    source: str
    action: str
    object: str
    result: str
    detail: dict[str, Any]
    hash: str
