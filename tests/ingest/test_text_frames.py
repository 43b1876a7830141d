"""Text values on the wire (decision 0202): round trip, byte layout, and malformed blocks."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from andon.model.types import SampleBatch, TextBatch
from andon.wire.frames import (
    HEADER,
    TEXT_HEAD,
    FrameError,
    batch_from_parts,
    body_of,
    decode_frame,
    encode_frame,
    text_block,
)


def _text() -> TextBatch:
    return TextBatch.build(
        ["a/m/execution", "a/m/program"],
        [0, 1, 0],
        [10, 11, 12],
        ["READY", "O1234 — Ø12 ✓", "ACTIVE"],
        [0, 1, 0],
        [2.0, np.nan, 3.0],
    )


def _with_text() -> SampleBatch:
    return SampleBatch.build(["a/x"], [0, 0], [10, 11], [1.5, -2.0], [0, 2], text=_text())


def test_text_rides_the_frame_and_comes_back_exactly() -> None:
    f = decode_frame(encode_frame("e1", "tok", "s", 5, 99, False, _with_text()))
    assert f.batch.value.tolist() == [1.5, -2.0]
    t = f.batch.text
    assert t is not None
    assert t.names == ("a/m/execution", "a/m/program")
    assert t.value == ("READY", "O1234 — Ø12 ✓", "ACTIVE")
    assert t.index.tolist() == [0, 1, 0]
    assert t.ts.tolist() == [10, 11, 12]
    assert t.quality.tolist() == [0, 1, 0]
    np.testing.assert_array_equal(t.code, [2.0, np.nan, 3.0])


def test_a_frame_without_text_is_unchanged_byte_for_byte() -> None:
    plain = SampleBatch.build(["a/x"], [0], [10], [1.0])
    data = encode_frame("e1", "tok", "s", 1, 2, False, plain)
    _, _, flags, *_rest, meta_len = HEADER.unpack_from(data)
    assert flags == 0
    assert len(data) == HEADER.size + meta_len + 21
    assert decode_frame(data).batch.text is None


def test_text_only_frame_sets_flag_bit_1() -> None:
    only = SampleBatch.build([], [], [], [], text=_text())
    data = encode_frame("e1", "tok", "s", 1, 2, True, only)
    _, _, flags, _, _, n, _ = HEADER.unpack_from(data)
    assert (flags, n) == (3, 0)
    back = decode_frame(data).batch
    assert len(back) == 0 and back.text_points == 3


def test_buffered_parts_keep_the_text() -> None:
    b = _with_text()
    back = batch_from_parts(len(b), json.dumps(list(b.names)), body_of(b))
    assert back.text is not None and back.text.value == _text().value


def test_concat_merges_text_dictionaries() -> None:
    t2 = TextBatch.build(["a/m/program", "a/n/mode"], [1, 0], [20, 21], ["AUTO", "P2"])
    merged = SampleBatch.concat(
        [_with_text(), SampleBatch.build([], [], [], [], text=t2), SampleBatch.empty()]
    )
    assert len(merged) == 2
    t = merged.text
    assert t is not None
    assert [t.signal_at(i) for i in range(len(t))][-2:] == ["a/n/mode", "a/m/program"]
    assert t.value[-2:] == ("AUTO", "P2")


def _block() -> bytes:
    return text_block(_text())


def _bad_offsets() -> bytes:
    b = bytearray(_block())
    m, names_len = 3, struct.unpack_from("<I", b, 8)[0]
    ends_at = TEXT_HEAD.size + names_len + 21 * m
    struct.pack_into("<I", b, ends_at, 999)  # the first value ends past the value bytes
    return bytes(b)


def _not_utf8() -> bytes:
    b = bytearray(_block())
    b[-1] = 0xFF
    return bytes(b)


@pytest.mark.parametrize(
    ("block", "why"),
    [
        (b"", "text block of 0 bytes"),
        (b"TXT2" + _block()[4:], "bad text block magic"),
        (_block()[:-1], "expected"),
        (_block() + b"\0", "expected"),
        (_bad_offsets(), "offsets"),
        (_not_utf8(), "not UTF-8"),
    ],
    ids=["empty", "magic", "short", "long", "offsets", "utf8"],
)
def test_malformed_text_blocks_refuse_the_frame(block: bytes, why: str) -> None:
    plain = SampleBatch.build(["a/x"], [0], [10], [1.0])
    data = bytearray(encode_frame("e1", "tok", "s", 1, 2, False, plain) + block)
    data[5] |= 2  # the flags byte: a text block follows
    with pytest.raises(FrameError, match=why) as err:
        decode_frame(bytes(data))
    assert err.value.reason == "malformed_frame"


def test_text_block_without_its_flag_is_refused_by_length() -> None:
    data = encode_frame("e1", "tok", "s", 1, 2, False, SampleBatch.build(["a/x"], [0], [1], [1.0]))
    with pytest.raises(FrameError, match="expected"):
        decode_frame(data + _block())
