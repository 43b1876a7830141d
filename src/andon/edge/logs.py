"""Logging for the edge agent: andon's own loggers at INFO (connects, losses, refusals: one line
each, not one per poll), the protocol libraries at WARNING. At INFO, asyncua logs every publish
response and pymodbus every reconnect attempt: hundreds of MB a day on a busy edge.

``ANDON_LOG_LEVEL`` sets andon's level (e.g. ``DEBUG``), ``ANDON_LIB_LOG_LEVEL`` the libraries'.
"""

from __future__ import annotations

import logging
import os

__all__ = ["LIBRARIES", "configure_logging"]

LIBRARIES = ("asyncua", "pymodbus", "aiomqtt", "paho", "httpx", "httpcore", "asyncio")
"""Loggers of the libraries the edge drives, held at WARNING by default."""


def configure_logging(level: str | None = None, library_level: str | None = None) -> None:
    """Log to stderr with timestamps; andon at ``level`` (default INFO), libraries at
    ``library_level`` (default WARNING). An unknown level name is a ``ValueError``."""
    own = _level(level or os.environ.get("ANDON_LOG_LEVEL") or "INFO", "ANDON_LOG_LEVEL")
    libs = _level(
        library_level or os.environ.get("ANDON_LIB_LOG_LEVEL") or "WARNING", "ANDON_LIB_LOG_LEVEL"
    )
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger().setLevel(libs)
    logging.getLogger("andon").setLevel(own)
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(libs)


def _level(name: str, what: str) -> int:
    value = logging.getLevelName(name.upper())
    if not isinstance(value, int):
        raise ValueError(f"{what}: unknown log level {name!r} (DEBUG, INFO, WARNING, ERROR)")
    return value
