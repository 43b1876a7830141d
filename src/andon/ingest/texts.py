"""Text values through ingest (decision 0202): validated like samples, stored apart.

A frame's text part (``SampleBatch.text``: strings, enumeration labels, events) passes the
checks samples pass, with the reasons counted in the same ``IngestStats.rejected``:
``unknown_signal``, ``bad_timestamp``, ``future`` (with the ingestor's clock),
``bad_quality_code``, and one of its own, ``text_too_long`` (over ``MAX_TEXT_CHARS``
characters: a value is a state, a program name or a message, not a file), and
``wrong_kind``: text for a signal the model declares numeric (a number for a text signal is
refused by the sample checks, with the same reason). What passes is
stored with ``TelemetryStore.append_text``: the first write of each ``(signal, ts)`` wins, a
repeat is a duplicate, one with another value a conflict too (logged, rate-limited); the
newest stored value of each signal then goes out on the live bus (``TextsChanged``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from andon.ingest import Ingestor
from andon.model.types import Quality, TextBatch

__all__ = ["MAX_TEXT_CHARS", "TextReport", "ingest_text"]

MAX_TEXT_CHARS = 4096
"""The longest text value stored; a longer one is refused (``text_too_long``)."""

_MIN_TS = 946_684_800_000_000  # the sample bounds of ``andon.ingest``: 2000-01-01 ...
_MAX_TS = 4_102_444_800_000_000  # ... and 2100-01-01


@dataclass(frozen=True, slots=True)
class TextReport:
    """What one text write did: values stored, duplicates (conflicts included), refused
    values by reason."""

    accepted: int = 0
    duplicates: int = 0
    conflicts: int = 0
    rejected: dict[str, int] = field(default_factory=dict)


def _valid(ingestor: Ingestor, tenant: str, text: TextBatch) -> TextBatch:
    stats = ingestor.stats
    allowed = ingestor.signals_of(tenant)
    if allowed is None:
        raise PermissionError(f"tenant {tenant!r} is not registered for ingest")
    known = np.array([n in allowed for n in text.names], dtype=bool)
    ok = known[text.index] if len(text.names) else np.zeros(len(text), dtype=bool)
    if not ok.all():
        bad = sorted({text.names[i] for i in np.unique(text.index[~ok])})
        stats.reject("unknown_signal", int((~ok).sum()), ", ".join(bad[:3]))
    declared = ingestor.text_signals_of(tenant)
    if ingestor.declares_kinds(tenant):
        is_text = np.array([n in declared for n in text.names], dtype=bool)
        wrong = ok & ~is_text[text.index] if len(text.names) else ok & False
        if wrong.any():
            bad = sorted({text.names[i] for i in np.unique(text.index[wrong])})
            stats.reject(
                "wrong_kind", int(wrong.sum()), f"text for numeric signal {', '.join(bad[:3])}"
            )
            ok &= ~wrong
    in_range = (text.ts >= _MIN_TS) & (text.ts < _MAX_TS)
    if not (in_range | ~ok).all():
        first = int(text.ts[ok & ~in_range][0])
        stats.reject("bad_timestamp", int((ok & ~in_range).sum()), f"text ts {first}")
    ok &= in_range
    if ingestor.clock is not None:
        now = ingestor.now()  # the samples' bound: a clock stepped back does not move it
        ahead = ok & (text.ts > now + ingestor.future_tolerance_us)
        if ahead.any():
            worst = int(text.ts[ahead].max())
            stats.reject(
                "future",
                int(ahead.sum()),
                f"text ts {worst} is {(worst - now) / 1e6:.0f} s ahead of the platform clock",
            )
            ok &= ~ahead
    qual = text.quality <= Quality.BAD
    if not (qual | ~ok).all():
        stats.reject("bad_quality_code", int((~qual & ok).sum()), "quality > 2")
    ok &= qual
    long = np.fromiter((len(v) > MAX_TEXT_CHARS for v in text.value), bool, len(text))
    if (long & ok).any():
        i = int(np.flatnonzero(long & ok)[0])
        stats.reject(
            "text_too_long",
            int((long & ok).sum()),
            f"{text.signal_at(i)}: {len(text.value[i])} characters (at most {MAX_TEXT_CHARS})",
        )
    ok &= ~long
    return text if ok.all() else text.take(ok)


async def ingest_text(ingestor: Ingestor, tenant: str, text: TextBatch) -> TextReport:
    """Validate and store ``text`` for ``tenant``; refusals are counted in
    ``ingestor.stats``. Raises ``PermissionError`` for a tenant not registered for ingest."""
    before = ingestor.stats.rejected.copy()
    valid = _valid(ingestor, tenant, text)
    rejected: Counter[str] = ingestor.stats.rejected - before
    if not len(valid):
        return TextReport(rejected=dict(rejected))
    result = await ingestor.store.append_text(tenant, valid)
    if result.refused:
        ingestor.stats.reject(
            "dictionary_full", result.refused, f"tenant {tenant!r}: signal dictionary full"
        )
        rejected["dictionary_full"] += result.refused
    if result.conflicts:
        ingestor.conflict_log.note(
            (f"tenant {tenant!r}", "text conflict"),
            "same signal and timestamp as a stored text value, another value (first kept)",
            result.conflicts,
        )
    if ingestor.live is not None and result.written:
        await ingestor.live.texts(tenant, valid)
    return TextReport(result.written, result.duplicates, result.conflicts, dict(rejected))
