"""MTConnect agent reader: ``probe`` for the data items, ``current`` to start, then ``sample``
from the next sequence number, detecting gaps (the agent's buffer overran the reader) and
agent restarts (a new ``instanceId``). The cursor is ``instanceId:nextSequence``.

HTTP is ``httpx`` (chunked answers, ``https://`` verified against ``ca_file`` or the system
store, ``timeout_s`` on every request). After a buffer overrun the agent answers with an error
document that has no sequence numbers; the reader then asks ``/current`` where the buffer
starts, counts the observations lost in between (``sequence_gap``) and reads on from there.
Numbers and ``UNAVAILABLE`` (a bad sample) are read as such; a condition is its level
(``Normal`` 0, ``Warning`` 1, ``Fault`` 2, good quality); a vector (a 3-D position) is one
signal per component (``<path>/x``, ``/y``, ``/z``). An event's text (``Execution``
``ACTIVE``, a program name) is a text value, an event's ``UNAVAILABLE`` a bad text value
unless the event was numeric (decision 0202). Text in a sample, time series and an
observation with a bad timestamp or sequence are refused one by one, counted per reason in
the connector's health, and the rest of the document is kept; an answer that cannot be read
three times for the same sequence is counted (``unreadable_document``) and the reader
resyncs instead of asking again forever."""

from __future__ import annotations

from andon.connect.mtconnect.reader import (
    CONDITION_LEVELS,
    MANIFEST,
    MTConnectConfig,
    MTConnectConnector,
    Observation,
    StreamsDoc,
    parse_streams,
)
from andon.connect.registry import ConnectorType, register

__all__ = [
    "CONDITION_LEVELS",
    "MANIFEST",
    "MTConnectConfig",
    "MTConnectConnector",
    "Observation",
    "StreamsDoc",
    "parse_streams",
]

register(ConnectorType(MANIFEST, MTConnectConfig, MTConnectConnector))
