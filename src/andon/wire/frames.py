"""The uplink's wire format: one columnar sample batch per MQTT message, and its acknowledgement.

A frame is a fixed 32-byte header, a JSON block (edge, stream, token — the edge's platform
edge key — and the batch's name dictionary) padded to a multiple of 8 bytes, then the
columns back to back: ``ts`` (int64), ``value`` (float64), ``index`` (int32), ``quality``
(uint8), all little-endian. The same frame travels over MQTT and HTTPS. Decoding is
zero-copy (``numpy.frombuffer``) and checks every length, so a truncated or padded frame is
refused with a reason instead of being half read.

A batch with text values (``SampleBatch.text``, decision 0202) adds a *text block* after
the numeric columns and sets flag bit 1: ``TXT1``, the count ``m``, the byte lengths of its
name dictionary (JSON) and of its UTF-8 values (uint32 each), the name JSON, then ``ts``
(int64), ``code`` (float64), ``index`` (int32), ``quality`` (uint8), the end offset of each
value in the value bytes (uint32), and the value bytes. A frame without text is unchanged,
byte for byte; a decoder that does not know the block refuses the frame by its length.

>>> from andon.model.types import SampleBatch
>>> b = SampleBatch.build(["s/a/l/m/x"], [0, 0], [10, 20], [1.5, 2.5])
>>> f = decode_frame(encode_frame("e1", "tok", "m1", 7, 123, False, b))
>>> f.edge, f.stream, f.seq, f.historical, f.batch.value.tolist()
('e1', 'm1', 7, False, [1.5, 2.5])
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from dataclasses import dataclass
from typing import Final

import numpy as np

from andon.model.types import Micros, SampleBatch, TextBatch

__all__ = [
    "ACK_PREFIX",
    "ACK_STATUSES",
    "FRAME_CONTENT_TYPE",
    "HEADER",
    "KEY_PREFIX",
    "MAGIC",
    "UP_PREFIX",
    "Ack",
    "Frame",
    "FrameError",
    "ack_for",
    "ack_mac",
    "ack_topic",
    "batch_from_parts",
    "body_of",
    "decode_acks",
    "decode_frame",
    "decode_text",
    "encode_acks",
    "encode_frame",
    "frame_from_parts",
    "key_parts",
    "text_block",
    "up_topic",
]

MAGIC: Final = b"ANDN"
VERSION: Final = 1
HEADER: Final = struct.Struct("<4sBBxxQqII")
"""magic, version, flags (bit 0: historical), seq, created_us, points, json length."""
FRAME_CONTENT_TYPE: Final = "application/vnd.andon.frame"
"""The media type of one frame POSTed to the platform's ingest route."""
KEY_PREFIX: Final = "andon_"
_HISTORICAL: Final = 1
_TEXT: Final = 2
_POINT_BYTES: Final = 8 + 8 + 4 + 1
TEXT_HEAD: Final = struct.Struct("<4sIII")
"""Text block header: magic ``TXT1``, values, name JSON bytes, value bytes."""
_TEXT_MAGIC: Final = b"TXT1"
_TEXT_POINT_BYTES: Final = 8 + 8 + 4 + 1 + 4
ACK_STATUSES: Final = ("ok", "rejected", "refused")
UP_PREFIX: Final = "andon/v1/up/"
"""MQTT topic prefix an edge publishes its frames under (then its platform key's id)."""
ACK_PREFIX: Final = "andon/v1/ack/"
"""MQTT topic prefix the platform acknowledges an edge key's frames under."""


class FrameError(ValueError):
    """A frame that cannot be decoded; ``reason`` is a short counter key."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded uplink message."""

    edge: str
    token: str
    stream: str
    seq: int
    created_us: Micros
    historical: bool
    batch: SampleBatch


@dataclass(frozen=True, slots=True)
class Ack:
    """The platform's answer for one frame: ``ok`` (stored or already stored), ``rejected``
    (its rows failed validation: resending cannot help, the edge drops it as rejected) or
    ``refused`` (the key is revoked or expired, or the frame names a site the key may not
    write: the edge stops its uplink and keeps the frame, as an HTTPS uplink does on 401/403)."""

    stream: str
    seq: int
    status: str
    reason: str = ""
    mac: str = ""
    """``ack_mac`` of the frame's key secret over (stream, seq, status): only a holder of the
    secret (the edge, and the gateway that just read it in the frame) can make it, so a
    client that may publish on the ack topic cannot forge one (decision 0311)."""


def ack_mac(secret: str, stream: str, seq: int, status: str) -> str:
    """The signature of one acknowledgement: HMAC-SHA256 keyed by the edge key's secret.

    >>> ack_mac("s", "m1", 7, "ok") == ack_mac("s", "m1", 7, "ok") != ack_mac("t", "m1", 7, "ok")
    True
    """
    msg = f"andon-ack\0{stream}\0{seq}\0{status}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()[:32]


def ack_for(token: str, stream: str, seq: int, status: str, reason: str = "") -> Ack:
    """The acknowledgement of a frame that carried ``token``, signed with its secret (unsigned
    when the token is not a platform key: such a frame never came from an MQTT uplink)."""
    parts = key_parts(token)
    mac = ack_mac(parts[1], stream, seq, status) if parts is not None else ""
    return Ack(stream, seq, status, reason, mac)


def body_of(batch: SampleBatch) -> bytes:
    """The column block of a batch (what the edge buffer stores), its text block after it."""
    parts = [
        batch.ts.astype("<i8", copy=False).tobytes(),
        batch.value.astype("<f8", copy=False).tobytes(),
        batch.index.astype("<i4", copy=False).tobytes(),
        batch.quality.astype("u1", copy=False).tobytes(),
    ]
    if batch.text is not None and len(batch.text):
        parts.append(text_block(batch.text))
    return b"".join(parts)


def text_block(text: TextBatch) -> bytes:
    """The text block of a batch's text values (see the module).

    >>> t = TextBatch.build(["a/x"], [0, 0], [10, 20], ["READY", "ACTIVE ✓"], code=[1, 2])
    >>> back = decode_text(text_block(t))
    >>> back.value, back.code.tolist(), back.signal_at(1)
    (('READY', 'ACTIVE ✓'), [1.0, 2.0], 'a/x')
    """
    encoded = [v.encode() for v in text.value]
    ends = np.cumsum([len(b) for b in encoded], dtype=np.int64)
    blob = b"".join(encoded)
    if len(blob) >= 2**32:
        raise ValueError(f"text values of {len(blob)} bytes do not fit one frame")
    names = json.dumps(list(text.names)).encode()
    return b"".join(
        (
            TEXT_HEAD.pack(_TEXT_MAGIC, len(text), len(names), len(blob)),
            names,
            text.ts.astype("<i8", copy=False).tobytes(),
            text.code.astype("<f8", copy=False).tobytes(),
            text.index.astype("<i4", copy=False).tobytes(),
            text.quality.astype("u1", copy=False).tobytes(),
            ends.astype("<u4").tobytes(),
            blob,
        )
    )


def decode_text(data: bytes | memoryview) -> TextBatch:
    """A text block back into a ``TextBatch``; ``FrameError`` when it is malformed (every
    length is checked: the block must be exactly as long as its header says)."""
    buf = memoryview(data)
    if len(buf) < TEXT_HEAD.size:
        raise FrameError("malformed_frame", f"text block of {len(buf)} bytes")
    magic, m, names_len, blob_len = TEXT_HEAD.unpack_from(buf)
    if magic != _TEXT_MAGIC:
        raise FrameError("malformed_frame", "bad text block magic")
    o = TEXT_HEAD.size
    want = o + names_len + m * _TEXT_POINT_BYTES + blob_len
    if len(buf) != want:
        raise FrameError(
            "malformed_frame", f"text block of {len(buf)} bytes, expected {want} for {m} values"
        )
    try:
        names = json.loads(bytes(buf[o : o + names_len]))
    except (UnicodeDecodeError, ValueError) as exc:
        raise FrameError("malformed_frame", f"text names JSON: {exc}") from None
    if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
        raise FrameError("malformed_frame", "text names must be a list of strings")
    o += names_len
    ts = np.frombuffer(buf, "<i8", m, o).astype(np.int64)
    code = np.frombuffer(buf, "<f8", m, o + 8 * m).astype(np.float64)
    index = np.frombuffer(buf, "<i4", m, o + 16 * m).astype(np.int32)
    quality = np.frombuffer(buf, "u1", m, o + 20 * m).copy()
    ends = np.frombuffer(buf, "<u4", m, o + 21 * m).astype(np.int64)
    blob = bytes(buf[o + 25 * m :])
    if m and (ends[-1] != blob_len or bool(np.any(np.diff(ends) < 0))):
        raise FrameError("malformed_frame", "text value offsets do not fit the value bytes")
    starts = [0, *ends[:-1].tolist()]
    try:
        values = tuple(blob[a:b].decode() for a, b in zip(starts, ends.tolist(), strict=True))
    except UnicodeDecodeError as exc:
        raise FrameError("malformed_frame", f"text value is not UTF-8: {exc}") from None
    try:
        return TextBatch(tuple(names), index, ts, values, quality, code)
    except ValueError as exc:
        raise FrameError("malformed_frame", str(exc)) from None


def frame_from_parts(
    edge: str,
    token: str,
    stream: str,
    seq: int,
    created_us: Micros,
    historical: bool,
    points: int,
    names_json: str,
    body: bytes,
) -> bytes:
    """A frame from a stored batch: ``names_json`` is the JSON list of names, ``body`` the
    columns as produced by ``body_of``."""
    meta = (
        '{"edge":%s,"token":%s,"stream":%s,"names":%s}'  # noqa: UP031 - splices stored JSON
        % (json.dumps(edge), json.dumps(token), json.dumps(stream), names_json)
    ).encode()
    meta += b" " * (-len(meta) % 8)
    flags = _HISTORICAL if historical else 0
    if len(body) != points * _POINT_BYTES:  # a text block follows the columns
        flags |= _TEXT
    head = HEADER.pack(MAGIC, VERSION, flags, seq, created_us, points, len(meta))
    return b"".join((head, meta, body))


def encode_frame(
    edge: str,
    token: str,
    stream: str,
    seq: int,
    created_us: Micros,
    historical: bool,
    batch: SampleBatch,
) -> bytes:
    """A frame for ``batch``."""
    return frame_from_parts(
        edge,
        token,
        stream,
        seq,
        created_us,
        historical,
        len(batch),
        json.dumps(list(batch.names)),
        body_of(batch),
    )


def _str(meta: dict[str, object], key: str) -> str:
    v = meta.get(key)
    if not isinstance(v, str) or not v:
        raise FrameError("malformed_frame", f"header field {key!r} missing or not a string")
    return v


def decode_frame(data: bytes) -> Frame:
    """Decode and check a frame; raises ``FrameError`` with a counter key when it is malformed."""
    if len(data) < HEADER.size:
        raise FrameError("malformed_frame", f"{len(data)} bytes, shorter than the header")
    magic, version, flags, seq, created, n, meta_len = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise FrameError("malformed_frame", "bad magic")
    if version != VERSION:
        raise FrameError("unsupported_version", f"frame version {version}")
    end_meta = HEADER.size + meta_len
    end_columns = end_meta + n * _POINT_BYTES
    if len(data) != end_columns and not (flags & _TEXT and len(data) > end_columns):
        raise FrameError(
            "malformed_frame",
            f"{len(data)} bytes, expected {end_columns} for {n} points",
        )
    try:
        meta = json.loads(data[HEADER.size : end_meta])
    except (UnicodeDecodeError, ValueError) as exc:
        raise FrameError("malformed_frame", f"header JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise FrameError("malformed_frame", "header JSON is not an object")
    names = meta.get("names")
    if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
        raise FrameError("malformed_frame", "names must be a list of strings")
    buf = memoryview(data)
    o = end_meta
    ts = np.frombuffer(buf, "<i8", n, o)
    value = np.frombuffer(buf, "<f8", n, o + 8 * n)
    index = np.frombuffer(buf, "<i4", n, o + 16 * n)
    quality = np.frombuffer(buf, "u1", n, o + 20 * n)
    text = decode_text(buf[end_columns:]) if flags & _TEXT else None
    try:
        batch = SampleBatch(
            tuple(names),
            index.astype(np.int32),
            ts.astype(np.int64),
            value.astype(np.float64),
            quality,
            text,
        )
    except ValueError as exc:
        raise FrameError("malformed_frame", str(exc)) from None
    return Frame(
        _str(meta, "edge"),
        _str(meta, "token"),
        _str(meta, "stream"),
        int(seq),
        int(created),
        bool(flags & _HISTORICAL),
        batch,
    )


def batch_from_parts(points: int, names_json: str, body: bytes) -> SampleBatch:
    """The ``SampleBatch`` of a buffered batch's stored parts (its name dictionary as JSON
    and the column block of ``body_of``), for uplinks that do not send frames.

    >>> b = SampleBatch.build(["a/b"], [0, 0], [10, 20], [1.5, 2.5])
    >>> batch_from_parts(2, json.dumps(list(b.names)), body_of(b)).value.tolist()
    [1.5, 2.5]
    """
    n = points
    if len(body) < n * _POINT_BYTES:
        raise FrameError("malformed_frame", f"{len(body)} body bytes for {n} points")
    names = json.loads(names_json)
    buf = memoryview(body)
    text = decode_text(buf[n * _POINT_BYTES :]) if len(body) > n * _POINT_BYTES else None
    return SampleBatch(
        tuple(names),
        np.frombuffer(buf, "<i4", n, 16 * n).astype(np.int32),
        np.frombuffer(buf, "<i8", n, 0).astype(np.int64),
        np.frombuffer(buf, "<f8", n, 8 * n).astype(np.float64),
        np.frombuffer(buf, "u1", n, 20 * n).copy(),
        text,
    )


def key_parts(key: str) -> tuple[str, str] | None:
    """``(key id, secret)`` of a platform API key ``andon_<32 hex id>_<secret>``, else
    ``None``. The frame's ``token`` field carries the edge's platform key; the MQTT uplink
    logs in to the broker with the id as user name and the secret as password.
    (``andon.platform.security.parse_api_key`` is the same rule on the platform's side,
    which this layer may not import.)

    >>> key_parts("andon_" + "a" * 32 + "_s3cret")
    ('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 's3cret')
    >>> key_parts("a-static-token") is None
    True
    """
    if not key.startswith(KEY_PREFIX):
        return None
    key_id, sep, secret = key[len(KEY_PREFIX) :].partition("_")
    if not sep or len(key_id) != 32 or not secret:
        return None
    return key_id, secret


def encode_acks(acks: list[Ack]) -> bytes:
    """The JSON acknowledgement message for a list of frames."""
    return json.dumps(
        {"acks": [[a.stream, a.seq, a.status, a.reason, a.mac] for a in acks]}
    ).encode()


def decode_acks(data: bytes) -> list[Ack]:
    """Parse an acknowledgement message; raises ``ValueError`` (never anything else) when it
    is malformed: not JSON, not an object with an ``acks`` list, or an entry that is not
    ``[stream, seq, status, reason(, mac)]`` with those types.

    >>> decode_acks(b'{"acks": [null]}')
    Traceback (most recent call last):
    ...
    ValueError: ack entry 0 is not a list of 4 or 5 items: None
    """
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ValueError(f"ack message is not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("acks"), list):
        raise ValueError("ack message without an 'acks' list")
    out = []
    for i, item in enumerate(doc["acks"]):
        if not isinstance(item, list) or len(item) not in (4, 5):
            raise ValueError(f"ack entry {i} is not a list of 4 or 5 items: {item!r:.80}")
        stream, seq, status, reason, *rest = item
        mac = rest[0] if rest else ""
        if (
            not isinstance(stream, str)
            or type(seq) is not int
            or status not in ACK_STATUSES
            or not isinstance(reason, str)
            or not isinstance(mac, str)
        ):
            raise ValueError(f"bad ack entry {i}: {item!r:.80}")
        out.append(Ack(stream, seq, status, reason, mac))
    return out


def up_topic(key_id: str) -> str:
    """Topic an edge publishes its frames on: its platform key's id."""
    return f"{UP_PREFIX}{key_id}"


def ack_topic(key_id: str) -> str:
    """Topic the platform acknowledges an edge key's frames on."""
    return f"{ACK_PREFIX}{key_id}"
