"""Idle energy: for every machine with an energy register or a power signal, the energy it
burns while starved or blocked, and what standby in the long waits would save (kWh, cost).

One finding per machine per ``report_h`` hours analysed; one auto-standby work order per
machine whose avoidable energy in a run reaches ``propose_kwh``. ``once`` installations
(a local or a test run) analyse up to ``now`` and return; others keep following, every
``interval_min`` minutes. The arithmetic is in ``energy_idle.energy``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from andon.sdk import Context, Finding, Machine, RateLimited
from energy_idle.energy import (
    US_PER_H,
    MachineEnergy,
    analyse,
    cumulative_from_power,
    cumulative_from_register,
)

DONE_KEY = "analysed_until"
PROPOSED_KEY = "proposed"
EMITTED_KEY = "emitted"
"""Finding id → machine, for the newest ``MAX_REMEMBERED`` findings (to read feedback)."""
DECLINED_KEY = "declined"
"""Machines whose finding someone rejected: no auto-standby proposals for them."""
MAX_REMEMBERED = 500
READ_SLICE_US = 12 * US_PER_H


def _source(m: Machine) -> tuple[str, str] | None:
    """The machine's energy register, else its power signal: (path, kind)."""
    for kind in ("energy", "power"):
        path = m.signal_of_type(kind)
        if path is not None:
            return path, kind
    return None


async def _energy(
    ctx: Context, site: str, path: str, kind: str, start: int, end: int
) -> tuple[list[int], list[float]]:
    ts: list[int] = []
    vs: list[float] = []
    t = start
    while t < end:  # in slices: a read answers at most a few hundred thousand samples
        t1 = min(end, t + READ_SLICE_US)
        table = await ctx.telemetry(site, [path], t, t1)
        good = [q == 0 for q in table.column("quality").to_pylist()]
        ts += [x for x, ok in zip(table.column("ts").to_pylist(), good, strict=True) if ok]
        vs += [v for v, ok in zip(table.column("value").to_pylist(), good, strict=True) if ok]
        t = t1
    if kind == "energy":
        return cumulative_from_register(ts, vs)
    return cumulative_from_power(ts, vs)


def _finding(site: str, m: Machine, signal: str, r: MachineEnergy, s: dict[str, Any]) -> Finding:
    price, currency = float(s["price_per_kwh"]), str(s["currency"])
    cost = r.saving_kwh * price
    mins = float(s["min_idle_min"])
    waits = len(r.stretches)
    return Finding(
        type="idle_energy",
        site=site,
        machine=m.path,
        start_us=r.first_us,
        end_us=r.last_us,
        score=min(1.0, r.saving_kwh / float(s["score_full_kwh"])),
        title=(
            f"{m.id}: {r.idle_kwh:.1f} kWh while idle, {r.saving_kwh:.1f} kWh "
            f"({cost:.0f} {currency}) avoidable by standby"
        ),
        explanation=(
            f"{m.name} was starved or blocked for {r.idle_h:.1f} h and used {r.idle_kwh:.2f} kWh "
            f"meanwhile. {waits} wait(s) lasted at least {mins:g} min; switched to standby "
            f"({r.standby_kw:.2f} kW, {r.standby_basis}) in those, it would have used "
            f"{r.saving_kwh:.2f} kWh less, {cost:.0f} {currency} at {price:g} {currency}/kWh."
        ),
        signals=(signal,),
        evidence={
            "idle_kwh": round(r.idle_kwh, 4),
            "idle_h": round(r.idle_h, 4),
            "saving_kwh": round(r.saving_kwh, 4),
            "saving_cost": round(cost, 2),
            "currency": currency,
            "price_per_kwh": price,
            "standby_kw": round(r.standby_kw, 4),
            "standby_basis": r.standby_basis,
            "min_idle_min": mins,
            "long_waits": waits,
            "longest_waits": [[a, b, round(e, 4)] for a, b, e in r.stretches[:10]],
        },
    )


async def analyse_range(ctx: Context, start: int, end: int) -> int:
    """Findings for ``[start, end)``; returns how far it got (``end`` unless rate limited)."""
    s = ctx.settings
    min_idle_us = round(float(s["min_idle_min"]) * 60e6)
    piece_us = round(float(s["report_h"]) * US_PER_H)
    proposed: list[str] = list(await ctx.get_state(PROPOSED_KEY, []))
    emitted: dict[str, str] = dict(await ctx.get_state(EMITTED_KEY, {}))
    declined = await _declined(ctx, emitted)
    savings: dict[str, tuple[str, Machine, float, float]] = {}
    t = start
    while t < end:
        t1 = min(end, t + piece_us)
        for site in ctx.sites:
            for m in await ctx.machines(site):
                src = _source(m)
                if src is None:
                    continue
                states = await ctx.states(site, t, t1, machine=m.path)
                ts, cum = await _energy(ctx, site, src[0], src[1], t, t1)
                r = analyse(
                    states, ts, cum, min_idle_us=min_idle_us,
                    standby_share=float(s["standby_share"]),
                )  # fmt: skip
                if r.idle_kwh <= 0.0005:
                    continue
                try:
                    fid = await ctx.emit(_finding(site, m, src[0], r, s))
                except RateLimited as exc:
                    await ctx.log("warning", f"stopped at {t}: {exc.message}")
                    await _remember(ctx, emitted)
                    return t
                emitted[fid] = m.path
                _, _, kwh, cost = savings.get(m.path, (site, m, 0.0, 0.0))
                price = float(s["price_per_kwh"])
                savings[m.path] = (site, m, kwh + r.saving_kwh, cost + r.saving_kwh * price)
        t = t1
    if "workorders:propose" in ctx.permissions:
        for path, (site, m, kwh, cost) in sorted(savings.items()):
            if kwh >= float(s["propose_kwh"]) and path not in proposed and path not in declined:
                await ctx.propose_work_order(
                    site,
                    path,
                    f"Set auto-standby on {m.id} after {float(s['min_idle_min']):g} min idle",
                    f"{m.name} could have saved {kwh:.1f} kWh ({cost:.0f} {s['currency']}) "
                    "in its long waits by going to standby.",
                )
                proposed.append(path)
        await ctx.set_state(PROPOSED_KEY, proposed)
    await _remember(ctx, emitted)
    return end


async def _remember(ctx: Context, emitted: dict[str, str]) -> None:
    newest = list(emitted.items())[-MAX_REMEMBERED:]
    await ctx.set_state(EMITTED_KEY, dict(newest))


async def _declined(ctx: Context, emitted: dict[str, str]) -> set[str]:
    """Machines people said no to: a rejected finding of this app (with the comment kept in
    the log), read once through the feedback since the last run."""
    declined = set(await ctx.get_state(DECLINED_KEY, []))
    if "feedback:read" not in ctx.permissions:
        return declined
    since = await ctx.get_state("feedback_until", 0)
    last = since
    for fb in await ctx.feedback(since):
        last = max(last, fb.at_us + 1)
        machine = emitted.get(fb.finding_id)
        if fb.verdict == "rejected" and machine is not None and machine not in declined:
            declined.add(machine)
            await ctx.log("info", f"no standby proposals for {machine}: {fb.comment or 'rejected'}")
    await ctx.set_state(DECLINED_KEY, sorted(declined))
    await ctx.set_state("feedback_until", last)
    return declined


async def main(ctx: Context) -> None:
    while True:
        now = await ctx.now()
        since = await ctx.get_state(DONE_KEY)
        start = (
            since
            if isinstance(since, int)
            else now - round(float(ctx.settings["lookback_h"]) * US_PER_H)
        )
        if now > start:
            done = await analyse_range(ctx, start, now)
            await ctx.set_state(DONE_KEY, done)
            await ctx.log("info", f"analysed {start}..{done} on {len(ctx.sites)} site(s)")
        if ctx.once:
            return
        await asyncio.sleep(float(ctx.settings["interval_min"]) * 60.0)
