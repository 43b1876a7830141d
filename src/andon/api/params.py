"""What every route module shares: the declared router (``api``), the query parameter types
and the small conversions and checks the handlers use. Its own module so that the route
modules import it, never each other's helpers (no ``routes`` <-> ``routes_ops`` cycle)."""

from __future__ import annotations

import math
from typing import Annotated, Any

import numpy as np
from fastapi import Query

from andon.api.deps import Access, SiteModel, guard
from andon.api.endpoints import DeclaredRouter
from andon.kpi.ranges import today
from andon.model.plant import Plant
from andon.model.types import MachineState, Micros
from andon.platform.permissions import Permission
from andon.platform.service import Invalid

__all__ = [
    "_LABELS",
    "_MAX_ROWS",
    "End",
    "P",
    "Start",
    "_f",
    "_floats",
    "_model",
    "_range",
    "_today",
    "api",
]

api = DeclaredRouter(guard)
P = Permission
Start = Annotated[int, Query(ge=0, lt=2**62, description="µs since the epoch, UTC")]
End = Annotated[int, Query(ge=0, lt=2**62, description="µs since the epoch, UTC, exclusive")]
_MAX_ROWS = 100_000
_LABELS = [s.label for s in MachineState]


def _f(x: float) -> float | None:
    return None if math.isnan(x) or math.isinf(x) else float(x)


def _floats(a: np.ndarray[Any, Any]) -> list[float | None]:
    return [_f(v) for v in a.tolist()]


def _range(start: int, end: int) -> None:
    if end <= start:
        raise Invalid("end must be after start")


async def _model(ctx: Access) -> SiteModel:
    if ctx.site is None:
        raise RuntimeError(f"{ctx.endpoint.name} is not site-scoped")
    return await ctx.services.model(ctx.tenant, ctx.site)


def _today(plant: Plant, now: Micros) -> Micros:
    """Start of the site's production day that contains ``now`` (``andon.kpi.ranges``)."""
    return today(plant, now).start
