"""The demo as the dashboard tests serve it: the built-in plant, the plant clock at
``SPEED``, the factory paused after the pre-fill (``live=False``: only the tests change the
data) and the API's rate limits off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from andon.demo.web import DemoOptions, builtin_plant_yaml

__all__ = ["SPEED", "paused_demo"]

SPEED = 60.0


def paused_demo(data_dir: Path, prefill_h: float, monitoring: dict[str, Any]) -> DemoOptions:
    """Options of a paused demo in ``data_dir`` after ``prefill_h`` plant hours, with these
    ``monitoring`` settings."""
    return DemoOptions(
        builtin_plant_yaml(),
        data_dir,
        speed=SPEED,
        prefill_h=prefill_h,
        live=False,
        settings={
            "limits": {"api_rps": 0, "ingest_points_per_s": 0, "auth_per_s": 0},
            "monitoring": monitoring,
        },
    )
