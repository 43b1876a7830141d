"""The typed events of the live bus and the one codec every broker-backed bus puts them on
the wire with.

Topics are tuples of tokens under a tenant (the tenant is never part of the tuple: every
``publish`` and ``subscribe`` names it apart, so no topic can name another tenant's). The
events the platform publishes, one topic each per site (its plant key):

* ``("site", key, "values")`` — :class:`ValuesChanged`: the newest stored value of each signal
  a write touched;
* ``("site", key, "texts")`` — :class:`TextsChanged`: the newest stored text value
  (decision 0202) of each signal a write touched;
* ``("site", key, "states")`` — :class:`StateChanged`, one per machine;
* ``("site", key, "parts")`` — :class:`PartsCounted`, one per machine;
* ``("site", key, "alerts")`` — :class:`AlertChanged`.

The wire form is one JSON object per message, ``{"v": 1, "type": ..., ...}`` (NaN allowed: a
bad-quality value may be NaN); raw ``bytes`` payloads travel as ``{"v": 1, "type": "bytes",
"b64": ...}``. :func:`decode` refuses anything else with a :class:`CodecError` that says what.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from andon.model.types import Micros

__all__ = [
    "AlertChanged",
    "CodecError",
    "Event",
    "PartsCounted",
    "Payload",
    "SignalText",
    "SignalValue",
    "StateChanged",
    "TextsChanged",
    "ValuesChanged",
    "alerts_topic",
    "decode",
    "encode",
    "parts_topic",
    "states_topic",
    "texts_topic",
    "values_topic",
]

WIRE_VERSION = 1


@dataclass(frozen=True, slots=True)
class SignalValue:
    """A signal's newest stored sample."""

    signal: str
    ts: Micros
    value: float
    quality: int


@dataclass(frozen=True, slots=True)
class ValuesChanged:
    """The newest stored value of each signal one write touched (one site's)."""

    values: tuple[SignalValue, ...]


@dataclass(frozen=True, slots=True)
class SignalText:
    """A signal's newest stored text value; ``code`` an enumeration's code, if any."""

    signal: str
    ts: Micros
    value: str
    quality: int
    code: float | None = None


@dataclass(frozen=True, slots=True)
class TextsChanged:
    """The newest stored text value of each signal one write touched (one site's)."""

    values: tuple[SignalText, ...]


@dataclass(frozen=True, slots=True)
class StateChanged:
    """A machine's state since ``start``; ``end`` is ``None`` while it goes on (an open
    state) and the interval's end once it closed."""

    machine: str
    state: int
    """A ``MachineState`` code."""
    start: Micros
    reason: str = ""
    end: Micros | None = None


@dataclass(frozen=True, slots=True)
class PartsCounted:
    """Parts one write added for a machine: good and scrap, the newest event's time."""

    machine: str
    ts: Micros
    good: int
    scrap: int


@dataclass(frozen=True, slots=True)
class AlertChanged:
    """An alert opened, acknowledged, shelved or closed (its new ``status``)."""

    alert_id: str
    status: str
    ts: Micros
    machine: str | None = None


Event = ValuesChanged | TextsChanged | StateChanged | PartsCounted | AlertChanged
Payload = Event | bytes


def _topic(site_key: str, kind: str) -> tuple[str, ...]:
    return ("site", site_key, kind)


def values_topic(site_key: str) -> tuple[str, ...]:
    """``("site", site_key, "values")``."""
    return _topic(site_key, "values")


def texts_topic(site_key: str) -> tuple[str, ...]:
    """``("site", site_key, "texts")``."""
    return _topic(site_key, "texts")


def states_topic(site_key: str) -> tuple[str, ...]:
    return _topic(site_key, "states")


def parts_topic(site_key: str) -> tuple[str, ...]:
    return _topic(site_key, "parts")


def alerts_topic(site_key: str) -> tuple[str, ...]:
    return _topic(site_key, "alerts")


class CodecError(ValueError):
    """A bus message that is not one this codec writes."""


def encode(payload: Payload) -> bytes:
    """The wire form of ``payload``.

    >>> decode(encode(ValuesChanged((SignalValue("s/a", 1, 2.5, 0),))))
    ValuesChanged(values=(SignalValue(signal='s/a', ts=1, value=2.5, quality=0),))
    """
    obj: dict[str, Any]
    if isinstance(payload, bytes):
        obj = {"type": "bytes", "b64": base64.b64encode(payload).decode("ascii")}
    elif isinstance(payload, ValuesChanged):
        obj = {
            "type": "values",
            "values": [[v.signal, v.ts, v.value, v.quality] for v in payload.values],
        }
    elif isinstance(payload, TextsChanged):
        obj = {
            "type": "texts",
            "values": [[v.signal, v.ts, v.value, v.quality, v.code] for v in payload.values],
        }
    elif isinstance(payload, StateChanged):
        obj = {
            "type": "state",
            "machine": payload.machine,
            "state": payload.state,
            "start": payload.start,
            "reason": payload.reason,
            "end": payload.end,
        }
    elif isinstance(payload, PartsCounted):
        obj = {
            "type": "parts",
            "machine": payload.machine,
            "ts": payload.ts,
            "good": payload.good,
            "scrap": payload.scrap,
        }
    elif isinstance(payload, AlertChanged):
        obj = {
            "type": "alert",
            "alert_id": payload.alert_id,
            "status": payload.status,
            "ts": payload.ts,
            "machine": payload.machine,
        }
    else:
        raise TypeError(f"not a bus payload: {type(payload).__name__}")
    obj["v"] = WIRE_VERSION
    return json.dumps(obj, separators=(",", ":")).encode()


def _int(obj: dict[str, Any], key: str) -> int:
    v = obj.get(key)
    if not isinstance(v, int) or isinstance(v, bool):
        raise CodecError(f"bus message field {key!r}: expected an integer, got {v!r:.60}")
    return v


def _str(obj: dict[str, Any], key: str) -> str:
    v = obj.get(key)
    if not isinstance(v, str):
        raise CodecError(f"bus message field {key!r}: expected a string, got {v!r:.60}")
    return v


def _value(row: Any) -> SignalValue:
    if not (isinstance(row, list) and len(row) == 4):
        raise CodecError(f"bus message field 'values': bad row {row!r:.80}")
    sig, ts, value, quality = row
    ok = (
        isinstance(sig, str)
        and isinstance(ts, int)
        and isinstance(value, int | float)
        and isinstance(quality, int)
    )
    if not ok:
        raise CodecError(f"bus message field 'values': bad row {row!r:.80}")
    return SignalValue(sig, ts, float(value), quality)


def _text(row: Any) -> SignalText:
    if not (isinstance(row, list) and len(row) == 5):
        raise CodecError(f"bus message field 'values': bad text row {row!r:.80}")
    sig, ts, value, quality, code = row
    ok = (
        isinstance(sig, str)
        and isinstance(ts, int)
        and isinstance(value, str)
        and isinstance(quality, int)
        and (code is None or isinstance(code, int | float))
    )
    if not ok:
        raise CodecError(f"bus message field 'values': bad text row {row!r:.80}")
    return SignalText(sig, ts, value, quality, None if code is None else float(code))


def decode(data: bytes) -> Payload:
    """The payload of a wire message; :class:`CodecError` when it is not one."""
    try:
        obj = json.loads(data)
    except ValueError as exc:
        raise CodecError(f"bus message is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise CodecError("bus message is not a JSON object")
    if obj.get("v") != WIRE_VERSION:
        raise CodecError(f"bus message version {obj.get('v')!r:.20}, expected {WIRE_VERSION}")
    kind = obj.get("type")
    if kind == "bytes":
        try:
            return base64.b64decode(_str(obj, "b64"), validate=True)
        except ValueError as exc:
            raise CodecError(f"bus message field 'b64': {exc}") from None
    if kind == "values":
        rows = obj.get("values")
        if not isinstance(rows, list):
            raise CodecError("bus message field 'values': expected a list")
        return ValuesChanged(tuple(_value(r) for r in rows))
    if kind == "texts":
        rows = obj.get("values")
        if not isinstance(rows, list):
            raise CodecError("bus message field 'values': expected a list")
        return TextsChanged(tuple(_text(r) for r in rows))
    if kind == "state":
        end = obj.get("end")
        if end is not None and (not isinstance(end, int) or isinstance(end, bool)):
            raise CodecError(f"bus message field 'end': expected an integer, got {end!r:.60}")
        return StateChanged(
            _str(obj, "machine"), _int(obj, "state"), _int(obj, "start"), _str(obj, "reason"), end
        )
    if kind == "parts":
        return PartsCounted(
            _str(obj, "machine"), _int(obj, "ts"), _int(obj, "good"), _int(obj, "scrap")
        )
    if kind == "alert":
        machine = obj.get("machine")
        if machine is not None and not isinstance(machine, str):
            raise CodecError(f"bus message field 'machine': expected a string, got {machine!r}")
        return AlertChanged(_str(obj, "alert_id"), _str(obj, "status"), _int(obj, "ts"), machine)
    raise CodecError(
        f"bus message type {kind!r:.40} is not one of bytes, values, texts, state, parts, alert"
    )
