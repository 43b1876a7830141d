"""The virtual factory: the twin's line model with physical signals, meters, environment and
ground truth; ``andon demo`` runs it into the store."""

from andon.sim.clock import Clock, ManualClock, WallClock
from andon.sim.demo import DemoRun, default_start, run_headless, run_live
from andon.sim.factory import Flush, VirtualFactory

__all__ = [
    "Clock",
    "DemoRun",
    "Flush",
    "ManualClock",
    "VirtualFactory",
    "WallClock",
    "default_start",
    "run_headless",
    "run_live",
]
