"""Pure ASGI middleware: request size limit and security headers (no per-request objects on
the hot path beyond a closure)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimit", "SecurityHeaders"]


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


class BodyLimit:
    """Refuses bodies over ``max_bytes`` with 413, by ``Content-Length`` up front and by
    counting streamed chunks (a missing or lying length does not get past)."""

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
        received = 0
        started = False
        refused = False

        async def limited() -> Message:
            nonlocal received, started, refused
            msg = await receive()
            if msg["type"] == "http.request" and not refused:
                received += len(msg.get("body", b""))
                if received > self.max_bytes:
                    # answer now; the app sees a disconnected client and its answer is dropped
                    refused = True
                    if not started:
                        started = True
                        await _plain(send, 413, too_large)
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


class SecurityHeaders:
    """Adds headers that keep browsers from sniffing, framing or caching API answers;
    ``Strict-Transport-Security`` when the service terminates TLS itself."""

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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                present = {k.lower() for k, _ in msg.get("headers", [])}
                msg["headers"] = list(msg.get("headers", [])) + [
                    (k, v) for k, v in self.extra if k not in present
                ]
            await send(msg)

        await self.app(scope, receive, with_headers)
