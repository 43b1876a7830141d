"""The live bus: publish/subscribe of what the platform just stored, scoped by tenant.

The ingest path publishes accepted data after the store write (``andon.ingest.Ingestor``);
live feeds (SSE) subscribe instead of polling the store. ``InProcessBus`` is the default;
``NatsBus`` (extra ``andon[bus]``) lets several processes share one bus. Semantics:
``andon.bus.base``; events and their wire codec: ``andon.bus.events``; why: decision 0314.
"""

from __future__ import annotations

from andon.bus.base import (
    DEFAULT_MAX_QUEUE,
    BusStats,
    LiveBus,
    Message,
    SubscriberStats,
    Subscription,
    Topic,
    matches,
)
from andon.bus.events import (
    AlertChanged,
    CodecError,
    Event,
    PartsCounted,
    Payload,
    SignalText,
    SignalValue,
    StateChanged,
    TextsChanged,
    ValuesChanged,
    alerts_topic,
    decode,
    encode,
    parts_topic,
    states_topic,
    texts_topic,
    values_topic,
)
from andon.bus.inprocess import InProcessBus

__all__ = [
    "BUS_KINDS",
    "DEFAULT_MAX_QUEUE",
    "AlertChanged",
    "BusStats",
    "CodecError",
    "Event",
    "InProcessBus",
    "LiveBus",
    "Message",
    "PartsCounted",
    "Payload",
    "SignalText",
    "SignalValue",
    "StateChanged",
    "SubscriberStats",
    "Subscription",
    "TextsChanged",
    "Topic",
    "ValuesChanged",
    "alerts_topic",
    "decode",
    "encode",
    "matches",
    "open_bus",
    "parts_topic",
    "states_topic",
    "texts_topic",
    "values_topic",
]

BUS_KINDS = ("inprocess", "nats")


async def open_bus(kind: str = "inprocess", url: str | None = None) -> LiveBus:
    """The bus ``kind`` names (``inprocess`` or ``nats`` at ``url``); ``ValueError`` for
    another kind, ``ConnectionError`` when the broker cannot be reached."""
    if kind == "inprocess":
        return InProcessBus()
    if kind == "nats":
        try:
            from andon.bus.nats_bus import NatsBus
        except ImportError as exc:  # pragma: no cover - the extra is missing
            raise ValueError(
                "bus kind 'nats' needs the nats-py package: pip install 'andon[bus]'"
            ) from exc
        return await NatsBus.connect(url or "nats://127.0.0.1:4222")
    raise ValueError(f"bus kind {kind!r}: expected one of {', '.join(BUS_KINDS)}")
