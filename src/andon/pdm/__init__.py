"""``andon.pdm``: predictive maintenance, one implementation for apps and the command line.

A standalone package (decision 0903): it imports numpy, scipy and LightGBM, nothing else of
andon, so an app (which may import only ``andon.sdk`` and this) and ``andon pdm`` share it.

* ``andon.pdm.cmapss``: the NASA C-MAPSS text format, the capped target, RMSE and the score.
* ``andon.pdm.rul``: the remaining-useful-life model (``RulModel``), imported on its own
  since it loads LightGBM.
* ``andon.pdm.synthetic``: a degradation simulator writing C-MAPSS-shaped fleets.
* ``andon.pdm.anomaly``: anomaly scoring in stream per operating regime, with per-signal
  contributions, a threshold from a target false-alarm rate and feedback (numpy only).
"""

from __future__ import annotations

from andon.pdm.anomaly import AnomalyConfig, AnomalyModel, RegimeClusters, Scorer
from andon.pdm.cmapss import (
    RUL_CAP,
    CmapssError,
    Evaluation,
    Fleet,
    evaluate,
    read_cmapss,
    read_rul,
    rul_targets,
    score,
)

__all__ = [
    "RUL_CAP",
    "AnomalyConfig",
    "AnomalyModel",
    "CmapssError",
    "Evaluation",
    "Fleet",
    "RegimeClusters",
    "Scorer",
    "evaluate",
    "read_cmapss",
    "read_rul",
    "rul_targets",
    "score",
]
