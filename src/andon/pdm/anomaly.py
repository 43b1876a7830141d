"""Anomaly detection in stream: each machine's normal behaviour per operating regime.

The model (issue 15, item 2):

1. **Normal behaviour per regime.** From training rows declared normal, each regime (a
   categorical such as the product, or a cluster of operating settings, see
   :class:`RegimeClusters`) gets a robust centre and scale per signal: the median and the
   median absolute deviation (× 1.4826, the normal's sigma). A regime with fewer than
   ``min_regime_rows`` training rows, and a regime never seen in training, use the pooled
   statistics of all training rows (regime index 0, ``"*"``).
2. **Standardised residuals, smoothed.** Each sample's residual ``z_j = (x_j - c_j) / s_j``
   per signal; its square (clipped at ``clip_z²``) is smoothed per signal by an EWMA
   (``alpha``). A missing value (NaN) leaves that signal's EWMA as it was. The **score** is
   the mean of the smoothed squares over the signals (about 1 on normal data), and each
   signal's **contribution** is its share of that sum: which signals made the score, and
   how much. One step costs O(signals) per machine, and :meth:`Scorer.step` scores a whole
   fleet (machines × signals) in one numpy call.
3. **Threshold from a false-alarm rate.** The smoothed score is run over the training rows
   in time order and the threshold is its ``1 - target_far`` quantile: on data like the
   training data, about ``target_far`` of the samples are flagged.
4. **Feedback.** :meth:`Scorer.reject` (a person said the alarm was false) raises that
   machine's threshold above the alarm's peak score (``reject_margin``), at most
   ``max_raise`` times the learned threshold; :meth:`Scorer.confirm` keeps it. Both are
   counted.

Scoring is strictly causal: the score of sample ``i`` depends only on the training rows and
samples ``<= i``.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> model = AnomalyModel.fit(rng.normal(size=(2000, 3)), signals=("a", "b", "c"))
>>> scorer = Scorer(model)
>>> x = rng.normal(size=(200, 3)); x[100:, 1] += 6.0  # signal b drifts
>>> r = [scorer.step(row[None, :]) for row in x]
>>> bool(r[99].flag[0]), bool(r[-1].flag[0]), model.signals[int(np.argmax(r[-1].contrib[0]))]
(False, True, 'b')
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "POOLED",
    "AnomalyConfig",
    "AnomalyModel",
    "RegimeClusters",
    "Scorer",
    "StepResult",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

POOLED = "*"
"""The regime of all training rows together: index 0 of every model's regimes."""

_MAD_SIGMA = 1.4826


@dataclass(frozen=True)
class AnomalyConfig:
    """How a model learns and scores; stored unchanged in the model."""

    alpha: float = 0.05
    """EWMA weight of the newest sample (0 < alpha <= 1)."""
    target_far: float = 0.01
    """The share of training samples whose smoothed score may exceed the threshold."""
    clip_z: float = 10.0
    """A residual counts at most this many scales (one wild sample cannot dominate)."""
    min_regime_rows: int = 30
    """A regime with fewer training rows uses the pooled statistics."""
    min_scale: float = 1e-6
    """The smallest scale (relative to the signal's magnitude): a constant signal in
    training must not make every later wiggle infinite."""
    reject_margin: float = 0.1
    """A rejected alarm raises the threshold to its peak score × (1 + margin)."""
    max_raise: float = 4.0
    """Feedback never raises a threshold above this many times the learned one."""

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"AnomalyConfig.alpha: {self.alpha} not in (0, 1]")
        if not 0.0 < self.target_far < 1.0:
            raise ValueError(f"AnomalyConfig.target_far: {self.target_far} not in (0, 1)")
        if self.clip_z <= 0 or self.min_regime_rows < 1 or self.max_raise < 1.0:
            raise ValueError("AnomalyConfig: clip_z > 0, min_regime_rows >= 1, max_raise >= 1")


@dataclass(frozen=True, eq=False)
class AnomalyModel:
    """Learned normal behaviour of ``M`` machines over the same ``signals`` and ``regimes``.

    ``center`` and ``scale`` are ``(M, R, D)``; ``threshold`` is ``(M,)``. Regime 0 is
    :data:`POOLED`."""

    signals: tuple[str, ...]
    regimes: tuple[str, ...]
    center: F64
    scale: F64
    threshold: F64
    config: AnomalyConfig = field(default_factory=AnomalyConfig)
    train_rows: tuple[int, ...] = ()

    @property
    def machines(self) -> int:
        return int(self.center.shape[0])

    def regime_index(self, labels: Sequence[object] | None, n: int) -> I64:
        """Regime indices for ``labels`` (``None``: all pooled); unknown labels → 0."""
        if labels is None:
            return np.zeros(n, dtype=np.int64)
        pos = {r: i for i, r in enumerate(self.regimes)}
        return np.fromiter((pos.get(str(v), 0) for v in labels), dtype=np.int64, count=n)

    @classmethod
    def fit(
        cls,
        x: npt.ArrayLike,
        regimes: Sequence[object] | None = None,
        *,
        signals: Sequence[str] | None = None,
        config: AnomalyConfig | None = None,
    ) -> AnomalyModel:
        """Learn one machine from training rows ``x`` (``(N, D)``, time order, NaN =
        missing), declared normal, with each row's regime label (``None``: one regime)."""
        cfg = config or AnomalyConfig()
        a = np.asarray(x, dtype=np.float64)
        if a.ndim != 2 or a.shape[0] < 2 or a.shape[1] < 1:
            raise ValueError(f"AnomalyModel.fit: need (rows >= 2, signals >= 1), got {a.shape}")
        n, d = a.shape
        names = tuple(signals) if signals is not None else tuple(f"s{j}" for j in range(d))
        if len(names) != d:
            raise ValueError(f"AnomalyModel.fit: {len(names)} signal names for {d} columns")
        labels = [str(v) for v in regimes] if regimes is not None else None
        if labels is not None and len(labels) != n:
            raise ValueError(f"AnomalyModel.fit: {len(labels)} regime labels for {n} rows")
        kinds = [POOLED, *sorted({v for v in labels or ()} - {POOLED})]
        if np.all(np.isnan(a), axis=0).any():
            empty = [names[j] for j in np.flatnonzero(np.all(np.isnan(a), axis=0))]
            raise ValueError(f"AnomalyModel.fit: no training value for signal(s) {empty}")
        center = np.empty((1, len(kinds), d))
        scale = np.empty((1, len(kinds), d))
        center[0, 0], scale[0, 0] = _robust(a, cfg.min_scale)
        for r, kind in enumerate(kinds[1:], start=1):
            rows = a[np.fromiter((v == kind for v in labels or ()), dtype=bool, count=n)]
            ok = np.sum(~np.isnan(rows), axis=0) >= cfg.min_regime_rows
            c, s = _robust(rows, cfg.min_scale) if rows.shape[0] else (center[0, 0], scale[0, 0])
            center[0, r] = np.where(ok, c, center[0, 0])
            scale[0, r] = np.where(ok, s, scale[0, 0])
        model = cls(names, tuple(kinds), center, scale, np.array([np.inf]), cfg, (n,))
        idx = model.regime_index(labels, n)
        scorer = Scorer(model)
        scores = np.array([scorer.step(a[i : i + 1], idx[i : i + 1]).score[0] for i in range(n)])
        thr = float(np.quantile(scores, 1.0 - cfg.target_far))
        model.threshold[0] = max(thr, 1e-9)
        return model

    @classmethod
    def stack(cls, models: Sequence[AnomalyModel]) -> AnomalyModel:
        """Many machines' models as one, to score a fleet in one call. They must share the
        signals (in order) and the config; their regimes are merged (a machine that did not
        see a regime uses its pooled statistics there)."""
        if not models:
            raise ValueError("AnomalyModel.stack: no models")
        first = models[0]
        for m in models[1:]:
            if m.signals != first.signals or m.config != first.config:
                raise ValueError("AnomalyModel.stack: models differ in signals or config")
        kinds = [POOLED, *sorted({r for m in models for r in m.regimes} - {POOLED})]
        pos = {r: i for i, r in enumerate(kinds)}
        d = len(first.signals)
        center = np.empty((len(models), len(kinds), d))
        scale = np.empty((len(models), len(kinds), d))
        for i, m in enumerate(models):
            if m.machines != 1:
                raise ValueError("AnomalyModel.stack: stack single-machine models")
            center[i, :] = m.center[0, 0]
            scale[i, :] = m.scale[0, 0]
            for r, kind in enumerate(m.regimes):
                center[i, pos[kind]] = m.center[0, r]
                scale[i, pos[kind]] = m.scale[0, r]
        thr = np.concatenate([m.threshold for m in models])
        rows = tuple(t for m in models for t in m.train_rows)
        return cls(first.signals, tuple(kinds), center, scale, thr, first.config, rows)

    def to_json(self) -> dict[str, Any]:
        """A JSON object (lists of floats) that :meth:`from_json` reads back exactly."""
        return {
            "signals": list(self.signals),
            "regimes": list(self.regimes),
            "center": self.center.tolist(),
            "scale": self.scale.tolist(),
            "threshold": self.threshold.tolist(),
            "config": {k: getattr(self.config, k) for k in self.config.__dataclass_fields__},
            "train_rows": list(self.train_rows),
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> AnomalyModel:
        return cls(
            tuple(obj["signals"]),
            tuple(obj["regimes"]),
            np.asarray(obj["center"], dtype=np.float64),
            np.asarray(obj["scale"], dtype=np.float64),
            np.asarray(obj["threshold"], dtype=np.float64),
            AnomalyConfig(**obj["config"]),
            tuple(obj.get("train_rows", ())),
        )


def _robust(a: F64, min_scale: float) -> tuple[F64, F64]:
    with warnings.catch_warnings():  # an all-NaN column of a regime: the pooled one serves
        warnings.simplefilter("ignore", RuntimeWarning)
        c = np.nanmedian(a, axis=0)
        s = np.nanmedian(np.abs(a - c), axis=0) * _MAD_SIGMA
        sd = np.nanstd(a, axis=0)
    c = np.nan_to_num(c)
    # MAD is 0 for a signal that mostly holds one value; fall back on its deviation, then
    # on a floor relative to its magnitude.
    s = np.where(np.isfinite(s) & (s > 0), s, np.nan_to_num(sd))
    floor = min_scale * np.maximum(1.0, np.abs(c))
    return c, np.maximum(s, floor)


@dataclass(frozen=True)
class StepResult:
    """One step for ``M`` machines: ``score`` and ``flag`` ``(M,)``, ``contrib`` ``(M, D)``
    (each row sums to 1 where the score is above 0)."""

    score: F64
    flag: npt.NDArray[np.bool_]
    contrib: F64


class Scorer:
    """The streaming state of a fleet: one EWMA per machine and signal, the thresholds now
    (after feedback), and the feedback counts."""

    def __init__(self, model: AnomalyModel) -> None:
        self.model = model
        m, _, d = model.center.shape
        self.ewma = np.full((m, d), np.nan)
        self.threshold = model.threshold.astype(np.float64).copy()
        self.rejected = np.zeros(m, dtype=np.int64)
        self.confirmed = np.zeros(m, dtype=np.int64)
        self.samples = 0
        self._rows = np.arange(m)
        self._clip2 = model.config.clip_z**2

    def step(self, x: npt.ArrayLike, regime: npt.ArrayLike | None = None) -> StepResult:
        """Score one sample per machine: ``x`` ``(M, D)`` (NaN = missing), ``regime`` ``(M,)``
        regime indices (``model.regime_index``; ``None``: pooled)."""
        a = np.asarray(x, dtype=np.float64)
        mdl = self.model
        if a.shape != self.ewma.shape:
            raise ValueError(f"Scorer.step: x is {a.shape}, expected {self.ewma.shape}")
        if regime is None:
            c, s = mdl.center[:, 0], mdl.scale[:, 0]
        else:
            r = np.asarray(regime, dtype=np.int64)
            c, s = mdl.center[self._rows, r], mdl.scale[self._rows, r]
        z2 = np.minimum(((a - c) / s) ** 2, self._clip2)
        alpha = mdl.config.alpha
        prev = self.ewma
        new = np.where(np.isnan(prev), z2, prev + alpha * (z2 - prev))
        self.ewma = np.where(np.isnan(z2), prev, new)
        e = np.nan_to_num(self.ewma)
        total = e.sum(axis=1)
        score = total / e.shape[1]
        with np.errstate(invalid="ignore", divide="ignore"):
            contrib = np.where(total[:, None] > 0, e / total[:, None], 0.0)
        self.samples += 1
        return StepResult(score, score > self.threshold, contrib)

    def reject(self, machine: int, peak_score: float) -> float:
        """A person said the alarm on ``machine`` (peak smoothed score ``peak_score``) was
        false: raise its threshold above that peak (capped); returns the new threshold."""
        cfg = self.model.config
        cap = float(self.model.threshold[machine]) * cfg.max_raise
        want = max(float(self.threshold[machine]), peak_score * (1.0 + cfg.reject_margin))
        self.threshold[machine] = min(want, cap) if math.isfinite(want) else cap
        self.rejected[machine] += 1
        return float(self.threshold[machine])

    def confirm(self, machine: int) -> float:
        """A person confirmed the alarm: the threshold stays; returns it."""
        self.confirmed[machine] += 1
        return float(self.threshold[machine])


@dataclass(frozen=True, eq=False)
class RegimeClusters:
    """Operating regimes as clusters of operating settings (k-means on the standardised
    settings; ``labels`` are ``"r0"``, ``"r1"``, ...), when no categorical names them.

    >>> import numpy as np
    >>> s = np.r_[np.zeros((50, 2)), np.ones((50, 2)) * 10]
    >>> rc = RegimeClusters.fit(s, k=2)
    >>> sorted(set(rc.assign(s)))
    ['r0', 'r1']
    """

    mean: F64
    std: F64
    centroids: F64

    @classmethod
    def fit(cls, settings: npt.ArrayLike, k: int, *, iterations: int = 50) -> RegimeClusters:
        a = np.asarray(settings, dtype=np.float64)
        if a.ndim != 2 or a.shape[0] < k or k < 1 or np.isnan(a).any():
            raise ValueError(f"RegimeClusters.fit: need (rows >= k, settings), no NaN; {a.shape}")
        mean = a.mean(axis=0)
        std = np.where(a.std(axis=0) > 0, a.std(axis=0), 1.0)
        z = (a - mean) / std
        # deterministic start: farthest-point seeding from the first row
        cent = [z[0]]
        for _ in range(1, k):
            d2 = np.min([((z - c) ** 2).sum(axis=1) for c in cent], axis=0)
            cent.append(z[int(np.argmax(d2))])
        cen = np.array(cent)
        for _ in range(iterations):
            lab = np.argmin(((z[:, None, :] - cen[None]) ** 2).sum(axis=2), axis=1)
            new = np.array(
                [z[lab == j].mean(axis=0) if (lab == j).any() else cen[j] for j in range(k)]
            )
            if np.allclose(new, cen):
                break
            cen = new
        order = np.lexsort(cen.T[::-1])
        return cls(mean, std, cen[order])

    def assign(self, settings: npt.ArrayLike) -> list[str]:
        z = (np.asarray(settings, dtype=np.float64) - self.mean) / self.std
        lab = np.argmin(((z[:, None, :] - self.centroids[None]) ** 2).sum(axis=2), axis=1)
        return [f"r{int(j)}" for j in lab]
