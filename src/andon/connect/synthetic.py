"""``synthetic``: the deterministic counting source as a connector (smoke runs, fault tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from pydantic import BaseModel, ConfigDict, Field

from andon.connect.base import Health, Manifest
from andon.connect.counting import DEFAULT_START, CounterSource
from andon.connect.registry import ConnectorType, register
from andon.model.types import SampleBatch

__all__ = ["MANIFEST", "SyntheticConfig", "SyntheticConnector"]

MANIFEST = Manifest(
    domain="synthetic",
    name="Counting source",
    protocol="none",
    requirements=(),
    iot_class="local_push",
    resumable=True,
)


class SyntheticConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    signals: list[str] = Field(min_length=1)
    batch_points: int = Field(5_000, gt=0)
    total_points: int | None = Field(None, ge=0)
    rate_points_s: float | None = Field(None, gt=0)
    start_us: int = DEFAULT_START
    period_us: int = Field(1_000, gt=0)


class SyntheticConnector:
    manifest = MANIFEST

    def __init__(self, config: SyntheticConfig) -> None:
        self.config = config
        self.name = config.name
        self.health = Health(config.name)
        self._src = CounterSource(
            config.name,
            config.signals,
            config.batch_points,
            config.total_points,
            config.rate_points_s,
            config.start_us,
            config.period_us,
        )

    async def batches(self, cursor: str | None) -> AsyncIterator[tuple[SampleBatch, str | None]]:
        async for batch, cur in self._src.batches(cursor):
            self.health.success(self.name, len(batch), 0.0)
            yield batch, cur


register(ConnectorType(MANIFEST, SyntheticConfig, SyntheticConnector))
