"""Anomalies in machine condition: per machine, learn normal behaviour per operating
regime (the product being made) from the first hours, then score every step of the
condition signals in time order and report each anomalous episode with the signals that
made it (``andon.pdm.anomaly``).

Per machine with condition signals (``signal_types``): its samples are averaged onto a grid
of ``step_s`` seconds; only steps where it is running are learned and scored (a stopped
machine's signals say nothing about its condition). The first ``learn_h`` hours (at most
``learn_share`` of the data there is) are learned as normal; the threshold is set for
``target_far`` false alarms on them. Flagged steps at most ``merge_min`` apart form one
episode; one with at least ``min_steps`` flagged steps is a finding, raised at its
``min_steps``-th flagged step (its window ends there, its explanation says what was known
then; the episode's end and its own peak are in the evidence). An episode that goes on
(a machine wearing out stays anomalous for days) is reported again every ``report_h`` hours
of it, each report raised the same way.

A following installation (not ``once``) learns from the first hours of its first run's
range and, every ``interval_min`` minutes, scores that range again up to ``now`` (the
same model, so the same findings) and emits only the findings that end after the previous
run.

Feedback: a finding people rejected raises its machine's threshold above that finding's
peak (``Scorer.reject``, capped at 4× the learned one) for the next runs; a confirmed one
keeps it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from andon.sdk import Context, Finding, Machine, RateLimited
from pdm_anomaly.detect import grid_mean, product_at, reports, running_mask, score_machine

US_PER_S = 1_000_000
US_PER_H = 3600 * US_PER_S
READ_SAMPLES = 200_000
"""Samples per telemetry read at most (the gateway answers 300,000)."""
EMITTED_KEY = "emitted"
"""Finding id → [machine, peak score / threshold] for the newest findings (feedback)."""
FEEDBACK_KEY = "feedback"
"""Machine → {"raise": peak ratio to stay under, "rejected": n, "confirmed": n}."""
MAX_REMEMBERED = 500
START_KEY = "learn_start"
"""Where the installation's first run began: its first hours are what it learned."""
UNTIL_KEY = "analysed_until"


def condition_signals(m: Machine, types: set[str]) -> list[str]:
    return sorted(p for p, t in m.signals.items() if t in types)


async def _read(
    ctx: Context, site: str, signals: list[str], start: int, end: int
) -> dict[str, tuple[list[int], list[float]]]:
    out: dict[str, tuple[list[int], list[float]]] = {s: ([], []) for s in signals}
    # at most 1 Hz per signal: a slice holds READ_SAMPLES samples over all the signals
    slice_us = max(60 * US_PER_S, READ_SAMPLES // max(1, len(signals)) * US_PER_S)
    t = start
    while t < end:
        t1 = min(end, t + slice_us)
        table = await ctx.telemetry(site, signals, t, t1)
        sig = table.column("signal").to_pylist()
        ts = table.column("ts").to_pylist()
        val = table.column("value").to_pylist()
        q = table.column("quality").to_pylist()
        for s, x, v, g in zip(sig, ts, val, q, strict=True):
            if g == 0 and v is not None:
                out[s][0].append(x)
                out[s][1].append(v)
        t = t1
    return out


async def analyse_machine(
    ctx: Context, site: str, m: Machine, signals: list[str], start: int, end: int,
    feedback: dict[str, Any],
) -> list[Finding]:  # fmt: skip
    s = ctx.settings
    step = round(float(s["step_s"]) * US_PER_S)
    n = (end - start) // step
    if n < 4:
        return []
    data = await _read(ctx, site, signals, start, start + n * step)
    x = np.column_stack([grid_mean(*data[p], start, step, n) for p in signals])
    states = await ctx.states(site, start, start + n * step, machine=m.path)
    run = running_mask(states, start, step, n)
    regime = (
        product_at(await ctx.parts(site, start, start + n * step, machine=m.path), start, step, n)
        if "parts:read" in ctx.permissions
        else [""] * n
    )
    fb = feedback.get(m.path)
    raise_ratio = float(fb["raise"]) if fb and fb.get("raise") else 0.0
    sc = score_machine(x, run, regime, signals, s, raise_ratio)
    if isinstance(sc, str):
        await ctx.log("info", f"{m.id}: {sc}")
        return []
    learned = (sc.first, sc.learn_steps, sc.train)
    return [
        _finding(
            site, m, sc.signals, start, step, sc.scored, sc.score, sc.contrib, r.sel, r.at,
            r.episode, r.k, sc.threshold, sc.config.target_far, learned, regime, s,
        )
        for r in reports(sc, s)
    ]  # fmt: skip


def _finding(
    site: str, m: Machine, signals: list[str], start: int, step: int, scored: Any,
    score: Any, contrib: Any, sel: Any, a: int, episode: tuple[int, int, Any], k: int,
    thr: float, far: float, learned: tuple[int, int, int], regime: list[str],
    s: dict[str, Any],
) -> Finding:  # fmt: skip
    ep_a, ep_b, every = episode
    first, learn_steps, n_train = learned
    c = int(sel[-1])
    peak = float(score[sel].max())
    share = contrib[sel].mean(axis=0)
    order = np.argsort(-share)
    top = [j for j in order[:5] if share[j] >= 0.05] or [int(order[0])]
    t0 = start + int(scored[a]) * step
    t1 = start + (int(scored[c]) + 1) * step
    ep0 = start + int(scored[ep_a]) * step
    names = [signals[j].rsplit("/", 1)[-1] for j in top]
    parts = ", ".join(f"{signals[j].rsplit('/', 1)[-1]} {100 * share[j]:.0f} %" for j in top)
    so_far = (t1 - ep0) / US_PER_H
    what = "unusual" if k == 0 else f"still unusual after {so_far:.1f} h"
    return Finding(
        type="condition_anomaly",
        site=site,
        machine=m.path,
        start_us=t0,
        end_us=t1,
        score=float(min(1.0, max(0.0, 1.0 - thr / peak))),
        title=f"{m.id}: {what}: {', '.join(names[:3])} (score {peak / thr:.1f}× threshold)",
        explanation=(
            f"{m.name}'s condition signals left their normal behaviour for its product: "
            f"{len(sel)} of {c - a + 1} running steps of {float(s['step_s']):g} s flagged"
            + ("" if k == 0 else f", {so_far:.1f} h into an episode that began earlier")
            + f". Peak smoothed score {peak:.2f} against a threshold of {thr:.2f} (set for "
            f"{100 * far:g} % false alarms on the first "
            f"{(learn_steps - first) * step / US_PER_H:.1f} h). Contributions: {parts}."
        ),
        signals=tuple(signals[j] for j in top),
        evidence={
            "peak_score": round(peak, 4),
            "threshold": round(thr, 4),
            "ratio": round(peak / thr, 4),
            "flagged_steps": len(sel),
            "report": k,
            "episode_start_us": ep0,
            "episode_flagged_steps": len(every),
            "episode_end_us": start + (int(scored[ep_b]) + 1) * step,
            "episode_peak_score": round(float(score[every].max()), 4),
            "step_s": float(s["step_s"]),
            "contributions": {signals[j]: round(float(share[j]), 4) for j in order},
            "regime": regime[int(scored[c])],
            "learned_from_us": start + first * step,
            "learned_until_us": start + learn_steps * step,
            "learned_steps": n_train,
        },
    )


async def _feedback(ctx: Context, emitted: dict[str, list[Any]]) -> dict[str, Any]:
    """Per machine, the highest peak ratio people rejected, and the counts."""
    fb: dict[str, Any] = dict(await ctx.get_state(FEEDBACK_KEY, {}))
    if "feedback:read" not in ctx.permissions:
        return fb
    since = int(await ctx.get_state("feedback_until", 0))
    last = since
    for f in await ctx.feedback(since):
        last = max(last, f.at_us + 1)
        got = emitted.get(f.finding_id)
        if got is None:
            continue
        machine, ratio = str(got[0]), float(got[1])
        row = fb.setdefault(machine, {"raise": 0.0, "rejected": 0, "confirmed": 0})
        if f.verdict == "rejected":
            row["rejected"] += 1
            row["raise"] = max(float(row["raise"]), ratio)
            await ctx.log(
                "info",
                f"{machine}: threshold raised above {ratio:.2f}× (rejected: {f.comment or '-'})",
            )
        elif f.verdict == "confirmed":
            row["confirmed"] += 1
    await ctx.set_state(FEEDBACK_KEY, fb)
    await ctx.set_state("feedback_until", last)
    return fb


async def analyse(ctx: Context, start: int, end: int, after: int) -> int:
    """Analyse ``[start, end)`` (learning from its first hours) and emit the findings that
    end after ``after`` (the end of the previous run's range: those are out already)."""
    s = ctx.settings
    types = {t.strip() for t in str(s["signal_types"]).split(",") if t.strip()}
    emitted: dict[str, list[Any]] = dict(await ctx.get_state(EMITTED_KEY, {}))
    fb = await _feedback(ctx, emitted)
    for site in ctx.sites:
        for m in await ctx.machines(site):
            signals = condition_signals(m, types)
            if not signals:
                continue
            for f in await analyse_machine(ctx, site, m, signals, start, end, fb):
                if f.end_us <= after:
                    continue
                try:
                    fid = await ctx.emit(f)
                except RateLimited as exc:
                    await ctx.log("warning", f"{m.id}: finding not emitted: {exc.message}")
                    continue
                ev = f.evidence  # a rejection covers the whole episode, not only its start
                emitted[fid] = [m.path, ev["episode_peak_score"] / ev["threshold"]]
    await ctx.set_state(EMITTED_KEY, dict(list(emitted.items())[-MAX_REMEMBERED:]))
    return end


async def main(ctx: Context) -> None:
    while True:
        now = await ctx.now()
        start = await ctx.get_state(START_KEY)
        if not isinstance(start, int):
            start = now - round(float(ctx.settings["lookback_h"]) * US_PER_H)
            await ctx.set_state(START_KEY, start)
        after = await ctx.get_state(UNTIL_KEY, start)
        await analyse(ctx, start, now, int(after))
        await ctx.set_state(UNTIL_KEY, now)
        await ctx.log("info", f"analysed {start}..{now} on {len(ctx.sites)} site(s)")
        if ctx.once:
            return
        await asyncio.sleep(float(ctx.settings["interval_min"]) * 60.0)
