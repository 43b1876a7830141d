"""API routes: text values (registered on the shared declared router of ``andon.api.routes``).

``GET /sites/{site_id}/telemetry/values``: the text values (strings, enumeration labels,
events: an MTConnect ``Execution`` of ``ACTIVE``, a program name; decision 0202) of the
site's signals in ``[start, end)``, as columns like ``telemetry/range``: ``value`` the text
exactly as the device sent it, ``code`` an enumeration's numeric code where the protocol
gave one (``null`` otherwise), ``quality`` 0 good, 1 uncertain, 2 bad. Numeric samples stay
on ``telemetry/range``; a signal may have both.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from pydantic import BaseModel

from andon.api.deps import Ctx
from andon.api.params import _MAX_ROWS, End, P, Start, _floats, _model, _range, api
from andon.platform.service import Invalid

__all__ = ["TextSeriesOut"]


class TextSeriesOut(BaseModel):
    """Text values as columns; ``index`` points into ``signals``."""

    signals: list[str]
    index: list[int]
    ts: list[int]
    value: list[str]
    code: list[float | None]
    quality: list[int]
    truncated: bool


@api.route(
    "GET",
    "/sites/{site_id}/telemetry/values",
    name="telemetry.values",
    permission=P.TELEMETRY_READ,
    scope="site",
)
async def read_values(
    site_id: str,
    ctx: Ctx,
    signal: Annotated[list[str], Query(min_length=1, max_length=100)],
    start: Start,
    end: End,
) -> TextSeriesOut:
    """Text values ``[start, end)``, at most 100 000 rows (``truncated`` says when cut)."""
    _range(start, end)
    model = await _model(ctx)
    bad = [s for s in signal if s not in model.signal_set]
    if bad:
        raise Invalid(f"not signals of this site: {', '.join(bad[:3])}")
    t = await ctx.services.store.read_text(ctx.tenant, signal, start, end)
    n = min(len(t), _MAX_ROWS)
    return TextSeriesOut(
        signals=list(t.names),
        index=t.index[:n].tolist(),
        ts=t.ts[:n].tolist(),
        value=list(t.value[:n]),
        code=_floats(t.code[:n]),
        quality=t.quality[:n].tolist(),
        truncated=len(t) > n,
    )
