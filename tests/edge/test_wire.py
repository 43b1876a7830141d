"""The uplink frame: byte layout, round trip, and a table of malformed frames."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from andon.model.types import SampleBatch
from andon.wire.frames import (
    HEADER,
    MAGIC,
    Ack,
    FrameError,
    decode_acks,
    decode_frame,
    encode_acks,
    encode_frame,
)


def _batch() -> SampleBatch:
    return SampleBatch.build(["a/x", "a/y"], [0, 1, 0], [10, 11, 12], [1.0, -2.5, 3.0], [0, 1, 2])


def test_layout_is_header_json_then_columns() -> None:
    data = encode_frame("e1", "tok", "s", 5, 99, True, _batch())
    magic, version, flags, seq, created, n, meta_len = HEADER.unpack_from(data)
    assert (magic, version, flags, seq, created, n) == (MAGIC, 1, 1, 5, 99, 3)
    assert meta_len % 8 == 0
    body = data[HEADER.size + meta_len :]
    assert len(body) == 3 * 21
    assert struct.unpack("<3q", body[:24]) == (10, 11, 12)
    assert struct.unpack("<3d", body[24:48]) == (1.0, -2.5, 3.0)
    assert struct.unpack("<3i", body[48:60]) == (0, 1, 0)
    assert body[60:] == bytes([0, 1, 2])


def test_round_trip() -> None:
    b = _batch()
    f = decode_frame(encode_frame("e1", "tok", "s", 5, 99, False, b))
    assert (f.edge, f.token, f.stream, f.seq, f.created_us, f.historical) == (
        "e1",
        "tok",
        "s",
        5,
        99,
        False,
    )
    assert f.batch.names == b.names
    for col in ("index", "ts", "value", "quality"):
        np.testing.assert_array_equal(getattr(f.batch, col), getattr(b, col))


def _patch_json(data: bytes, new_meta: bytes) -> bytes:
    fields = list(HEADER.unpack_from(data))
    old_len = fields[-1]
    new_meta += b" " * (-len(new_meta) % 8)
    fields[-1] = len(new_meta)
    return HEADER.pack(*fields) + new_meta + data[HEADER.size + old_len :]


GOOD = encode_frame("e1", "tok", "s", 1, 0, False, _batch())

MALFORMED = [
    ("empty", b"", "malformed_frame"),
    ("truncated header", GOOD[:20], "malformed_frame"),
    ("truncated body", GOOD[:-1], "malformed_frame"),
    ("trailing byte", GOOD + b"\0", "malformed_frame"),
    ("bad magic", b"XXXX" + GOOD[4:], "malformed_frame"),
    ("future version", GOOD[:4] + b"\x09" + GOOD[5:], "unsupported_version"),
    ("json not json", _patch_json(GOOD, b"{nope"), "malformed_frame"),
    ("json not an object", _patch_json(GOOD, b"[1]"), "malformed_frame"),
    (
        "names wrong type",
        _patch_json(GOOD, b'{"edge":"e1","token":"t","stream":"s","names":[1,2]}'),
        "malformed_frame",
    ),
    (
        "index out of names",
        _patch_json(GOOD, b'{"edge":"e1","token":"t","stream":"s","names":["a/x"]}'),
        "malformed_frame",
    ),
    (
        "edge missing",
        _patch_json(GOOD, b'{"token":"t","stream":"s","names":["a/x","a/y"]}'),
        "malformed_frame",
    ),
]


@pytest.mark.parametrize(("case", "data", "reason"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_frames_are_refused_with_a_reason(case: str, data: bytes, reason: str) -> None:
    with pytest.raises(FrameError) as info:
        decode_frame(data)
    assert info.value.reason == reason, case


def test_acks_round_trip_and_refuse_garbage() -> None:
    acks = [Ack("s", 1, "ok"), Ack("t", 2, "rejected", "why")]
    assert decode_acks(encode_acks(acks)) == acks
    for bad in (b"[]", b'{"acks": [["s", "1", "ok", ""]]}', b'{"acks": [["s", 1, "maybe", ""]]}'):
        with pytest.raises(ValueError, match="ack"):
            decode_acks(bad)
