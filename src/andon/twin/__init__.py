"""The twin: the discrete-event engine and the line model (the simulation twin's core)."""

from andon.twin.engine import Engine, Event
from andon.twin.line import BufferRuntime, FactoryModel, LineListener, MachineRuntime

__all__ = ["BufferRuntime", "Engine", "Event", "FactoryModel", "LineListener", "MachineRuntime"]
