"""Pure ASGI middleware: request size limit and security headers (no per-request objects on
the hot path beyond a closure)."""

from __future__ import annotations

import logging
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["WEB_CSP", "BodyLimit", "SecurityHeaders"]

_log = logging.getLogger("andon.api")
_ERROR = b'{"detail":"internal server error"}'


async def _plain(send: Send, status: int, text: str) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


_NUL_JSON = b"\\u0000"
_NUL_DETAIL = '{"detail":"NUL characters (\\\\u0000, %00) are not accepted in requests"}'
_HIGH = rb"\\u[dD][89abAB][0-9a-fA-F]{2}"
_LOW = rb"\\u[dD][c-fC-F][0-9a-fA-F]{2}"
_LONE_HIGH = re.compile(_HIGH + rb"(?!" + _LOW + rb")")
_LONE_LOW = re.compile(rb"(?<!" + _HIGH + rb")" + _LOW)
_SURROGATE_DETAIL = (
    '{"detail":"lone UTF-16 surrogates (such as \\\\ud800) are not accepted in requests"}'
)


def _lone_surrogate(buf: bytes, first: bool, last: bool) -> bool:
    """Whether ``buf`` (the tail of the body so far, then a new chunk) has a JSON escape of
    a lone UTF-16 surrogate, which no text column can store. An escape at the very end of a
    chunk that is not the last is decided with the next chunk (the tail keeps 12 bytes)."""
    if any(last or m.end() + 6 <= len(buf) for m in _LONE_HIGH.finditer(buf)):
        return True
    return any(first or m.start() >= 6 for m in _LONE_LOW.finditer(buf))


class BodyLimit:
    """Refuses bodies over ``max_bytes`` with 413, by ``Content-Length`` up front and by
    counting streamed chunks (a missing or lying length does not get past); and refuses with
    422 any request carrying a NUL character in its path, query or JSON body, which no text
    column of PostgreSQL can store (it would surface as a 500 deep in the database layer)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = '{"detail":"request body too large"}'
        for k, v in scope["headers"]:
            if k == b"content-length":
                try:
                    n = int(v)
                except ValueError:
                    await _plain(send, 400, '{"detail":"bad content-length"}')
                    return
                if n > self.max_bytes:
                    await _plain(send, 413, too_large)
                    return
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
            await _plain(send, 422, _NUL_DETAIL)
            return
        received = 0
        started = False
        refused = False
        tail = b""

        async def limited() -> Message:
            nonlocal received, started, refused, tail
            msg = await receive()
            if msg["type"] == "http.request" and not refused:
                chunk = msg.get("body", b"")
                received += len(chunk)
                status, text = 0, ""
                if received > self.max_bytes:
                    status, text = 413, too_large
                elif _NUL_JSON in tail[-5:] + chunk[:8] or _NUL_JSON in chunk:
                    status, text = 422, _NUL_DETAIL
                elif b"\\u" in tail + chunk and _lone_surrogate(
                    tail + chunk, not tail, not msg.get("more_body", False)
                ):
                    status, text = 422, _SURROGATE_DETAIL
                tail = (tail + chunk)[-12:]
                if status:
                    # answer now; the app sees a disconnected client and its answer is dropped
                    refused = True
                    if not started:
                        started = True
                        await _plain(send, status, text)
                    return {"type": "http.disconnect"}
            return msg

        async def watch(msg: Message) -> None:
            nonlocal started
            if refused:
                return
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        await self.app(scope, limited, watch)


WEB_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
"""The web dashboard's policy: its own files only, no inline script or style, no CDN."""


class SecurityHeaders:
    """Adds headers that keep browsers from sniffing, framing or caching API answers;
    ``Strict-Transport-Security`` when the service terminates TLS itself. API paths get
    ``default-src 'none'`` and ``no-store``; every other path (the web dashboard) gets
    ``WEB_CSP`` and ``no-cache`` (revalidate by ETag, so an upgrade shows at once)."""

    def __init__(self, app: ASGIApp, hsts: bool) -> None:
        self.app = app
        extra = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
            (b"cross-origin-resource-policy", b"same-origin"),
            (b"cache-control", b"no-store"),
        ]
        if hsts:
            extra.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))
        self.extra = extra
        web = {
            b"content-security-policy": WEB_CSP.encode(),
            b"cache-control": b"no-cache",
        }
        self.web_extra = [(k, web.get(k, v)) for k, v in extra]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        path: str = scope.get("path", "")
        extra = self.extra if path.startswith("/api/") else self.web_extra

        started = False

        async def with_headers(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
                present = {k.lower() for k, _ in msg.get("headers", [])}
                msg["headers"] = list(msg.get("headers", [])) + [
                    (k, v) for k, v in extra if k not in present
                ]
            await send(msg)

        try:
            await self.app(scope, receive, with_headers)
        except Exception:
            # the server's own 500 answer is written outside this middleware, without the
            # headers: answer here (the error still propagates, to be logged)
            if not started:
                _log.error("unhandled error on %s %s", scope.get("method"), path)
                await with_headers(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(_ERROR)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": _ERROR})
            raise
