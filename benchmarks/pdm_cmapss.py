"""Remaining useful life on NASA C-MAPSS FD001 and FD003 (issue 15: RMSE <= 12.0 each).

    .venv/bin/python benchmarks/pdm_cmapss.py ../shared/data/cmapss [--subsets FD001,FD003]

For each subset: ``RulModel.fit`` on ``train_FD00x`` with the default configuration (the one
``andon pdm rul fit`` uses), one prediction per test unit at its last cycle, RMSE and the
asymmetric score against ``RUL_FD00x`` capped at 125 cycles, the share of units whose capped
truth lies in the p10-p90 band, and the fit time. The peer is a plain gradient-boosting
baseline: LightGBM (300 trees, learning rate 0.05, one thread) on the raw settings and
sensors of each row alone, with the same capped target.

Prints one JSON object per figure; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
from rich.console import Console

from andon.pdm.cmapss import Fleet, evaluate, read_cmapss, read_rul, rul_targets
from andon.pdm.rul import RulConfig, RulModel

err = Console(stderr=True)
PEER = "plain GBM on raw last-cycle features"


def machine() -> str:
    return (
        f"{os.cpu_count()} cpu, {platform.machine()}, {platform.system()}, "
        f"python {platform.python_version()}, lightgbm {lgb.__version__}, 1 thread"
    )


def emit(figure: str, value: float, unit: str, peer_value: float | None = None) -> None:
    row: dict[str, object] = {"figure": figure, "value": round(value, 4), "unit": unit}
    if peer_value is not None:
        row |= {"peer": PEER, "peer_value": round(peer_value, 4)}
    print(json.dumps(row | {"machine": machine()}), flush=True)


def _raw(fleet: Fleet) -> np.ndarray:
    return np.hstack([fleet.settings, fleet.sensors])


def baseline(train: Fleet, test: Fleet) -> np.ndarray:
    params = {"objective": "regression", "learning_rate": 0.05, "num_threads": 1}
    data = lgb.Dataset(_raw(train), label=rul_targets(train))
    booster = lgb.train(params | {"verbosity": -1, "seed": 0}, data, 300)
    return np.asarray(booster.predict(_raw(test)[test.last_rows()]), dtype=np.float64)


def run(data: Path, subset: str) -> None:
    name = subset.lower()
    train = read_cmapss(data / f"train_{subset}.txt.gz")
    test = read_cmapss(data / f"test_{subset}.txt.gz")
    truth = read_rul(data / f"RUL_{subset}.txt.gz")
    err.print(f"{subset}: {len(train)} train rows, {len(test.units)} test units: fitting")
    started = time.perf_counter()
    model = RulModel.fit(train, RulConfig())
    fit_s = time.perf_counter() - started
    p = model.predict(test)
    ours = evaluate(p.rul, truth)
    peer = evaluate(baseline(train, test), truth)
    capped = np.minimum(truth, model.config.cap)
    covered = float(np.mean((p.low <= capped) & (capped <= p.high)))
    emit(f"pdm.rul.{name}.rmse", ours.rmse, "cycles", peer.rmse)
    emit(f"pdm.rul.{name}.score", ours.score, "score", peer.score)
    emit(f"pdm.rul.{name}.mean_error", ours.mean_error, "cycles", peer.mean_error)
    emit(f"pdm.rul.{name}.band_coverage", covered, "share of units in p10-p90")
    emit(f"pdm.rul.{name}.regimes", float(model.regimes.k), "regimes")
    emit(f"pdm.rul.{name}.fit_s", fit_s, "s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("data", type=Path, help="directory with train/test/RUL_FD00x.txt.gz")
    ap.add_argument("--subsets", default="FD001,FD003")
    args = ap.parse_args()
    if not args.data.is_dir():
        sys.exit(f"{args.data}: not a directory")
    for subset in args.subsets.split(","):
        run(args.data, subset.strip())


if __name__ == "__main__":
    main()
