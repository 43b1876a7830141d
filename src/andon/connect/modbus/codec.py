"""Modbus register decoding: data types, byte order within a register, word order across
registers, scale and offset. Pure functions, tested against tables of real byte frames.

Modbus carries each 16-bit register big-endian on the wire; devices disagree on how wider
values are laid over several registers. ``byte_order`` says whether the two bytes inside each
register are swapped (``little``), ``word_order`` whether the registers come least significant
first (``little``). The four combinations are the usual ABCD / BADC / CDAB / DCBA.

>>> decode([0x42F6, 0xE979], "float32")
123.45600128173828
>>> decode([0xE979, 0x42F6], "float32", word_order="little")
123.45600128173828
>>> encode(-2, "int16")
[65534]
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Final, Literal

__all__ = ["WIDTH", "ByteOrder", "DataType", "decode", "encode", "scaled"]

DataType = Literal["int16", "uint16", "int32", "uint32", "float32", "int64", "float64", "bool"]
ByteOrder = Literal["big", "little"]

_FORMAT: Final[dict[str, str]] = {
    "int16": ">h",
    "uint16": ">H",
    "int32": ">i",
    "uint32": ">I",
    "float32": ">f",
    "int64": ">q",
    "float64": ">d",
}
WIDTH: Final[dict[str, int]] = {
    "bool": 1,
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "float32": 2,
    "int64": 4,
    "float64": 4,
}
"""Registers a value of each type occupies (bits for ``bool``)."""


def _words(data: bytes, byte_order: ByteOrder, word_order: ByteOrder) -> list[int]:
    words = [data[i : i + 2] for i in range(0, len(data), 2)]
    if word_order == "little":
        words.reverse()
    if byte_order == "little":
        words = [w[::-1] for w in words]
    return [int.from_bytes(w, "big") for w in words]


def decode(
    registers: Sequence[int],
    dtype: DataType,
    byte_order: ByteOrder = "big",
    word_order: ByteOrder = "big",
) -> float:
    """The value held by ``registers`` (exactly ``WIDTH[dtype]`` of them)."""
    if dtype == "bool":
        return float(bool(registers[0]))
    n = WIDTH[dtype]
    if len(registers) != n:
        raise ValueError(f"{dtype} needs {n} registers, got {len(registers)}")
    if any(not 0 <= r <= 0xFFFF for r in registers):
        raise ValueError(f"register values must be 0..65535: {list(registers)}")
    regs = list(registers)
    if byte_order == "little":
        regs = [((r & 0xFF) << 8) | (r >> 8) for r in regs]
    if word_order == "little":
        regs.reverse()
    raw = b"".join(r.to_bytes(2, "big") for r in regs)
    value: float = struct.unpack(_FORMAT[dtype], raw)[0]
    return float(value)


def encode(
    value: float,
    dtype: DataType,
    byte_order: ByteOrder = "big",
    word_order: ByteOrder = "big",
) -> list[int]:
    """The registers a device would hold for ``value`` (the inverse of ``decode``)."""
    if dtype == "bool":
        return [1 if value else 0]
    fmt = _FORMAT[dtype]
    v: float | int = value if fmt[-1] in "fd" else round(value)
    return _words(struct.pack(fmt, v), byte_order, word_order)


def scaled(raw: float, scale: float, offset: float) -> float:
    """Engineering value: ``raw * scale + offset``.

    >>> scaled(1234, 0.1, -20.0)
    103.4
    """
    if scale == 1.0 and offset == 0.0:
        return raw
    return round(raw * scale + offset, 12)
