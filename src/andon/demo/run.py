"""``andon demo``: the virtual factory streaming into the store through the ingest path.

``run_headless`` simulates a span as fast as it can and returns a JSON-ready summary read
back from the store. ``run_live`` runs the same factory against a clock at ``speed`` plant
seconds per wall second and calls ``on_tick`` after every step, for the terminal view.
"""

from __future__ import annotations

import copy
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from andon.ingest import Ingestor, IngestStats
from andon.ingest.gateway import EdgeIdentity, IngestGateway, StaticKeys, StaticSites
from andon.kpi.summary import PlantSummary, plant_summary
from andon.model.clock import Clock, WallClock
from andon.model.plant import Plant
from andon.model.types import Micros, from_micros, to_micros
from andon.sim.factory import Flush, VirtualFactory
from andon.store.base import TelemetryStore

__all__ = [
    "DemoRun",
    "HeadlessSummary",
    "default_start",
    "demo_gateway",
    "edge_key",
    "run_headless",
    "run_live",
]


def default_start(plant: Plant) -> Micros:
    """Monday 2026-01-05 06:00 in the site's time zone: the start of a working week."""
    zone = ZoneInfo(plant.site.timezone)
    return to_micros(datetime.combine(date(2026, 1, 5), time(6, 0), tzinfo=zone))


def _iso(us: Micros) -> str:
    return from_micros(us).isoformat().replace("+00:00", "Z")


def edge_key() -> tuple[str, str]:
    """A new edge key of the platform's form (``andon_<id>_<secret>``) and its id."""
    key_id = secrets.token_hex(16)
    return f"andon_{key_id}_{secrets.token_urlsafe(24)}", key_id


def demo_gateway(
    plant: Plant, store: TelemetryStore, site_id: str | None = None
) -> tuple[IngestGateway, str]:
    """An ingest gateway on ``store`` that knows one edge key, for ``plant``'s site only
    (``site_id``, default the plant's site key), and that key: what the demo writes with
    when no platform runs (headless, the terminal view, ``--via protocols``)."""
    key, key_id = edge_key()
    sid = plant.site.id if site_id is None else site_id
    gateway = IngestGateway(
        Ingestor(store),
        StaticKeys({key: EdgeIdentity(key_id, plant.tenant, frozenset({sid}))}),
        StaticSites({plant.tenant: {plant.site.id: sid}}),
    )
    return gateway, key


@dataclass
class DemoRun:
    """A factory writing into a store through the ingest gateway with an edge key, as an
    edge does: the key's tenant and site are checked, then validation and the store's
    dedup, in the gateway (``IngestGateway.submit``)."""

    plant: Plant
    factory: VirtualFactory
    gateway: IngestGateway
    key: str

    @property
    def ingestor(self) -> Ingestor:
        """The gateway's ingestor (its counters are the demo's ``ingest`` summary)."""
        return self.gateway.ingestor

    @classmethod
    def create(
        cls,
        plant: Plant,
        store: TelemetryStore,
        seed: int,
        start: Micros,
        window_s: float = 600.0,
        *,
        gateway: tuple[IngestGateway, str] | None = None,
    ) -> DemoRun:
        """``gateway``: a gateway and the edge key to write with (default
        :func:`demo_gateway`); the factory's signals and machines are registered in its
        ingestor."""
        factory = VirtualFactory(plant, seed, start, window_s=window_s)
        gw, key = demo_gateway(plant, store) if gateway is None else gateway
        gw.ingestor.register(plant.tenant, factory.signal_names, [m.path for m in factory.machines])
        return cls(plant, factory, gw, key)

    async def ingest(self, flushes: list[Flush]) -> None:
        for f in flushes:
            await self.gateway.submit(
                self.key,
                samples=f.samples,
                states=f.states,
                open_states=f.open_states,
                parts=f.parts,
            )

    async def advance(self, until_s: float) -> None:
        await self.ingest(self.factory.advance(until_s))

    async def finish(self) -> None:
        await self.ingest([self.factory.finish()])


@dataclass(frozen=True, slots=True)
class HeadlessSummary:
    """What ``run_headless`` returns: the run (tenant, site, seed, span), the figures read
    back from the store (``plant_summary``), the injected faults (the factory's ground-truth
    records) and the ingest counters."""

    tenant: str
    site: str
    seed: int
    start: Micros
    end: Micros
    hours: float
    summary: PlantSummary
    faults: tuple[dict[str, Any], ...]
    ingest: IngestStats

    @property
    def start_iso(self) -> str:
        return _iso(self.start)

    @property
    def end_iso(self) -> str:
        return _iso(self.end)

    def as_dict(self) -> dict[str, Any]:
        """The JSON object ``andon demo --headless --json`` prints (same seed, same bytes)."""
        return {
            "tenant": self.tenant,
            "site": self.site,
            "seed": self.seed,
            "start": self.start_iso,
            "end": self.end_iso,
            "hours": self.hours,
            **self.summary.as_dict(),
            "faults": list(self.faults),
            "ingest": self.ingest.as_dict(),
        }


async def run_headless(
    plant: Plant,
    store: TelemetryStore,
    seed: int,
    hours: float,
    start: Micros | None = None,
    progress: Callable[[float], None] | None = None,
    ground_truth_file: Path | None = None,
) -> HeadlessSummary:
    """Simulate ``hours`` of plant time and summarise it from the store."""
    if hours <= 0:
        raise ValueError("hours must be positive")
    start = default_start(plant) if start is None else start
    run = DemoRun.create(plant, store, seed, start)
    total = hours * 3600.0
    step = 3600.0
    t = 0.0
    while t < total:
        t = min(total, t + step)
        await run.advance(t)
        if progress:
            progress(t / total)
    await run.finish()
    end = start + round(total * 1e6)
    summary = await plant_summary(store, plant, start, end)
    faults = tuple(g for g in run.factory.ground_truth if g["kind"] == "fault")
    if ground_truth_file is not None:
        with ground_truth_file.open("w", encoding="utf-8") as fh:
            for g in run.factory.ground_truth:
                fh.write(json.dumps(g, sort_keys=True) + "\n")
    return HeadlessSummary(
        plant.tenant,
        plant.site.id,
        seed,
        start,
        end,
        hours,
        summary,
        faults,
        copy.deepcopy(run.ingestor.stats),
    )


async def run_live(
    plant: Plant,
    store: TelemetryStore,
    seed: int,
    speed: float,
    on_tick: Callable[[DemoRun], Awaitable[None] | None],
    clock: Clock | None = None,
    start: Micros | None = None,
    until_s: float | None = None,
    tick_s: float = 0.25,
) -> DemoRun:
    """Run at ``speed`` plant seconds per wall second until ``until_s`` plant seconds (or
    forever). The factory's window is one second of plant time per unit of speed, so the
    store is never more than about a wall second behind the plant. ``on_tick`` is called
    (and awaited, when it returns an awaitable) after every step."""
    if speed <= 0:
        raise ValueError("speed must be positive")
    clock = clock or WallClock()
    start = default_start(plant) if start is None else start
    window = max(1.0, min(600.0, speed * 1.0))
    run = DemoRun.create(plant, store, seed, start, window_s=window)
    wall0 = clock.monotonic()
    while True:
        target = (clock.monotonic() - wall0) * speed
        if until_s is not None:
            target = min(target, until_s)
        await run.advance(target)
        await _call(on_tick, run)
        if until_s is not None and target >= until_s:
            break
        await clock.sleep(tick_s)
    await run.finish()
    await _call(on_tick, run)
    return run


async def _call(on_tick: Callable[[DemoRun], Awaitable[None] | None], run: DemoRun) -> None:
    got = on_tick(run)
    if got is not None:
        await got
