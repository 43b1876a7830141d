"""API routes: text values (registered on the shared declared router of ``andon.api.routes``).

``GET /sites/{site_id}/telemetry/values``: the text values (strings, enumeration labels,
events: an MTConnect ``Execution`` of ``ACTIVE``, a program name; decision 0202) of the
site's signals in ``[start, end)``, as columns like ``telemetry/range``: ``value`` the text
exactly as the device sent it, ``code`` an enumeration's numeric code where the protocol
gave one (``null`` otherwise), ``quality`` 0 good, 1 uncertain, 2 bad. Numeric samples stay
on ``telemetry/range``; a signal may have both. With ``last=true``, each signal's last text
value in the range instead (its newest: what ``telemetry/last`` is for numbers; ``start``
defaults to 0 and ``end`` to now, so ``?signal=...&last=true`` is "the value now"). Text values
change rarely, and the newest one is found among the signal's stored values in the range.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import Query
from pydantic import BaseModel

from andon.api.deps import Ctx
from andon.api.params import _MAX_ROWS, P, _floats, _model, _range, api
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
    start: Annotated[
        int | None, Query(ge=0, lt=2**62, description="µs since the epoch, UTC; 0 with last")
    ] = None,
    end: Annotated[
        int | None,
        Query(ge=0, lt=2**62, description="µs since the epoch, UTC, exclusive; now with last"),
    ] = None,
    last: Annotated[
        bool, Query(description="each signal's newest value in the range only")
    ] = False,
) -> TextSeriesOut:
    """Text values ``[start, end)``, at most 100 000 rows (``truncated`` says when cut); with
    ``last``, each signal's newest value there (a signal with none has no row)."""
    if last:
        start = 0 if start is None else start
        end = ctx.services.clock() + 1 if end is None else end
    elif start is None or end is None:
        raise Invalid("start and end are required (or last=true)")
    _range(start, end)
    model = await _model(ctx)
    bad = [s for s in signal if s not in model.signal_set]
    if bad:
        raise Invalid(f"not signals of this site: {', '.join(bad[:3])}")
    t = await ctx.services.store.read_text(ctx.tenant, signal, start, end)
    if last and len(t):  # rows come ordered by signal, then time: each signal's final row
        t = t.take(np.flatnonzero(np.append(t.index[1:] != t.index[:-1], True)))
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
