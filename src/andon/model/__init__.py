"""The asset model: tenant › site › area › line › machine › signal, and the core value types."""

from andon.model.types import (
    US_PER_S,
    MachineState,
    Micros,
    PartBatch,
    Quality,
    SampleBatch,
    StateBatch,
    TextBatch,
    from_micros,
    to_micros,
)

__all__ = [
    "US_PER_S",
    "MachineState",
    "Micros",
    "PartBatch",
    "Quality",
    "SampleBatch",
    "StateBatch",
    "TextBatch",
    "from_micros",
    "to_micros",
]
