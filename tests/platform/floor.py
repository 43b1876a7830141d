"""What the floor tests (alerts, signal alarms, not scheduled) start from: the demo plant of
tenant ``t1`` and a migrated metadata database holding tenants and their sites."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from importlib.resources import files

from sqlalchemy import insert

from andon.model.loader import parse_plant
from andon.model.plant import Plant
from andon.platform import Database
from andon.platform.tables import sites, tenants

__all__ = ["demo_plant", "machine_paths", "metadata_db"]


def demo_plant() -> Plant:
    """The demo plant (``andon/sim/plants/demo.yaml``) as tenant ``t1``'s."""
    text = (files("andon.sim") / "plants" / "demo.yaml").read_text(encoding="utf-8")
    return parse_plant(text).model_copy(update={"tenant": "t1"})


def machine_paths(plant: Plant) -> list[str]:
    """Every machine's path, in model order."""
    return [plant.machine_path(a, ln, m) for a, ln, m in plant.machines()]


@asynccontextmanager
async def metadata_db(url: str, site_of: Mapping[str, str]) -> AsyncIterator[Database]:
    """The database at ``url`` migrated to head, with one tenant per key of ``site_of`` and
    its site (the value: the site id; every site's key is ``tc1``); closed afterwards."""
    db = Database(url)
    try:
        await db.migrate()
        async with db.begin() as conn:
            for t, site in site_of.items():
                await conn.execute(insert(tenants).values(id=t, name=t, created_at=0))
                await conn.execute(
                    insert(sites).values(
                        id=site,
                        tenant_id=t,
                        key="tc1",
                        name="x",
                        model_yaml="",
                        created_at=0,
                        updated_at=0,
                    )
                )
        yield db
    finally:
        await db.close()
