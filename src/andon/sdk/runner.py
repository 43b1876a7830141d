"""Starting an app: ``run(main)`` and ``python -m andon.sdk ENTRY``.

Whoever starts an app (the supervisor, ``andon app run``, the test harness) sets
``ANDON_APP_SOCKET`` (the gateway's Unix socket), ``ANDON_APP_ID`` and
``ANDON_APP_VERSION``, puts the app's directory first on ``sys.path`` and runs
``python -m andon.sdk package.module:main``.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
from collections.abc import Awaitable, Callable
from typing import Any, Final

from andon.sdk.client import Client
from andon.sdk.context import Context

__all__ = ["APP_ID_ENV", "APP_VERSION_ENV", "SOCKET_ENV", "connect", "load_entry", "run"]

SOCKET_ENV: Final = "ANDON_APP_SOCKET"
APP_ID_ENV: Final = "ANDON_APP_ID"
APP_VERSION_ENV: Final = "ANDON_APP_VERSION"

Main = Callable[[Context], Awaitable[None]]


def load_entry(entry: str) -> Main:
    """The ``async def main(ctx)`` that ``"package.module:main"`` names; ``ValueError``
    saying what is wrong otherwise."""
    module_name, sep, attr = entry.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"entry {entry!r}: expected 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"entry {entry!r}: cannot import {module_name!r} ({exc})") from None
    fn: Any = getattr(module, attr, None)
    if fn is None:
        raise ValueError(f"entry {entry!r}: module {module_name!r} has no {attr!r}")
    if not inspect.iscoroutinefunction(fn):
        raise ValueError(f"entry {entry!r}: {attr!r} must be an 'async def' function")
    main: Main = fn
    return main


def _env(name: str, given: str | None) -> str:
    value = given if given is not None else os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set: apps are started by andon (see docs/apps.md)")
    return value


async def connect(
    socket: str | None = None, app_id: str | None = None, version: str | None = None
) -> Context:
    """A ``Context`` on a new connection (arguments default to the environment)."""
    client = await Client.connect(
        _env(SOCKET_ENV, socket), _env(APP_ID_ENV, app_id), _env(APP_VERSION_ENV, version)
    )
    return Context(client)


async def _main(main: Main) -> None:
    ctx = await connect()
    try:
        await main(ctx)
    finally:
        await ctx.client.close()


def run(main: Main) -> None:
    """Connect to the gateway named by the environment and run ``main(ctx)`` to its end."""
    asyncio.run(_main(main))
