"""The twin: the discrete-event engine and the line model (the simulation twin's core), the
compiled fast path for serial lines, experiments, bottleneck detection and calibration.

Public API: :func:`replicate` (replications with confidence intervals), :func:`compare`
(scenarios with common random numbers), :func:`analyse` (bottlenecks of a state timeline),
:func:`calibrate_line` (fit a twin from the store), :func:`optimise_buffers`.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from andon.twin.engine import Engine, Event
from andon.twin.line import BufferRuntime, FactoryModel, LineListener, MachineRuntime

# The line model is imported by the virtual factory; the rest (NumPy/Numba/SciPy-heavy) is
# loaded on first use so that ``andon demo`` does not pay for it.
_LAZY = {
    "BottleneckReport": "bottleneck",
    "analyse": "bottleneck",
    "timeline_batch": "bottleneck",
    "Calibration": "calibrate",
    "calibrate_line": "calibrate",
    "fit_line": "calibrate",
    "Change": "experiment",
    "Comparison": "experiment",
    "Scenario": "experiment",
    "apply_scenario": "experiment",
    "compare": "experiment",
    "load_scenario": "experiment",
    "mser5": "experiment",
    "optimise_buffers": "experiment",
    "warmup_hours": "experiment",
    "Estimate": "run",
    "Replications": "run",
    "predict_parts": "run",
    "replicate": "run",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"andon.twin.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'andon.twin' has no attribute {name!r}")


__all__ = [
    "BottleneckReport",
    "BufferRuntime",
    "Calibration",
    "Change",
    "Comparison",
    "Engine",
    "Estimate",
    "Event",
    "FactoryModel",
    "LineListener",
    "MachineRuntime",
    "Replications",
    "Scenario",
    "analyse",
    "apply_scenario",
    "calibrate_line",
    "compare",
    "fit_line",
    "load_scenario",
    "mser5",
    "optimise_buffers",
    "predict_parts",
    "replicate",
    "timeline_batch",
    "warmup_hours",
]
