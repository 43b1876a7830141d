"""Platform side of the data path: validate what arrives, write it to the store, count what
is refused.

Every sample, state interval and part event reaches the store through ``Ingestor``, whether it
comes from an edge agent over the network or from the virtual factory in process, so the
checks are the same for both. Nothing is dropped silently: each refused row is counted by
reason in ``IngestStats`` and the first examples are kept for the operator to read.

Refusals that need a clock or the store (decision 0312):

* ``future``: a sample stamped more than ``future_tolerance_s`` after the platform's clock
  (when the ingestor is given one) is refused, so one edge whose clock jumped ahead cannot
  freeze a signal's "last value" at a moment that has not come yet. With a ``monotonic``
  clock too, that bound never steps back: a platform clock stepped back (an NTP step) would
  otherwise refuse every correct edge's samples for as long as the step;
* ``conflict``: a sample at an instant the store already holds for the signal, with another
  value or quality, is not stored (the first write wins, as for any duplicate) but counted
  apart from harmless resends (``IngestStats.conflicts``) and logged, rate-limited;
* ``dictionary_full``: rows of a signal the store has no room for (its per-tenant cap).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

import numpy as np

from andon.bus import LiveBus
from andon.ingest.live import LivePublisher
from andon.ingest.ratelog import RateLimitedLog
from andon.model.types import MachineState, Micros, PartBatch, Quality, SampleBatch, StateBatch
from andon.store.base import TelemetryStore

__all__ = ["IngestReport", "IngestStats", "Ingestor"]

log = logging.getLogger("andon.ingest")

# 2000-01-01 and 2100-01-01: anything outside is a broken clock, not a measurement.
_MIN_TS: Micros = 946_684_800_000_000
_MAX_TS: Micros = 4_102_444_800_000_000


@dataclass(frozen=True, slots=True)
class IngestReport:
    accepted: int
    duplicates: int
    """Samples not stored because their ``(signal, ts)`` is stored already (conflicts
    included)."""
    rejected: dict[str, int]
    conflicts: int = 0
    """Duplicates whose value or quality differs from the stored sample."""


@dataclass
class IngestStats:
    """Running totals since the ingestor started."""

    samples: int = 0
    duplicates: int = 0
    conflicts: int = 0
    """Part of ``duplicates``: same ``(signal, ts)``, another value or quality."""
    states: int = 0
    parts: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def reject(self, reason: str, n: int, example: str) -> None:
        self.rejected[reason] += n
        if len(self.examples) < 20:
            self.examples.append(f"{reason}: {example} ({n} rows)")

    def as_dict(self) -> dict[str, object]:
        return {
            "samples": self.samples,
            "duplicates": self.duplicates,
            "conflicts": self.conflicts,
            "states": self.states,
            "parts": self.parts,
            "rejected": dict(sorted(self.rejected.items())),
        }


class Ingestor:
    """Validates batches for a tenant's known signals and machines, then stores them.

    ``clock`` (µs, the platform's): with it, samples stamped more than ``future_tolerance_s``
    after it are refused (``future``); without it (the in-process demo, whose plant clock is
    its own) there is no such check. ``monotonic`` (seconds, never stepped): with it, the
    bound is the later of the clock and where the clock would be had it not stepped back
    (the last bound plus the monotonic time since), so a platform clock stepped back refuses
    nothing it accepted before. The price: after a forward step is undone, the bound stays
    ahead by that step until the clock catches up."""

    def __init__(
        self,
        store: TelemetryStore,
        *,
        clock: Callable[[], Micros] | None = None,
        future_tolerance_s: float = 300.0,
        log_interval_s: float = 10.0,
        bus: LiveBus | None = None,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        if future_tolerance_s < 0:
            raise ValueError(f"future_tolerance_s must be >= 0, got {future_tolerance_s}")
        self.store = store
        self.stats = IngestStats()
        self.clock = clock
        self.monotonic = monotonic
        self._bound: tuple[Micros, float] | None = None
        """The last ``now`` of the future bound and the monotonic time it was taken at."""
        self.future_tolerance_us = int(future_tolerance_s * 1e6)
        self.conflict_log = RateLimitedLog(
            log_interval_s, emit=log.warning, what=("point", "points")
        )
        self.live = LivePublisher(bus) if bus is not None else None
        """Publishes what each write stored on the live bus (``andon.ingest.live``)."""
        self._signals: dict[str, set[str]] = {}
        self._machines: dict[str, set[str]] = {}
        self._texts: dict[str, set[str]] = {}

    def register(
        self,
        tenant: str,
        signals: Iterable[str],
        machines: Iterable[str],
        texts: Iterable[str] | None = None,
    ) -> None:
        """Declare the signals and machines a tenant may send (from its asset model).
        ``texts``: those of them declared of kind text; given (even empty), each value's kind
        is checked against its signal's, a number for a text signal or text for another
        refused (``wrong_kind``); ``None``: kinds are not declared, not checked."""
        self._signals.setdefault(tenant, set()).update(signals)
        self._machines.setdefault(tenant, set()).update(machines)
        if texts is not None:
            self._texts.setdefault(tenant, set()).update(texts)

    def declares_kinds(self, tenant: str) -> bool:
        """Whether ``tenant`` registered its signals' kinds (``register(texts=...)``)."""
        return tenant in self._texts

    def text_signals_of(self, tenant: str) -> AbstractSet[str]:
        """The signals of ``tenant`` declared of kind text (a view, not a copy)."""
        return self._texts.get(tenant, frozenset())

    def signals_of(self, tenant: str) -> AbstractSet[str] | None:
        """The signals ``tenant`` may send (``None``: not registered for ingest); a view,
        not a copy."""
        return self._signals.get(tenant)

    def _known(
        self, kind: str, tenant: str, names: tuple[str, ...], index: np.ndarray
    ) -> np.ndarray:
        known = self._signals if kind == "signal" else self._machines
        allowed = known.get(tenant)
        if allowed is None:
            raise PermissionError(f"tenant {tenant!r} is not registered for ingest")
        ok_names = np.array([n in allowed for n in names], dtype=bool)
        ok = ok_names[index] if len(names) else np.zeros(len(index), dtype=bool)
        if not ok.all():
            bad = sorted({names[i] for i in np.unique(index[~ok])})
            self.stats.reject(f"unknown_{kind}", int((~ok).sum()), ", ".join(bad[:3]))
        return ok

    def now(self) -> Micros:
        """The platform's clock as ingest reads it (the future bound, edge health's
        receipt): with ``monotonic``, never before the last answer plus the monotonic time
        since, so a clock stepped back does not move it back. Needs ``clock``."""
        if self.clock is None:
            raise RuntimeError("this ingestor has no clock")
        now = self.clock()
        if self.monotonic is not None:
            mono = self.monotonic()
            if self._bound is not None:
                last, at = self._bound
                now = max(now, last + int((mono - at) * 1e6))
            self._bound = (now, mono)
        return now

    def _ts_ok(self, ts: np.ndarray, what: str) -> np.ndarray:
        ok = (ts >= _MIN_TS) & (ts < _MAX_TS)
        if not ok.all():
            self.stats.reject("bad_timestamp", int((~ok).sum()), f"{what} ts {int(ts[~ok][0])}")
        return ok

    async def samples(self, tenant: str, batch: SampleBatch) -> IngestReport:
        before = self.stats.rejected.copy()
        ok = self._known("signal", tenant, batch.names, batch.index)
        texts = self._texts.get(tenant)
        if texts:  # only a tenant with text signals pays for the check
            is_text = np.array([n in texts for n in batch.names], dtype=bool)
            wrong = ok & is_text[batch.index] if len(batch.names) else ok & False
            if wrong.any():
                bad = sorted({batch.names[i] for i in np.unique(batch.index[wrong])})
                self.stats.reject(
                    "wrong_kind", int(wrong.sum()), f"a number for text signal {', '.join(bad[:3])}"
                )
                ok &= ~wrong
        ok &= self._ts_ok(batch.ts, "sample")
        if self.clock is not None:
            now = self.now()
            ahead = ok & (batch.ts > now + self.future_tolerance_us)
            if ahead.any():
                worst = int(batch.ts[ahead].max())
                self.stats.reject(
                    "future",
                    int(ahead.sum()),
                    f"sample ts {worst} is {(worst - now) / 1e6:.0f} s ahead of the platform clock",
                )
                ok &= ~ahead
        finite = np.isfinite(batch.value) | (batch.quality == Quality.BAD)
        if not finite.all():
            self.stats.reject(
                "non_finite_value",
                int((~finite & ok).sum()),
                "NaN or infinity with good or uncertain quality",
            )
        ok &= finite
        qual = batch.quality <= Quality.BAD
        if not qual.all():
            self.stats.reject("bad_quality_code", int((~qual & ok).sum()), "quality > 2")
        ok &= qual
        rejected = self.stats.rejected - before  # before any await: this batch's alone
        accepted = batch if ok.all() else batch.take(ok)
        result = await self.store.append(tenant, accepted)
        self.stats.samples += result.written
        self.stats.duplicates += result.duplicates
        if result.refused:
            n, why = result.refused, f"tenant {tenant!r}: signal dictionary full"
            self.stats.reject("dictionary_full", n, why)
            rejected["dictionary_full"] += n
        if result.conflicts:
            self.stats.conflicts += result.conflicts
            self.conflict_log.note(
                (f"tenant {tenant!r}", "conflict"),
                "same signal and timestamp as a stored sample, another value (first kept)",
                result.conflicts,
            )
        if self.live is not None and result.written:
            await self.live.samples(tenant, accepted)
        return IngestReport(result.written, result.duplicates, dict(rejected), result.conflicts)

    def _valid_states(
        self, tenant: str, batch: StateBatch, rejected: Counter[str] | None = None
    ) -> StateBatch:
        before = self.stats.rejected.copy()
        try:
            return self._valid_states_of(tenant, batch)
        finally:
            if rejected is not None:
                rejected.update(self.stats.rejected - before)

    def _valid_states_of(self, tenant: str, batch: StateBatch) -> StateBatch:
        ok = self._known("machine", tenant, batch.names, batch.index)
        ok &= self._ts_ok(batch.start, "state") & self._ts_ok(batch.end, "state")
        valid = batch.state <= max(MachineState)
        if not valid.all():
            self.stats.reject("bad_state_code", int((~valid).sum()), "unknown state code")
        ok &= valid
        if ok.all():
            return batch
        keep = np.flatnonzero(ok)
        return StateBatch(
            batch.names,
            batch.index[keep],
            batch.start[keep],
            batch.end[keep],
            batch.state[keep],
            tuple(batch.reason[i] for i in keep),
        )

    async def states(
        self, tenant: str, batch: StateBatch, rejected: Counter[str] | None = None
    ) -> int:
        """Store the valid intervals; refusals are counted, and added to ``rejected``."""
        batch = self._valid_states(tenant, batch, rejected)
        n = await self.store.append_states(tenant, batch) if len(batch) else 0
        self.stats.states += n
        if self.live is not None and n:
            await self.live.states(tenant, batch, open_=False)
        return n

    async def open_states(
        self, tenant: str, batch: StateBatch, rejected: Counter[str] | None = None
    ) -> int:
        """The states still going on (``end`` = when last confirmed), validated like closed
        intervals; they feed the live board until the interval closes."""
        batch = self._valid_states(tenant, batch, rejected)
        n = await self.store.put_open_states(tenant, batch) if len(batch) else 0
        if self.live is not None and n:
            await self.live.states(tenant, batch, open_=True)
        return n

    async def parts(
        self, tenant: str, batch: PartBatch, rejected: Counter[str] | None = None
    ) -> int:
        """Store the valid part events; refusals are counted, and added to ``rejected``."""
        before = self.stats.rejected.copy()
        ok = self._known("machine", tenant, batch.names, batch.index)
        ok &= self._ts_ok(batch.ts, "part")
        if rejected is not None:
            rejected.update(self.stats.rejected - before)
        if not ok.all():
            keep = np.flatnonzero(ok)
            batch = PartBatch(
                batch.names,
                batch.index[keep],
                batch.ts[keep],
                tuple(batch.product[i] for i in keep),
                batch.good[keep],
                batch.scrap[keep],
            )
        n = await self.store.append_parts(tenant, batch) if len(batch) else 0
        self.stats.parts += n
        if self.live is not None and n:
            await self.live.parts(tenant, batch)
        return n
