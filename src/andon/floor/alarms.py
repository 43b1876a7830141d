"""Signal alarms in the spirit of ISA-18.2: limits, rate of change, deadband, on- and
off-delay, evaluated over a signal's samples, vectorised with NumPy.

Each (signal, kind) is a small state machine with two stages:

1. the *condition* with hysteresis: a ``high`` condition sets when a sample is above the
   limit and resets only when one is below ``limit - deadband`` (``low``: mirrored; ``rate``:
   the change per minute over ``rate_window_s`` above ``rate_per_min``, reset at or below);
2. the *alarm*: raised once the condition held for ``on_delay_s`` and cleared once it stayed
   reset for ``off_delay_s``; a shorter blip changes nothing.

``evaluate`` takes one columnar ``SampleBatch`` of many signals (one store read) and, per
(signal, kind), the ``Carry`` left by the previous pass, and returns the raises and clears
(``Transition``) with their time, value and limit, plus the new carries. Samples at or before
a carry's ``last_ts`` are context only (for the rate), so passes may overlap.

>>> import numpy as np
>>> lim = SignalAlarms(high=10.0, deadband=1.0, on_delay_s=20)
>>> ts = np.arange(8, dtype=np.int64) * 10_000_000      # a sample every 10 s
>>> v = np.array([5, 11, 12, 11, 9.5, 8.5, 12, 5], dtype=np.float64)
>>> got, carry = track_signal(ts, v, lim, {}, start=-1)
>>> [(t.kind, t.raised, t.at // 1_000_000) for t in got]
[('high', True, 30), ('high', False, 50)]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from andon.model.plant import SignalAlarms
from andon.model.types import Micros, Quality, SampleBatch

__all__ = [
    "KINDS",
    "SEVERITY",
    "Carry",
    "Transition",
    "evaluate",
    "kinds_of",
    "track_signal",
]

KINDS = ("high_high", "high", "low", "low_low", "rate")
"""Alarm kinds, as they appear in the ``kind`` of an alert."""
SEVERITY = {
    "high_high": "critical",
    "low_low": "critical",
    "high": "warning",
    "low": "warning",
    "rate": "warning",
}

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Carry:
    """What one pass leaves for the next about one (signal, kind)."""

    condition: bool
    """The condition (after the deadband) at the newest sample."""
    condition_since: Micros
    active: bool
    """The alarm (after the delays) is raised."""
    last_ts: Micros
    """The newest sample evaluated; later passes look only at samples after it."""


@dataclass(frozen=True, slots=True)
class Transition:
    """An alarm raised (``raised``) or cleared at ``at``; ``value`` is the sample (or the
    rate per minute) that decided it and ``limit`` the limit it was compared with."""

    signal: str
    kind: str
    at: Micros
    raised: bool
    value: float
    limit: float


def kinds_of(alarms: SignalAlarms) -> list[str]:
    """The kinds a signal's limits define (none when ``enabled`` is false)."""
    if not alarms.enabled:
        return []
    have = {
        "high_high": alarms.high_high,
        "high": alarms.high,
        "low": alarms.low,
        "low_low": alarms.low_low,
        "rate": alarms.rate_per_min,
    }
    return [k for k in KINDS if have[k] is not None]


def _rate_per_min(ts: I64, v: F64, window_us: int) -> F64:
    """Per sample, the change per minute since the newest sample at least ``window_us``
    before it (0 while there is none: a shorter baseline would turn noise into rate)."""
    j = np.searchsorted(ts, ts - window_us, side="right") - 1
    out = np.zeros(len(ts), dtype=np.float64)
    ok = j >= 0
    jj = j[ok]
    out[ok] = (v[ok] - v[jj]) / (ts[ok] - ts[jj]).astype(np.float64) * 60e6
    return out


def _condition(kind: str, a: SignalAlarms, v: F64, rate: F64) -> tuple[B, B, F64, float]:
    """(set, reset, the compared values, the limit) of one kind."""
    if kind == "rate":
        lim = float(a.rate_per_min or 0.0)
        r = np.abs(rate)
        return r > lim, r <= lim, rate, lim
    lim = float(getattr(a, kind))
    if kind.startswith("high"):
        return v > lim, v < lim - a.deadband, v, lim
    return v < lim, v > lim + a.deadband, v, lim


def _track(
    signal: str,
    kind: str,
    ts: I64,
    seen: F64,
    set_: B,
    reset: B,
    limit: float,
    carry: Carry,
    on_us: int,
    off_us: int,
) -> tuple[list[Transition], Carry]:
    """The raises and clears of one (signal, kind) over samples newer than the carry."""
    n = len(ts)
    if n == 0:
        return [], carry
    # the usual case, nothing changes: clear and nothing sets, or raised and nothing resets
    if carry.condition == carry.active and not (reset if carry.active else set_).any():
        return [], Carry(carry.condition, carry.condition_since, carry.active, int(ts[-1]))
    # 1. hysteresis: the condition is what the latest set or reset sample said
    pos = np.where(set_ | reset, np.arange(n), -1)
    last = np.maximum.accumulate(pos)
    cond = np.where(last >= 0, set_[np.maximum(last, 0)], carry.condition)
    # 2. runs of equal condition, the first continuing the carried one
    cc = np.concatenate(([carry.condition], cond))
    tt = np.concatenate(([carry.condition_since], ts))
    starts = np.flatnonzero(np.concatenate(([True], cc[1:] != cc[:-1])))
    t0 = tt[starts]
    t1 = np.append(tt[starts[1:]], tt[-1])
    val = cc[starts]
    delay = np.where(val, on_us, off_us)
    held = (t1 - t0) >= delay
    # 3. the alarm follows the runs that held long enough (a handful per pass)
    active = carry.active
    out: list[Transition] = []
    for k in np.flatnonzero(held).tolist():
        if bool(val[k]) == active:
            continue
        active = bool(val[k])
        at = int(t0[k] + delay[k])
        i = min(max(int(np.searchsorted(ts, at, side="left")), 0), n - 1)
        out.append(Transition(signal, kind, at, active, float(seen[i]), limit))
    return out, Carry(bool(cond[-1]), int(t0[-1]), active, int(ts[-1]))


def track_signal(
    ts: I64,
    v: F64,
    alarms: SignalAlarms,
    carries: Mapping[str, Carry],
    start: Micros,
    signal: str = "",
) -> tuple[list[Transition], dict[str, Carry]]:
    """Every kind of one signal over its samples (sorted by time), in time order. A kind
    without a carry starts clear at ``start``; samples at or before a carry's ``last_ts``
    are only context."""
    rate = (
        _rate_per_min(ts, v, int(alarms.rate_window_s * 1e6))
        if alarms.rate_per_min is not None
        else v
    )
    on_us, off_us = int(alarms.on_delay_s * 1e6), int(alarms.off_delay_s * 1e6)
    out: list[Transition] = []
    after: dict[str, Carry] = {}
    for kind in kinds_of(alarms):
        carry = carries.get(kind) or Carry(False, start, False, start)
        new = ts > carry.last_ts
        set_, reset, seen, limit = _condition(kind, alarms, v[new], rate[new])
        got, after[kind] = _track(
            signal, kind, ts[new], seen, set_, reset, limit, carry, on_us, off_us
        )
        out += got
    out.sort(key=lambda t: (t.at, KINDS.index(t.kind)))
    return out, after


def _rate_batch(idx: npt.NDArray[np.int32], ts: I64, v: F64, window_us: I64) -> F64:
    """``_rate_per_min`` for every sample of a batch sorted by (signal, time) at once, each
    signal with its own window (``window_us`` per signal): the signals' time axes are laid
    end to end with gaps wider than any window, so one ``searchsorted`` stays in each."""
    if not len(ts):
        return np.zeros(0, dtype=np.float64)
    t0 = int(ts.min())
    stride = int(ts.max()) - t0 + int(window_us.max(initial=0)) + 1
    key = idx.astype(np.int64) * stride + (ts - t0)
    w = window_us[idx]
    j = np.searchsorted(key, key - w, side="right") - 1
    out = np.zeros(len(ts), dtype=np.float64)
    ok = (j >= 0) & (w > 0)
    ok[ok] = idx[j[ok]] == idx[ok]  # the baseline sample is the same signal's
    jj = j[ok]
    out[ok] = (v[ok] - v[jj]) / (ts[ok] - ts[jj]).astype(np.float64) * 60e6
    return out


def evaluate(
    batch: SampleBatch,
    alarms: Mapping[str, SignalAlarms],
    carries: Mapping[tuple[str, str], Carry],
    start: Micros,
) -> tuple[list[Transition], dict[tuple[str, str], Carry]]:
    """Every alarm of every signal in ``alarms`` over one batch (bad-quality samples are
    ignored), in time order; the new carries of every (signal, kind) evaluated.

    The same as ``track_signal`` per signal, but each kind's condition is computed for the
    whole batch in a few NumPy operations, and only the (signal, kind) pairs whose alarm
    may change in this pass (something crossed, or an on/off-delay is running) are tracked
    one by one; the rest only move their ``last_ts``."""
    keep = batch.quality != Quality.BAD
    idx, ts, v = batch.index[keep], batch.ts[keep], batch.value[keep]
    order = np.lexsort((ts, idx))
    idx, ts, v = idx[order], ts[order], v[order]
    n_sig = len(batch.names)
    bounds = np.searchsorted(idx, np.arange(n_sig + 1))
    col = {name: i for i, name in enumerate(batch.names)}
    last_ts = (
        np.where(bounds[1:] > bounds[:-1], ts[np.maximum(bounds[1:] - 1, 0)], -1)
        if len(ts)
        else np.full(n_sig, -1, dtype=np.int64)
    )
    window = np.zeros(n_sig, dtype=np.int64)
    for signal, a in alarms.items():
        if signal in col and a.rate_per_min is not None:
            window[col[signal]] = int(a.rate_window_s * 1e6)
    rate = _rate_batch(idx, ts, v, window) if window.any() else v
    out: list[Transition] = []
    after: dict[tuple[str, str], Carry] = {}
    for kind in KINDS:
        mine = [(s, a) for s, a in alarms.items() if kind in kinds_of(a)]
        if not mine:
            continue
        lim = np.full(n_sig, np.nan)
        db = np.zeros(n_sig)
        since = np.full(n_sig, np.iinfo(np.int64).max, dtype=np.int64)
        active = np.zeros(n_sig, dtype=np.bool_)
        got: dict[str, Carry] = {}
        for signal, a in mine:
            c = carries.get((signal, kind)) or Carry(False, start, False, start)
            got[signal] = c
            i = col.get(signal)
            if i is None:
                continue
            lim[i] = a.rate_per_min if kind == "rate" else getattr(a, kind)
            db[i] = 0.0 if kind == "rate" else a.deadband
            since[i] = c.last_ts
            active[i] = c.active
        new = ts > since[idx]
        lo_i, db_i = lim[idx], db[idx]
        if kind == "rate":
            seen = rate
            r = np.abs(rate)
            set_, reset = new & (r > lo_i), new & (r <= lo_i)
        elif kind.startswith("high"):
            seen = v
            set_, reset = new & (v > lo_i), new & (v < lo_i - db_i)
        else:
            seen = v
            set_, reset = new & (v < lo_i), new & (v > lo_i + db_i)
        # per signal: does anything in this pass act against its current state?
        acts = np.bincount(idx[np.where(active[idx], reset, set_)], minlength=n_sig) > 0
        for signal, a in mine:
            c = got[signal]
            i = col.get(signal)
            if i is None or last_ts[i] <= c.last_ts:
                after[(signal, kind)] = c  # no new sample
            elif c.condition == c.active and not acts[i]:
                after[(signal, kind)] = Carry(
                    c.condition, c.condition_since, c.active, int(last_ts[i])
                )
            else:
                lo, hi = int(bounds[i]), int(bounds[i + 1])
                sel = slice(lo, hi)
                m = new[sel]
                on_us, off_us = int(a.on_delay_s * 1e6), int(a.off_delay_s * 1e6)
                tr, after[(signal, kind)] = _track(
                    signal,
                    kind,
                    ts[sel][m],
                    seen[sel][m],
                    set_[sel][m],
                    reset[sel][m],
                    float(lim[i]),
                    c,
                    on_us,
                    off_us,
                )
                out += tr
    out.sort(key=lambda t: (t.at, t.signal, KINDS.index(t.kind)))
    return out, after
