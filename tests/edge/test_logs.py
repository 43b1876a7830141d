"""The edge's log setup: andon's lifecycle lines at INFO, the protocol libraries at WARNING."""

from __future__ import annotations

import subprocess
import sys

import pytest

from andon.edge.logs import configure_logging

SCRIPT = """
import logging
from andon.edge.logs import configure_logging
configure_logging()
logging.getLogger("asyncua.client.ua_client").info("publish response")
logging.getLogger("pymodbus.logging").info("reconnecting")
logging.getLogger("aiomqtt").info("received")
logging.getLogger("asyncua.client.ua_client").warning("library warning")
logging.getLogger("andon.edge.agent").info("edge started")
logging.getLogger("andon.connect.modbus").debug("poll")
"""


def test_libraries_log_warnings_only_and_andon_its_lifecycle() -> None:
    r = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    err = r.stderr
    assert "edge started" in err and "library warning" in err
    for quiet in ("publish response", "reconnecting", "received", "poll"):
        assert quiet not in err, err


def test_an_unknown_level_is_named() -> None:
    with pytest.raises(ValueError, match="ANDON_LOG_LEVEL: unknown log level 'LOUD'"):
        configure_logging("LOUD")
