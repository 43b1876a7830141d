"""Bodies of the app catalog, installation and findings-inbox endpoints (``routes_apps``).
Request models forbid unknown fields and carry no tenant, owner or actor: those come from
the caller's credentials (decision 0601)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from andon.api.schemas import AggregatesOut

__all__ = [
    "CatalogAppOut",
    "CatalogVersionOut",
    "EvidenceOut",
    "FeedbackIn",
    "FeedbackOut",
    "FindingOut",
    "FindingsOut",
    "InstallIn",
    "InstallationOut",
    "InstanceLogOut",
    "InstanceStatusOut",
    "SettingsIn",
    "UpgradeIn",
    "WorkOrderOut",
]

_Perm = Annotated[str, Field(min_length=1, max_length=40)]
_Id = Annotated[str, Field(min_length=1, max_length=64)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CatalogAppOut(BaseModel):
    """An app of the catalog: its newest version's manifest (name in en and zh-TW, vendor,
    category, losses, inputs, the permissions it asks for, settings schema, finding types,
    the vendor's claims, price) and the figures its test run measured."""

    app_id: str
    version: str = Field(description="the newest published version")
    name: str
    vendor: str
    category: str
    published_at: int
    versions: list[str] = Field(description="every published version, newest first")
    manifest: dict[str, Any]
    figures: dict[str, Any] = Field(
        description="what the test run measured, beside the manifest's `claims`"
    )


class CatalogVersionOut(BaseModel):
    """One published version with its whole test report."""

    app_id: str
    version: str
    name: str
    vendor: str
    category: str
    published_at: int
    published_by: str
    passed: bool
    digest: str = Field(description="SHA-256 of the app's files as tested and published")
    manifest: dict[str, Any]
    figures: dict[str, Any]
    report: dict[str, Any]
    versions: list[str]


class InstallIn(_In):
    app_id: _Id
    version: Annotated[str, Field(max_length=64)] | None = Field(
        None, description="default: the newest published version"
    )
    site_ids: Annotated[list[_Id], Field(min_length=1, max_length=500)]
    accepted_permissions: Annotated[list[_Perm], Field(max_length=20)] = Field(
        description="exactly the permissions the manifest asks for, as shown to the admin"
    )
    settings: dict[str, Any] = Field(default_factory=dict)


class SettingsIn(_In):
    settings: dict[str, Any]


class UpgradeIn(_In):
    version: Annotated[str, Field(min_length=1, max_length=64)]
    accepted_permissions: Annotated[list[_Perm], Field(max_length=20)]
    settings: dict[str, Any] | None = Field(None, description="default: the current settings")


class InstanceStatusOut(BaseModel):
    """The running instance as its supervisor sees it; ``state`` is ``not running`` when no
    supervisor runs it (an API without one, or after uninstall)."""

    state: str
    restarts: int = 0
    last_exit_reason: str | None = None
    cpu_s: float = 0.0
    rss_mb: float = 0.0
    processes: int = 0
    sandboxed: bool | None = None


class InstallationOut(BaseModel):
    id: str
    app_id: str
    version: str
    name: str = Field(description="the app's name (en)")
    site_ids: list[str]
    settings: dict[str, Any]
    permissions: list[str]
    state: str = Field(description="installed | uninstalled")
    previous_version: str | None
    installed_by: str
    installed_at: int
    updated_at: int
    uninstalled_at: int | None
    status: InstanceStatusOut


class InstanceLogOut(BaseModel):
    at: float = Field(description="seconds since the epoch")
    stream: str
    level: str
    text: str


class FeedbackOut(BaseModel):
    id: str
    verdict: str
    comment: str
    actor: str
    at: int


class FindingOut(BaseModel):
    id: str
    site_id: str
    installation_id: str
    app_id: str
    type: str
    machine: str | None
    start_us: int
    end_us: int
    score: float
    title: str
    explanation: str
    signals: list[str]
    evidence: dict[str, Any]
    created_at: int
    verdict: str | None = Field(description="the latest verdict; null: not answered yet")
    feedback: list[FeedbackOut] | None = Field(
        None, description="every verdict, oldest first (detail only)"
    )


class FindingsOut(BaseModel):
    findings: list[FindingOut] = Field(description="newest first")
    truncated: bool


class FeedbackIn(_In):
    verdict: Literal["confirmed", "rejected"]
    comment: Annotated[str, Field(max_length=2000)] = ""


class EvidenceOut(BaseModel):
    """The finding's signals over its window (with a margin either side), as per-bucket
    aggregates; ``unknown`` lists signals the site's model no longer has."""

    finding_id: str
    start_us: int
    end_us: int
    from_us: int
    to_us: int
    bucket_us: int
    series: AggregatesOut
    unknown: list[str]


class WorkOrderOut(BaseModel):
    """A work order an app proposed (``workorders.propose``); people decide on it."""

    id: str
    site_id: str
    installation_id: str
    machine: str
    title: str
    detail: str
    due_us: int | None
    created_at: int
