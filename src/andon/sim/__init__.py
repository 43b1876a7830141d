"""The virtual factory: the twin's line model with physical signals, meters, environment and
ground truth, and its protocol servers (``andon.sim.servers``). It imports nothing above the
twin; ``andon.demo`` runs it into the store through the production path."""

from andon.sim.factory import Flush, VirtualFactory

__all__ = ["Flush", "VirtualFactory"]
