"""Remaining useful life from run-to-failure histories, robust to several operating regimes.

The model (decision 0903):

1. **Regimes** from the operating settings: k-means on the settings (each standardised, the
   constant ones left out) for k = 1, 2, ...; the first k whose clusters explain all but
   ``regime_tolerance`` of the settings' variance is taken (1 when the settings are noise
   around one point, as in FD001; 6 for FD002/FD004).
2. **Per-regime normalisation**: each sensor is standardised with its mean and deviation in
   the row's regime; sensors that take at most two values in every regime are dropped.
3. **A health index**: a least-squares line from the normalised sensors to the capped
   target, one more channel beside the sensors.
4. **Windowed features** per unit, causal (row t sees rows <= t only): the last value, rolling
   means and least-squares slopes over several windows, the mean since the first cycle, the
   recent mean minus the unit's own early-life mean (engines start with different wear), and
   the cycle.
5. **Gradient boosting** (LightGBM) on the capped target, an ensemble over ``seeds``, plus
   two quantile models for the band (p10, p90 by default).

>>> from andon.pdm.synthetic import simulate_fleet, truncated_fleet
>>> config = RulConfig(seeds=(0,), n_estimators=40, quantile_estimators=20, threads=1)
>>> model = RulModel.fit(simulate_fleet(units=12, regimes=6, seed=1), config)
>>> model.regimes.k
6
>>> test, truth = truncated_fleet(units=3, regimes=6, seed=2)
>>> p = model.predict(test)
>>> bool(((p.low <= p.rul) & (p.rul <= p.high)).all())
True
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt

from andon.pdm.cmapss import N_SENSORS, RUL_CAP, Fleet, rul_targets

__all__ = [
    "MODEL_FORMAT",
    "MODEL_VERSION",
    "ModelFormatError",
    "Normaliser",
    "Prediction",
    "Progress",
    "Regimes",
    "RulConfig",
    "RulModel",
    "find_regimes",
    "window_features",
]

MODEL_FORMAT = "andon.pdm.rul"
MODEL_VERSION = 1
"""Bumped whenever the saved layout or the meaning of a field changes; ``load`` refuses others."""

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Progress = Callable[[str, int, int], None]
"""``progress(step, done, total)``: called while fitting (the CLI draws it)."""


class ModelFormatError(ValueError):
    """A model file that is not ours, or of another format version."""


@dataclass(frozen=True)
class RulConfig:
    """Everything that shapes a model; saved with it."""

    cap: float = RUL_CAP
    per_regime: bool = True
    """False: one normalisation for all rows (to measure what the regimes bring)."""
    max_regimes: int = 8
    regime_tolerance: float = 1e-3
    """The share of the settings' variance left within clusters at which k is accepted."""
    windows: tuple[int, ...] = (5, 10, 20, 30)
    slope_windows: tuple[int, ...] = (10, 20, 40)
    baseline_cycles: int = 20
    health_index: bool = True
    seeds: tuple[int, ...] = (0, 1, 2)
    n_estimators: int = 300
    learning_rate: float = 0.05
    num_leaves: int = 15
    min_child_samples: int = 60
    feature_fraction: float = 0.5
    bagging_fraction: float = 0.8
    quantiles: tuple[float, float] = (0.1, 0.9)
    quantile_estimators: int = 150
    threads: int = 1
    """LightGBM threads (0: one per core). One by default: on a loaded machine OpenMP's
    spinning threads made fitting ten times slower (100 trees: 9.6 s on one thread, 99 s on
    two, 2 cores at load 12)."""

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ValueError("seeds: at least one")
        if not 0 < self.quantiles[0] < self.quantiles[1] < 1:
            raise ValueError("quantiles: two levels with 0 < low < high < 1")
        if min((*self.windows, *self.slope_windows, self.baseline_cycles)) < 1:
            raise ValueError("windows: at least one cycle each")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RulConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ModelFormatError(f"unknown config fields {unknown}")
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**values)


# --- regimes ---------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Regimes:
    """Cluster centres in standardised settings; ``assign`` gives each row its nearest."""

    mean: FloatArray
    scale: FloatArray
    """Per setting; 0 for a constant setting (left out of the distance)."""
    centres: FloatArray

    @property
    def k(self) -> int:
        return len(self.centres)

    def _standard(self, settings: FloatArray) -> FloatArray:
        used = self.scale > 0
        return (settings[:, used] - self.mean[used]) / self.scale[used]

    def assign(self, settings: FloatArray) -> IntArray:
        if self.k == 1:
            return np.zeros(len(settings), dtype=np.int64)
        z = self._standard(settings)
        d = ((z[:, None, :] - self.centres[None, :, :]) ** 2).sum(axis=2)
        labels: IntArray = np.argmin(d, axis=1).astype(np.int64)
        return labels

    def as_dict(self) -> dict[str, Any]:
        return {
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "centres": self.centres.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Regimes:
        return cls(
            mean=np.asarray(d["mean"], dtype=np.float64),
            scale=np.asarray(d["scale"], dtype=np.float64),
            centres=np.asarray(d["centres"], dtype=np.float64).reshape(len(d["centres"]), -1),
        )


def _kmeans(z: FloatArray, k: int, rng: np.random.Generator, iters: int = 50) -> FloatArray:
    """Lloyd's k-means with k-means++ seeding; returns the centres."""
    centres = [z[rng.integers(len(z))]]
    for _ in range(1, k):
        d = np.min(((z[:, None, :] - np.asarray(centres)[None]) ** 2).sum(axis=2), axis=1)
        total = d.sum()
        if total <= 0:
            break  # fewer distinct points than k
        centres.append(z[rng.choice(len(z), p=d / total)])
    c = np.asarray(centres)
    for _ in range(iters):
        label = np.argmin(((z[:, None, :] - c[None]) ** 2).sum(axis=2), axis=1)
        new = np.asarray(
            [z[label == j].mean(axis=0) if np.any(label == j) else c[j] for j in range(len(c))]
        )
        if np.allclose(new, c):
            break
        c = new
    return c


def find_regimes(
    settings: FloatArray, max_k: int = 8, tolerance: float = 1e-3, seed: int = 0
) -> Regimes:
    """The operating regimes of ``settings`` (rows x settings): the smallest k whose
    k-means clusters leave at most ``tolerance`` of the (standardised) variance within
    clusters; 1 when none does (the settings vary, but not in separate clusters)."""
    s = np.asarray(settings, dtype=np.float64)
    mean = s.mean(axis=0)
    scale = s.std(axis=0)
    scale[scale < 1e-12 * (1.0 + np.abs(mean))] = 0.0
    one = Regimes(mean=mean, scale=scale, centres=np.zeros((1, int((scale > 0).sum()))))
    if not np.any(scale > 0) or max_k < 2:
        return one
    z = one._standard(s)
    rng = np.random.default_rng(seed)
    sample = z if len(z) <= 2000 else z[rng.choice(len(z), 2000, replace=False)]
    total = float(((sample - sample.mean(axis=0)) ** 2).sum())
    for k in range(2, max_k + 1):
        best: FloatArray | None = None
        best_within = math.inf
        for _ in range(4):  # restarts
            c = _kmeans(sample, k, rng)
            within = float(((sample[:, None, :] - c[None]) ** 2).sum(axis=2).min(axis=1).sum())
            if within < best_within:
                best, best_within = c, within
        if best is not None and best_within <= tolerance * total:
            order = np.lexsort(best.T[::-1])  # a stable numbering of the regimes
            return Regimes(mean=mean, scale=scale, centres=best[order])
    return one


# --- normalisation ---------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Normaliser:
    """Per regime, each kept sensor's mean and deviation."""

    kept: IntArray
    """Indices (0-based) of the sensors kept; the others are (near) constant."""
    mean: FloatArray
    """Shape (regimes, kept)."""
    std: FloatArray

    @classmethod
    def fit(cls, sensors: FloatArray, regime: IntArray, k: int) -> Normaliser:
        informative = np.zeros(sensors.shape[1], dtype=bool)
        for r in range(k):
            rows = sensors[regime == r]
            for j in range(sensors.shape[1]):
                if len(np.unique(rows[:, j])) > 2:
                    informative[j] = True
        kept = np.flatnonzero(informative).astype(np.int64)
        mean = np.zeros((k, len(kept)))
        std = np.ones((k, len(kept)))
        for r in range(k):
            rows = sensors[regime == r][:, kept]
            if len(rows):
                mean[r] = rows.mean(axis=0)
                sd = rows.std(axis=0)
                std[r] = np.where(sd > 0, sd, 1.0)
        return cls(kept=kept, mean=mean, std=std)

    def transform(self, sensors: FloatArray, regime: IntArray) -> FloatArray:
        x = sensors[:, self.kept]
        return (x - self.mean[regime]) / self.std[regime]

    def as_dict(self) -> dict[str, Any]:
        return {"kept": self.kept.tolist(), "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normaliser:
        kept = np.asarray(d["kept"], dtype=np.int64)
        k = len(d["mean"])
        return cls(
            kept=kept,
            mean=np.asarray(d["mean"], dtype=np.float64).reshape(k, len(kept)),
            std=np.asarray(d["std"], dtype=np.float64).reshape(k, len(kept)),
        )


# --- features --------------------------------------------------------------------------------
def _window_sums(c: FloatArray, w: int) -> tuple[FloatArray, FloatArray]:
    """From a cumulative sum with a leading zero row (T+1 rows), the sum over the last
    ``min(w, t+1)`` rows at each t, and that count."""
    t = np.arange(1, len(c))
    lo = np.maximum(t - w, 0)
    return c[t] - c[lo], (t - lo).astype(np.float64)


def window_features(
    z: FloatArray,
    starts: IntArray,
    ends: IntArray,
    cycle: IntArray,
    names: list[str],
    config: RulConfig,
) -> tuple[FloatArray, list[str]]:
    """The causal windowed features of every row (see the module docstring)."""
    s = z.shape[1]
    cols: list[tuple[str, FloatArray]] = []
    blocks: list[FloatArray] = []
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        zu = z[a:b]
        t_len = b - a
        x = np.arange(t_len, dtype=np.float64)[:, None]
        c0 = np.vstack([np.zeros((1, s)), np.cumsum(zu, axis=0)])
        cx = np.concatenate([[0.0], np.cumsum(x[:, 0])])[:, None]
        cxx = np.concatenate([[0.0], np.cumsum(x[:, 0] ** 2)])[:, None]
        cxy = np.vstack([np.zeros((1, s)), np.cumsum(x * zu, axis=0)])
        cols = [("last", zu)]
        for w in config.windows:
            sy, cnt = _window_sums(c0, w)
            cols.append((f"mean{w}", sy / cnt[:, None]))
        for w in config.slope_windows:
            sy, cnt = _window_sums(c0, w)
            sx, _ = _window_sums(cx, w)
            sxx, _ = _window_sums(cxx, w)
            sxy, _ = _window_sums(cxy, w)
            k = cnt[:, None]
            den = k * sxx - sx * sx
            slope = np.where(den > 0, (k * sxy - sx * sy) / np.where(den > 0, den, 1.0), 0.0)
            cols.append((f"slope{w}", slope))
        hist = c0[1:] / np.arange(1, t_len + 1, dtype=np.float64)[:, None]
        cols.append(("mean_all", hist))
        nb = np.minimum(np.arange(1, t_len + 1), config.baseline_cycles)
        base = c0[nb] / nb[:, None]
        recent, cnt = _window_sums(c0, config.windows[min(1, len(config.windows) - 1)])
        cols.append(("drift", recent / cnt[:, None] - base))
        blocks.append(np.hstack([v for _, v in cols]))
    out_names = [f"{kind}_{name}" for kind, _ in cols for name in names]
    x_all = np.vstack(blocks) if blocks else np.zeros((0, len(out_names)))
    x_all = np.hstack([x_all, cycle[:, None].astype(np.float64)])
    return x_all, [*out_names, "cycle"]


# --- the model -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prediction:
    """One row per unit at its last cycle."""

    units: IntArray
    rul: FloatArray
    low: FloatArray
    high: FloatArray

    def rows(self) -> list[tuple[int, float, float, float]]:
        return [
            (int(u), float(r), float(lo), float(hi))
            for u, r, lo, hi in zip(self.units, self.rul, self.low, self.high, strict=True)
        ]


@dataclass(eq=False)
class RulModel:
    """A fitted model: ``RulModel.fit(fleet)``, ``predict(fleet)``, ``save``/``load``."""

    config: RulConfig
    regimes: Regimes
    normaliser: Normaliser
    health: FloatArray
    """Health-index weights (intercept last) over the kept sensors."""
    feature_names: list[str]
    boosters: list[lgb.Booster]
    quantile_boosters: list[lgb.Booster]
    train_rows: int = 0
    train_units: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    # features ------------------------------------------------------------------------------
    def _channels(self, fleet: Fleet) -> tuple[FloatArray, list[str]]:
        regime = self.regimes.assign(fleet.settings)
        z = self.normaliser.transform(fleet.sensors, regime)
        names = [f"s{j + 1}" for j in self.normaliser.kept]
        if self.config.health_index:
            hi = z @ self.health[:-1] + self.health[-1]
            z = np.hstack([z, hi[:, None]])
            names.append("hi")
        return z, names

    def names(self) -> list[str]:
        """The feature names, in the order of ``features``' columns."""
        channels = [f"s{j + 1}" for j in self.normaliser.kept]
        channels += ["hi"] if self.config.health_index else []
        one = np.ones(1, dtype=np.int64)
        z = np.zeros((1, len(channels)))
        return window_features(z, one - 1, one, one, channels, self.config)[1]

    def features(self, fleet: Fleet) -> FloatArray:
        z, names = self._channels(fleet)
        starts, ends = fleet.unit_bounds()
        x, _ = window_features(z, starts, ends, fleet.cycle, names, self.config)
        return x

    # fitting -------------------------------------------------------------------------------
    @classmethod
    def fit(
        cls, fleet: Fleet, config: RulConfig | None = None, progress: Progress | None = None
    ) -> RulModel:
        """Fit on a run-to-failure fleet (each unit's last cycle is its failure)."""
        cfg = config or RulConfig()
        if len(fleet) == 0:
            raise ValueError(f"{fleet.source}: no rows to fit on")
        report = progress or (lambda _step, _done, _total: None)
        total = len(cfg.seeds) + 2 + 1
        report("regimes", 0, total)
        if cfg.per_regime:
            regimes = find_regimes(fleet.settings, cfg.max_regimes, cfg.regime_tolerance)
        else:
            regimes = find_regimes(fleet.settings, max_k=1)
        regime = regimes.assign(fleet.settings)
        normaliser = Normaliser.fit(fleet.sensors, regime, regimes.k)
        if len(normaliser.kept) == 0:
            raise ValueError(f"{fleet.source}: every sensor is constant, nothing to learn from")
        y = rul_targets(fleet, cfg.cap)
        z = normaliser.transform(fleet.sensors, regime)
        a = np.hstack([z, np.ones((len(z), 1))])
        health = np.asarray(np.linalg.lstsq(a, y, rcond=None)[0], dtype=np.float64)
        model = cls(
            config=cfg,
            regimes=regimes,
            normaliser=normaliser,
            health=health,
            feature_names=[],
            boosters=[],
            quantile_boosters=[],
            train_rows=len(fleet),
            train_units=len(fleet.units),
        )
        x = model.features(fleet)
        model.feature_names = model.names()
        report("features", 1, total)
        data = lgb.Dataset(x, label=y, feature_name=model.feature_names, free_raw_data=False)
        for i, seed in enumerate(cfg.seeds):
            model.boosters.append(
                lgb.train(_params(cfg, seed, "regression"), data, cfg.n_estimators)
            )
            report(f"seed {seed}", 2 + i, total)
        for j, q in enumerate(cfg.quantiles):
            params = _params(cfg, cfg.seeds[0], "quantile") | {"alpha": q}
            model.quantile_boosters.append(lgb.train(params, data, cfg.quantile_estimators))
            report(f"p{round(q * 100)}", 2 + len(cfg.seeds) + j, total)
        report("done", total, total)
        return model

    # predicting ----------------------------------------------------------------------------
    def predict_rows(self, fleet: Fleet) -> FloatArray:
        """The point estimate at every row (each row seeing its unit's rows up to it)."""
        x = self.features(fleet)
        return self._point(x)

    def _point(self, x: FloatArray) -> FloatArray:
        p = np.mean([b.predict(x, num_threads=self.config.threads) for b in self.boosters], axis=0)
        return np.clip(np.asarray(p, dtype=np.float64), 0.0, self.config.cap)

    def predict(self, fleet: Fleet) -> Prediction:
        """One estimate per unit at its last cycle, with the band (low <= rul <= high)."""
        x = self.features(fleet)[fleet.last_rows()]
        rul = self._point(x)
        qs = [
            np.clip(np.asarray(b.predict(x, num_threads=self.config.threads)), 0, self.config.cap)
            for b in self.quantile_boosters
        ]
        low = np.minimum(qs[0], rul)
        high = np.maximum(qs[1], rul)
        return Prediction(units=fleet.units, rul=rul, low=low, high=high)

    # files ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": MODEL_FORMAT,
            "version": MODEL_VERSION,
            "lightgbm": lgb.__version__,
            "config": asdict(self.config),
            "regimes": self.regimes.as_dict(),
            "normaliser": self.normaliser.as_dict(),
            "health": self.health.tolist(),
            "feature_names": self.feature_names,
            "train_rows": self.train_rows,
            "train_units": self.train_units,
            "extra": self.extra,
            "boosters": [b.model_to_string() for b in self.boosters],
            "quantile_boosters": [b.model_to_string() for b in self.quantile_boosters],
        }

    def save(self, path: str | Path) -> None:
        """Write the model as gzip-compressed JSON (the boosters in LightGBM's text format)."""
        with gzip.open(Path(path), "wt", encoding="utf-8") as f:
            json.dump(self.to_dict(), f)

    @classmethod
    def load(cls, path: str | Path) -> RulModel:
        """Read a model ``save`` wrote; refuse another format or format version."""
        p = Path(path)
        try:
            with gzip.open(p, "rt", encoding="utf-8") as f:
                d = json.load(f)
        except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ModelFormatError(f"{p}: not an andon RUL model ({e})") from None
        if not isinstance(d, dict) or d.get("format") != MODEL_FORMAT:
            raise ModelFormatError(f"{p}: not an andon RUL model")
        if d.get("version") != MODEL_VERSION:
            raise ModelFormatError(
                f"{p}: model format version {d.get('version')!r}, this andon reads "
                f"version {MODEL_VERSION} only: fit the model again"
            )
        try:
            return cls(
                config=RulConfig.from_dict(d["config"]),
                regimes=Regimes.from_dict(d["regimes"]),
                normaliser=Normaliser.from_dict(d["normaliser"]),
                health=np.asarray(d["health"], dtype=np.float64),
                feature_names=list(d["feature_names"]),
                boosters=[lgb.Booster(model_str=s) for s in d["boosters"]],
                quantile_boosters=[lgb.Booster(model_str=s) for s in d["quantile_boosters"]],
                train_rows=int(d["train_rows"]),
                train_units=int(d["train_units"]),
                extra=dict(d.get("extra", {})),
            )
        except (KeyError, TypeError, ValueError, lgb.basic.LightGBMError) as e:
            raise ModelFormatError(f"{p}: a damaged model file ({e!r})") from None


def _params(cfg: RulConfig, seed: int, objective: str) -> dict[str, Any]:
    return {
        "objective": objective,
        "learning_rate": cfg.learning_rate,
        "num_leaves": cfg.num_leaves,
        "min_child_samples": cfg.min_child_samples,
        "feature_fraction": cfg.feature_fraction,
        "bagging_fraction": cfg.bagging_fraction,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": cfg.threads,
        "verbosity": -1,
    }


assert N_SENSORS == 21  # the normaliser's sensor numbering (s1..s21) assumes the C-MAPSS layout
