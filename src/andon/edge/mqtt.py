"""Small helpers around aiomqtt shared by the uplink, the ingest service and MQTT connectors."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiomqtt

__all__ = ["mqtt_client"]


@asynccontextmanager
async def mqtt_client(host: str, port: int, **kwargs: Any) -> AsyncIterator[aiomqtt.Client]:
    """``aiomqtt.Client`` as a context manager that also consumes the client's disconnection
    error, which aiomqtt otherwise leaves unretrieved (asyncio logs it at garbage collection).
    Sets ``TCP_NODELAY``: the uplink's acknowledgements are small messages that Nagle's
    algorithm would otherwise hold back."""
    kwargs.setdefault("socket_options", ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),))
    client = aiomqtt.Client(host, port, **kwargs)
    try:
        async with client:
            yield client
    finally:
        done = client._disconnected
        if done.done() and not done.cancelled():
            done.exception()
