"""What ``andon kpi --data-dir DIR --plant DIR/plant.yaml`` reads, written for a test: the
embedded telemetry store ``DIR/telemetry.duckdb`` and the plant model as YAML."""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml

from andon.model.plant import Plant
from andon.model.types import PartBatch, SampleBatch, StateBatch
from andon.store.duckdb_store import DuckDBStore

__all__ = ["write_data_dir"]


def write_data_dir(
    d: Path,
    plant: Plant,
    states: StateBatch,
    parts: PartBatch,
    samples: SampleBatch | None = None,
) -> Path:
    """Store ``plant``'s states, parts and (optionally) samples in ``d/telemetry.duckdb``
    and write ``d/plant.yaml`` (the model without its defaults); ``d``."""

    async def fill() -> None:
        store = DuckDBStore.open(d / "telemetry.duckdb")
        try:
            await store.append_states(plant.tenant, states)
            await store.append_parts(plant.tenant, parts)
            if samples is not None:
                await store.append(plant.tenant, samples)
        finally:
            await store.close()

    asyncio.run(fill())
    doc = plant.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    (d / "plant.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    return d
