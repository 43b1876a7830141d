"""Network helpers shared by connectors, the edge uplink and the ingest service: an aiomqtt
client that cleans up after itself, TLS contexts, connection errors in plain words, and
capped exponential backoff."""

from __future__ import annotations

import random
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

__all__ = ["Backoff", "describe_connect_error", "mqtt_client", "tls_context"]


class _ClosingSSLSocket(ssl.SSLSocket):
    """An ``SSLSocket`` that closes itself when its handshake fails."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


@asynccontextmanager
async def mqtt_client(host: str, port: int, **kwargs: Any) -> AsyncIterator[aiomqtt.Client]:
    """``aiomqtt.Client`` as a context manager that also consumes the client's disconnection
    error, which aiomqtt otherwise leaves unretrieved (asyncio logs it at garbage collection).
    Sets ``TCP_NODELAY``: the uplink's acknowledgements are small messages that Nagle's
    algorithm would otherwise hold back."""
    kwargs.setdefault("socket_options", ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),))
    tls = kwargs.get("tls_context")
    if isinstance(tls, ssl.SSLContext):
        # paho-mqtt 2.2 leaves the socket open when the TLS handshake fails (a CA that
        # did not sign the broker's certificate): every retry would leak one
        tls.sslsocket_class = _ClosingSSLSocket
    client = aiomqtt.Client(host, port, **kwargs)
    try:
        async with client:
            yield client
    finally:
        done = client._disconnected
        if done.done() and not done.cancelled():
            done.exception()


def tls_context(
    ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None
) -> ssl.SSLContext:
    """A client TLS context that verifies the server against ``ca_file`` (the system's
    store when ``None``), with hostname checking, and presents ``cert_file``/``key_file``
    when given. A missing or unreadable file is a ``ValueError`` that names it: a
    configuration error, not a connection failure worth retrying.

    >>> tls_context("/nonexistent/ca.pem")
    Traceback (most recent call last):
    ...
    ValueError: CA file /nonexistent/ca.pem: No such file or directory
    """
    try:
        ctx = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"CA file {ca_file}: {_reason(exc)}") from None
    if cert_file is not None:
        try:
            ctx.load_cert_chain(cert_file, key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"client certificate {cert_file}: {_reason(exc)}") from None
    return ctx


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def describe_connect_error(exc: BaseException) -> str:
    """A connection failure in words an operator can act on (certificate not trusted, wrong
    user name or password, nothing listening), keeping the library's text after a colon.

    >>> describe_connect_error(ConnectionRefusedError(111, "Connect call failed"))
    'nothing accepts connections there: [Errno 111] Connect call failed'
    """
    text = str(exc)
    chain: list[BaseException] = [exc]
    while chain[-1].__cause__ is not None and len(chain) < 5:
        chain.append(chain[-1].__cause__)
    if any(isinstance(e, ssl.SSLCertVerificationError) for e in chain) or (
        "CERTIFICATE_VERIFY_FAILED" in text
    ):
        return f"the server's TLS certificate is not trusted (check the CA file): {text}"
    if any(isinstance(e, ssl.SSLError) for e in chain):
        return f"TLS handshake failed: {text}"
    low = text.lower()
    if "not authorized" in low or "bad user name or password" in low or "code:5" in low:
        return f"the broker refused the user name or password: {text}"
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "connection refused" in low:
        return f"nothing accepts connections there: {text}"
    return text or type(exc).__name__


@dataclass
class Backoff:
    """Capped exponential backoff with ±20 % jitter.

    >>> b = Backoff(initial_s=1.0, max_s=4.0, jitter=0.0)
    >>> [b.next() for _ in range(4)]
    [1.0, 2.0, 4.0, 4.0]
    """

    initial_s: float = 0.05
    max_s: float = 5.0
    jitter: float = 0.2
    _current: float = 0.0
    _rng: random.Random = field(default_factory=random.Random)

    def next(self) -> float:
        self._current = self.initial_s if self._current == 0 else min(self._current * 2, self.max_s)
        return self._current * (1 + self.jitter * (2 * self._rng.random() - 1))

    def reset(self) -> None:
        self._current = 0.0
