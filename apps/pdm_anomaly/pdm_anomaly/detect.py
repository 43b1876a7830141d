"""The arithmetic of pdm_anomaly, without a platform: samples onto a time grid, the regime
at each step, learning and scoring a machine's steps (:func:`score_machine`), and flagged
steps into episodes and reports (one finding each, :func:`reports`). The app and
``benchmarks/pdm_factory.py`` both detect with these functions: one definition.

>>> import numpy as np
>>> episodes(np.array([0, 1, 1, 1, 0, 0, 1, 1, 0], dtype=bool), max_gap=1, min_steps=2)
[(1, 3), (6, 7)]
>>> episodes(np.array([0, 1, 0, 1, 1, 0], dtype=bool), max_gap=1, min_steps=3)
[(1, 4)]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from andon.pdm.anomaly import AnomalyConfig, AnomalyModel, Scorer
from andon.sdk import Part, State

__all__ = [
    "Report",
    "Scored",
    "episodes",
    "grid_mean",
    "product_at",
    "reports",
    "running_mask",
    "score_machine",
]

F64 = npt.NDArray[np.float64]


def grid_mean(
    ts: Sequence[int] | npt.NDArray[np.int64],
    values: Sequence[float] | F64,
    start: int,
    step: int,
    n: int,
) -> F64:
    """The mean of the samples in each step ``[start + i·step, start + (i+1)·step)`` (NaN
    where a step has none; NaN samples are skipped): step ``i`` is known at its end."""
    t = np.asarray(ts, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    out = np.full(n, np.nan)
    if t.size == 0:
        return out
    i = (t - start) // step
    ok = (i >= 0) & (i < n) & np.isfinite(v)
    i, v = i[ok], v[ok]
    counts = np.bincount(i, minlength=n)
    sums = np.bincount(i, weights=v, minlength=n)
    has = counts > 0
    out[has] = sums[has] / counts[has]
    return out


def running_mask(states: Sequence[State], start: int, step: int, n: int) -> npt.NDArray[np.bool_]:
    """Whether the machine was running at each step's last microsecond."""
    last = start + step * (np.arange(n, dtype=np.int64) + 1) - 1
    run = np.zeros(n, dtype=bool)
    for s in states:
        if s.state == "running":
            run |= (last >= s.start_us) & (last < s.end_us)
    return run


def product_at(parts: Sequence[Part], start: int, step: int, n: int) -> list[str]:
    """The product of the last part finished by each step's end (before the first part:
    the first part's product; none at all: ``""``). Known at the time: no look-ahead
    beyond the first part."""
    if not parts:
        return [""] * n
    ps = sorted(parts, key=lambda p: p.ts_us)
    ts = np.array([p.ts_us for p in ps], dtype=np.int64)
    last = start + step * (np.arange(n, dtype=np.int64) + 1) - 1
    k = np.searchsorted(ts, last, side="right") - 1
    return [ps[max(0, int(j))].product for j in k]


def episodes(flag: npt.NDArray[np.bool_], *, max_gap: int, min_steps: int) -> list[tuple[int, int]]:
    """Flagged steps into ``(first, last)`` episodes: flags at most ``max_gap`` unflagged
    steps apart join; an episode needs ``min_steps`` flagged steps."""
    out: list[tuple[int, int]] = []
    idx = np.flatnonzero(flag)
    if idx.size == 0:
        return out
    first = prev = int(idx[0])
    count = 1
    for j in idx[1:]:
        j = int(j)
        if j - prev - 1 <= max_gap:
            prev = j
            count += 1
            continue
        if count >= min_steps:
            out.append((first, prev))
        first = prev = j
        count = 1
    if count >= min_steps:
        out.append((first, prev))
    return out


@dataclass(frozen=True, eq=False)
class Scored:
    """One machine learned and scored: ``scored`` are the grid steps scored (running, after
    learning), ``score``/``flag``/``contrib`` one row per scored step."""

    signals: list[str]
    first: int
    """The first running step with data (learning starts there)."""
    learn_steps: int
    """Steps ``[0, learn_steps)`` are learned; scoring starts after them."""
    train: int
    """Running steps learned from."""
    scored: npt.NDArray[np.int64]
    score: F64
    flag: npt.NDArray[np.bool_]
    contrib: F64
    threshold: float
    config: AnomalyConfig


def score_machine(
    x: F64,
    run: npt.NDArray[np.bool_],
    regime: Sequence[str],
    signals: Sequence[str],
    settings: Mapping[str, Any],
    raise_ratio: float = 0.0,
) -> Scored | str:
    """Learn a machine's first hours (``learn_h``, at most ``learn_share`` of the steps) as
    normal per regime and score its later running steps in time order. ``x`` is ``(steps,
    signals)`` on the grid, ``run`` whether it ran at each step, ``regime`` the product at
    each step; ``raise_ratio`` > 0: people rejected an alarm that peaked at that ratio to
    the threshold. Returns why not (a sentence) when there is too little to learn from."""
    s = settings
    names = list(signals)
    n = len(run)
    seen = run & ~np.all(np.isnan(x), axis=1)
    if not seen.any():
        return "no running steps with data"
    step_s = float(s["step_s"])
    first = int(np.argmax(seen))  # learning starts where the data does
    learn_steps = first + min(
        round(float(s["learn_h"]) * 3600.0 / step_s), round(float(s["learn_share"]) * (n - first))
    )
    train = np.flatnonzero(seen[:learn_steps])
    if train.size < int(s["min_learn_steps"]):
        return f"{train.size} running steps to learn from, too few"
    have = ~np.all(np.isnan(x[train]), axis=0)
    if not have.all():
        keep = np.flatnonzero(have)
        names = [names[j] for j in keep]
        x = x[:, keep]
    cfg = AnomalyConfig(alpha=float(s["alpha"]), target_far=float(s["target_far"]))
    model = AnomalyModel.fit(x[train], [regime[int(i)] for i in train], signals=names, config=cfg)
    scorer = Scorer(model)
    if raise_ratio > 0:
        scorer.reject(0, raise_ratio * float(model.threshold[0]))
    scored = np.flatnonzero(run[learn_steps:]) + learn_steps
    idx = model.regime_index([regime[int(i)] for i in scored], len(scored))
    for i in train:  # the smoothing starts where learning ended
        scorer.step(x[i : i + 1], model.regime_index([regime[int(i)]], 1))
    score = np.zeros(len(scored))
    flag = np.zeros(len(scored), dtype=bool)
    contrib = np.zeros((len(scored), len(names)))
    for k, i in enumerate(scored):
        r = scorer.step(x[i : i + 1], idx[k : k + 1])
        score[k], flag[k], contrib[k] = r.score[0], r.flag[0], r.contrib[0]
    return Scored(
        names, first, learn_steps, int(train.size), scored, score, flag, contrib,
        float(scorer.threshold[0]), cfg,
    )  # fmt: skip


@dataclass(frozen=True, eq=False)
class Report:
    """One finding: ``sel`` the flagged scored steps it is raised on (its ``min_steps``
    first), ``at`` the scored step its window starts, ``k`` the report's number in its
    episode (0: the alarm), ``episode`` its episode's ``(first, last, every flagged)``."""

    episode: tuple[int, int, npt.NDArray[np.int64]]
    sel: npt.NDArray[np.int64]
    at: int
    k: int


def reports(sc: Scored, settings: Mapping[str, Any]) -> list[Report]:
    """The findings of a scored machine: one per episode of flagged steps at most
    ``merge_min`` apart with ``min_steps`` flagged, and again every ``report_h`` hours of an
    episode that goes on."""
    step_s = float(settings["step_s"])
    gap = round(float(settings["merge_min"]) * 60.0 / step_s)
    every_n = max(1, round(float(settings["report_h"]) * 3600.0 / step_s))
    need = int(settings["min_steps"])
    out: list[Report] = []
    for a, b in episodes(sc.flag, max_gap=gap, min_steps=need):
        every = np.flatnonzero(sc.flag[a : b + 1]) + a
        # one finding per report_h hours of the episode: the first is the alarm, raised at
        # its min_steps-th flagged step as a following installation would raise it (what
        # it says is what was known then); the next ones say the condition goes on
        piece = (sc.scored[every] - sc.scored[a]) // every_n
        for k in np.unique(piece):
            mine = every[piece == k]
            if mine.size < need:
                continue
            out.append(Report((a, b, every), mine[:need], int(mine[0]) if k else a, int(k)))
    return out
