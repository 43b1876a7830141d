"""Modbus decoding against byte-level tables, and request planning."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from andon.connect.modbus.codec import WIDTH, decode, encode, scaled
from andon.connect.modbus.plan import Point, plan

# (registers as read off the wire, type, byte order, word order, value)
TABLE = [
    ([0x42F6, 0xE979], "float32", "big", "big", 123.45600128173828),  # ABCD
    ([0xE979, 0x42F6], "float32", "big", "little", 123.45600128173828),  # CDAB
    ([0xF642, 0x79E9], "float32", "little", "big", 123.45600128173828),  # BADC
    ([0x79E9, 0xF642], "float32", "little", "little", 123.45600128173828),  # DCBA
    ([0xFFFE, 0x1DC0], "int32", "big", "big", -123456.0),
    ([0x1DC0, 0xFFFE], "int32", "big", "little", -123456.0),
    ([0xB2D0, 0x5E00], "uint32", "big", "big", 3_000_000_000.0),
    ([0x3FF0, 0, 0, 0], "float64", "big", "big", 1.0),
    ([0, 0, 0, 0x3FF0], "float64", "big", "little", 1.0),
    ([0, 0, 0, 0xF03F], "float64", "little", "little", 1.0),
    ([0xC05E, 0xDD2F, 0x1A9F, 0xBE77], "float64", "big", "big", -123.456),
    ([0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE], "int64", "big", "big", -2.0),
    ([0xFFFF], "int16", "big", "big", -1.0),
    ([0x8000], "int16", "big", "big", -32768.0),
    ([0x0080], "int16", "little", "big", -32768.0),
    ([0xFFFF], "uint16", "big", "big", 65535.0),
    ([0x1234], "uint16", "little", "big", float(0x3412)),
]


@pytest.mark.parametrize(("regs", "dtype", "bo", "wo", "value"), TABLE)
def test_decode_table(regs: list[int], dtype: str, bo: str, wo: str, value: float) -> None:
    assert decode(regs, dtype, bo, wo) == value  # type: ignore[arg-type]
    assert encode(value, dtype, bo, wo) == regs  # type: ignore[arg-type]


def test_decode_refuses_wrong_widths_and_values() -> None:
    with pytest.raises(ValueError, match="needs 2 registers"):
        decode([1], "float32")
    with pytest.raises(ValueError, match=r"0\.\.65535"):
        decode([70000], "uint16")
    assert math.isnan(decode([0x7FC0, 0], "float32"))


@given(
    st.floats(allow_nan=False, width=32),
    st.sampled_from(["big", "little"]),
    st.sampled_from(["big", "little"]),
)
def test_float32_round_trip(x: float, bo: str, wo: str) -> None:
    assert decode(encode(x, "float32", bo, wo), "float32", bo, wo) == x  # type: ignore[arg-type]


def test_scale_and_offset() -> None:
    assert scaled(215, 0.1, 0.0) == 21.5
    assert scaled(0, 1.0, -40.0) == -40.0


def test_plan_merges_contiguous_and_respects_gaps_and_limits() -> None:
    pts = [
        Point("a", "holding", 0, "float32"),
        Point("b", "holding", 2, "float64"),
        Point("c", "holding", 9, "uint16"),  # gap of 3 after b (ends at 6): merged
        Point("d", "holding", 30, "uint16"),  # gap of 20: new request
        Point("e", "input", 0, "int16"),
        Point("f", "coil", 3),
        Point("g", "coil", 7),
    ]
    reads = plan(pts, max_gap=4)
    assert [(r.table, r.address, r.count, [p.signal for p in r.points]) for r in reads] == [
        ("coil", 3, 5, ["f", "g"]),
        ("holding", 0, 10, ["a", "b", "c"]),
        ("holding", 30, 1, ["d"]),
        ("input", 0, 1, ["e"]),
    ]
    many = [Point(f"s{i}", "holding", 2 * i, "float32") for i in range(100)]  # 200 registers
    reads = plan(many, max_gap=0)
    assert [r.count for r in reads] == [124, 76]
    assert sum(len(r.points) for r in reads) == 100
    assert all(r.count <= 125 for r in reads)
    assert WIDTH["float64"] == 4
