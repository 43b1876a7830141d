"""The app socket protocol, version 1 (decision 0900): length-prefixed JSON frames.

A frame is a 4-byte big-endian length, then that many bytes. A message is one frame of
UTF-8 JSON (an object); when the object has ``"binary": n``, one more frame of exactly
``n`` raw bytes follows (an Arrow IPC stream). No frame may be longer than ``MAX_FRAME``
(16 MiB): a writer refuses to send one, a reader refuses to read one, each with a
``ProtocolError`` that says which and how long.

>>> data = encode_message({"id": 1, "method": "time.now", "params": {}})
>>> data[:4], data[4:]
(b'\\x00\\x00\\x00(', b'{"id":1,"method":"time.now","params":{}}')
>>> decode_header(data[:4])
40
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any, Final

__all__ = [
    "ERROR_CODES",
    "MAX_FRAME",
    "PROTOCOL_VERSION",
    "BadRequest",
    "Forbidden",
    "FrameTooLarge",
    "Internal",
    "NotFound",
    "ProtocolError",
    "RateLimited",
    "RemoteError",
    "decode_header",
    "encode_message",
    "error_for",
    "read_message",
    "write_message",
]

PROTOCOL_VERSION: Final = 1
MAX_FRAME: Final = 16 * 1024 * 1024
"""Bytes of one frame, JSON or binary."""
ERROR_CODES: Final = ("forbidden", "not_found", "bad_request", "rate_limited", "internal")
_HEADER = struct.Struct(">I")


class ProtocolError(Exception):
    """Bytes on the socket that are not a message of this protocol (or a message that
    cannot be written as one). The connection cannot continue after it."""


class FrameTooLarge(ProtocolError):
    """A frame over ``MAX_FRAME``."""


class RemoteError(Exception):
    """An error reply: ``code`` is one of ``ERROR_CODES``, ``message`` says what and where.
    Each code has its own subclass (``Forbidden``, ``NotFound``, ...)."""

    code = "internal"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class Forbidden(RemoteError):
    """Outside the installation's grant: another site, machine, signal or permission."""

    code = "forbidden"


class NotFound(RemoteError):
    code = "not_found"


class BadRequest(RemoteError):
    code = "bad_request"


class RateLimited(RemoteError):
    """Over a limit of the manifest (e.g. findings per minute); the request was refused."""

    code = "rate_limited"


class Internal(RemoteError):
    code = "internal"


_BY_CODE: dict[str, type[RemoteError]] = {
    c.code: c for c in (Forbidden, NotFound, BadRequest, RateLimited, Internal)
}


def error_for(code: str, message: str) -> RemoteError:
    """The ``RemoteError`` subclass for ``code`` (an unknown code is kept on an ``Internal``).

    >>> error_for("forbidden", "site 'x' is not granted")
    Forbidden("site 'x' is not granted")
    """
    cls = _BY_CODE.get(code)
    return cls(message) if cls is not None else Internal(message, code)


def decode_header(header: bytes, max_frame: int = MAX_FRAME) -> int:
    """The length a 4-byte frame header announces; ``FrameTooLarge`` over ``max_frame``."""
    (n,) = _HEADER.unpack(header)
    if n > max_frame:
        raise FrameTooLarge(f"frame of {n:,} bytes announced, over the {max_frame:,}-byte cap")
    return int(n)


def _frame(payload: bytes, what: str) -> bytes:
    if len(payload) > MAX_FRAME:
        raise FrameTooLarge(
            f"{what} of {len(payload):,} bytes is over the {MAX_FRAME:,}-byte frame cap"
        )
    return _HEADER.pack(len(payload)) + payload


def encode_message(obj: dict[str, Any], binary: bytes | None = None) -> bytes:
    """The bytes of one message: the JSON frame (with ``binary`` set when there is a
    binary part) and the binary frame. NaN and infinity are refused (``ProtocolError``):
    JSON has no such numbers."""
    if binary is not None:
        obj = {**obj, "binary": len(binary)}
    try:
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"message cannot be sent as JSON: {exc}") from None
    out = _frame(text.encode("utf-8"), "JSON message")
    if binary is not None:
        out += _frame(binary, "binary part")
    return out


async def _read_frame(reader: asyncio.StreamReader, max_frame: int) -> bytes | None:
    try:
        header = await reader.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None  # a clean end between messages
        raise ProtocolError("connection closed inside a frame header") from None
    n = decode_header(header, max_frame)
    try:
        return await reader.readexactly(n)
    except asyncio.IncompleteReadError as exc:
        raise ProtocolError(
            f"connection closed after {len(exc.partial):,} of a frame's {n:,} bytes"
        ) from None


async def read_message(
    reader: asyncio.StreamReader, max_frame: int = MAX_FRAME
) -> tuple[dict[str, Any], bytes | None] | None:
    """The next message (its JSON object and binary part, if any); ``None`` at a clean end
    of the stream. ``ProtocolError`` for anything that is not a message, ``FrameTooLarge``
    for a frame over ``max_frame`` (a reader may accept less than the protocol's cap)."""
    data = await _read_frame(reader, max_frame)
    if data is None:
        return None
    try:
        obj = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"frame is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except ValueError as exc:
        raise ProtocolError(f"frame is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"a message is a JSON object, got {type(obj).__name__}")
    if "binary" not in obj:
        return obj, None
    n = obj["binary"]
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ProtocolError(f"'binary' must be a byte count, got {n!r:.40}")
    blob = await _read_frame(reader, max_frame)
    if blob is None:
        raise ProtocolError("connection closed before the binary part")
    if len(blob) != n:
        raise ProtocolError(f"binary part of {len(blob):,} bytes, {n:,} announced")
    return obj, blob


async def write_message(
    writer: asyncio.StreamWriter, obj: dict[str, Any], binary: bytes | None = None
) -> None:
    """Write one message and wait until the transport has room again."""
    writer.write(encode_message(obj, binary))
    await writer.drain()
