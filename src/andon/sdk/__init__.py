"""``andon.sdk``: the one andon package an app imports (decision 0900).

An app is ``async def main(ctx: Context) -> None``; ``run(main)`` connects to the app
gateway at ``ANDON_APP_SOCKET`` and calls it. The SDK imports the standard library and
``pyarrow`` only, so it can ship as its own wheel. The vendor guide: ``docs/apps.md``.
"""

from __future__ import annotations

from andon.sdk.client import Client, EventStream
from andon.sdk.context import Context, Machine, Part, Site, State
from andon.sdk.finding import Feedback, Finding, WorkOrder
from andon.sdk.protocol import (
    MAX_FRAME,
    PROTOCOL_VERSION,
    BadRequest,
    Forbidden,
    FrameTooLarge,
    Internal,
    NotFound,
    ProtocolError,
    RateLimited,
    RemoteError,
)
from andon.sdk.runner import SOCKET_ENV, load_entry, run

__all__ = [
    "MAX_FRAME",
    "PROTOCOL_VERSION",
    "SOCKET_ENV",
    "BadRequest",
    "Client",
    "Context",
    "EventStream",
    "Feedback",
    "Finding",
    "Forbidden",
    "FrameTooLarge",
    "Internal",
    "Machine",
    "NotFound",
    "Part",
    "ProtocolError",
    "RateLimited",
    "RemoteError",
    "Site",
    "State",
    "WorkOrder",
    "load_entry",
    "run",
]
