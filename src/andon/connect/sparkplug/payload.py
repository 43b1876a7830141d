"""Sparkplug B payloads (``sparkplug_b.proto``), encoded and decoded by hand.

Only the protobuf wire format is needed: varints, 32/64-bit fixed fields and length-delimited
fields. Hand-written code keeps the dependency list short and lets every malformed input fail
with a precise reason (``PayloadError``) instead of a half-filled message. Fields this host
does not use (metadata, property sets, data sets, templates) are skipped on decoding.

>>> p = Payload(timestamp=1000, seq=1, metrics=[Metric(alias=3, datatype=DOUBLE, value=2.5)])
>>> encode_payload(p).hex()
'08e807120d1003200a6900000000000004401801'
>>> decode_payload(encode_payload(p)) == p
True
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "BOOLEAN",
    "DATETIME",
    "DOUBLE",
    "FLOAT",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "STRING",
    "TEXT",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "Metric",
    "Payload",
    "PayloadError",
    "decode_payload",
    "encode_payload",
]

INT8, INT16, INT32, INT64 = 1, 2, 3, 4
UINT8, UINT16, UINT32, UINT64 = 5, 6, 7, 8
FLOAT, DOUBLE, BOOLEAN, STRING, DATETIME, TEXT = 9, 10, 11, 12, 13, 14
_SIGNED_BITS: Final = {INT8: 8, INT16: 16, INT32: 32, INT64: 64}
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


class PayloadError(ValueError):
    """A payload that is not valid Sparkplug B protobuf; ``reason`` is a counter key."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass
class Metric:
    """One metric; ``value`` is None when absent or ``is_null``."""

    name: str | None = None
    alias: int | None = None
    timestamp: int | None = None
    datatype: int | None = None
    is_historical: bool = False
    is_transient: bool = False
    is_null: bool = False
    value: float | int | bool | str | bytes | None = None


@dataclass
class Payload:
    timestamp: int | None = None
    metrics: list[Metric] = field(default_factory=list)
    seq: int | None = None
    uuid: str | None = None
    body: bytes | None = None


# -- writing -----------------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    if n < 0:
        n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(num: int, wire: int) -> bytes:
    return _varint(num << 3 | wire)


def _encode_metric(m: Metric) -> bytes:
    out = bytearray()
    if m.name is not None:
        raw = m.name.encode()
        out += _key(1, _LEN) + _varint(len(raw)) + raw
    if m.alias is not None:
        out += _key(2, _VARINT) + _varint(m.alias)
    if m.timestamp is not None:
        out += _key(3, _VARINT) + _varint(m.timestamp)
    if m.datatype is not None:
        out += _key(4, _VARINT) + _varint(m.datatype)
    if m.is_historical:
        out += _key(5, _VARINT) + b"\x01"
    if m.is_transient:
        out += _key(6, _VARINT) + b"\x01"
    if m.is_null:
        out += _key(7, _VARINT) + b"\x01"
    v, dt = m.value, m.datatype
    if v is None or m.is_null:
        return bytes(out)
    if dt is None:  # data messages may leave the type to the birth certificate
        dt = _infer(v)
    if dt in (INT8, INT16, INT32, UINT8, UINT16, UINT32):
        out += _key(10, _VARINT) + _varint(int(v) & 0xFFFFFFFF)
    elif dt in (INT64, UINT64, DATETIME):
        out += _key(11, _VARINT) + _varint(int(v) & 0xFFFFFFFFFFFFFFFF)
    elif dt == FLOAT:
        out += _key(12, _I32) + struct.pack("<f", float(v))
    elif dt == DOUBLE:
        out += _key(13, _I64) + struct.pack("<d", float(v))
    elif dt == BOOLEAN:
        out += _key(14, _VARINT) + (b"\x01" if v else b"\x00")
    elif dt in (STRING, TEXT):
        raw = str(v).encode()
        out += _key(15, _LEN) + _varint(len(raw)) + raw
    else:
        raise ValueError(f"cannot encode a value of datatype {dt}")
    return bytes(out)


def _infer(v: object) -> int:
    if isinstance(v, bool):
        return BOOLEAN
    if isinstance(v, int):
        return INT64
    if isinstance(v, float):
        return DOUBLE
    return STRING


def encode_payload(p: Payload) -> bytes:
    """Protobuf bytes of a payload."""
    out = bytearray()
    if p.timestamp is not None:
        out += _key(1, _VARINT) + _varint(p.timestamp)
    for m in p.metrics:
        raw = _encode_metric(m)
        out += _key(2, _LEN) + _varint(len(raw)) + raw
    if p.seq is not None:
        out += _key(3, _VARINT) + _varint(p.seq)
    if p.uuid is not None:
        raw = p.uuid.encode()
        out += _key(4, _LEN) + _varint(len(raw)) + raw
    if p.body is not None:
        out += _key(5, _LEN) + _varint(len(p.body)) + p.body
    return bytes(out)


# -- reading -----------------------------------------------------------------------------------


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def varint(self) -> int:
        n = shift = 0
        while True:
            if self.pos >= len(self.data):
                raise PayloadError("truncated_payload", "varint runs past the end")
            b = self.data[self.pos]
            self.pos += 1
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                return n
            shift += 7
            if shift > 63:
                raise PayloadError("malformed_payload", "varint longer than 10 bytes")

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise PayloadError("truncated_payload", f"field of {n} bytes runs past the end")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def fields(self) -> list[tuple[int, int, int | bytes]]:
        out: list[tuple[int, int, int | bytes]] = []
        while self.pos < len(self.data):
            key = self.varint()
            num, wire = key >> 3, key & 7
            if num == 0:
                raise PayloadError("malformed_payload", "field number 0")
            value: int | bytes
            if wire == _VARINT:
                value = self.varint()
            elif wire == _I64:
                value = self.take(8)
            elif wire == _LEN:
                value = self.take(self.varint())
            elif wire == _I32:
                value = self.take(4)
            else:
                raise PayloadError("malformed_payload", f"wire type {wire} (field {num})")
            out.append((num, wire, value))
        return out


def _expect(wire: int, want: int, what: str) -> None:
    if wire != want:
        raise PayloadError("wrong_type", f"{what} has wire type {wire}, expected {want}")


def _text(raw: int | bytes, what: str) -> str:
    if not isinstance(raw, bytes):
        raise PayloadError("wrong_type", f"{what} is not length-delimited")
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise PayloadError("malformed_payload", f"{what} is not UTF-8") from None


def _signed(n: int, bits: int) -> int:
    n &= (1 << bits) - 1
    return n - (1 << bits) if n >> (bits - 1) else n


def _decode_metric(data: bytes) -> Metric:
    m = Metric()
    for num, wire, v in _Reader(data).fields():
        if num == 1:
            m.name = _text(v, "metric name")
        elif num in (2, 3, 4, 5, 6, 7):
            _expect(wire, _VARINT, f"metric field {num}")
            assert isinstance(v, int)
            if num == 2:
                m.alias = v
            elif num == 3:
                m.timestamp = v
            elif num == 4:
                m.datatype = v
            elif num == 5:
                m.is_historical = bool(v)
            elif num == 6:
                m.is_transient = bool(v)
            else:
                m.is_null = bool(v)
        elif num in (10, 11, 14):
            _expect(wire, _VARINT, f"metric value field {num}")
            assert isinstance(v, int)
            bits = _SIGNED_BITS.get(m.datatype or 0)
            if num == 14:
                m.value = bool(v)
            elif bits is not None:
                m.value = _signed(v, bits)
            else:
                m.value = v
        elif num == 12:
            _expect(wire, _I32, "float_value")
            assert isinstance(v, bytes)
            m.value = struct.unpack("<f", v)[0]
        elif num == 13:
            _expect(wire, _I64, "double_value")
            assert isinstance(v, bytes)
            m.value = struct.unpack("<d", v)[0]
        elif num == 15:
            m.value = _text(v, "string_value")
        elif num == 16:
            _expect(wire, _LEN, "bytes_value")
            assert isinstance(v, bytes)
            m.value = v
        # 8 metadata, 9 properties, 17-19 dataset/template/extension: not used here
    if m.is_null:
        m.value = None
    return m


def decode_payload(data: bytes) -> Payload:
    """Decode protobuf bytes; raises ``PayloadError`` (``truncated_payload``,
    ``malformed_payload``, ``wrong_type``) on anything that is not a valid payload."""
    p = Payload()
    for num, wire, v in _Reader(data).fields():
        if num == 1:
            _expect(wire, _VARINT, "timestamp")
            assert isinstance(v, int)
            p.timestamp = v
        elif num == 2:
            _expect(wire, _LEN, "metric")
            assert isinstance(v, bytes)
            p.metrics.append(_decode_metric(v))
        elif num == 3:
            _expect(wire, _VARINT, "seq")
            assert isinstance(v, int)
            p.seq = v
        elif num == 4:
            p.uuid = _text(v, "uuid")
        elif num == 5:
            _expect(wire, _LEN, "body")
            assert isinstance(v, bytes)
            p.body = v
    return p
