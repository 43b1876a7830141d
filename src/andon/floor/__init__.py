"""The shop floor now: signal alarms (``andon.floor.alarms``); machine states and alerts join
this package when ``andon.platform.alerts`` moves here (see docs/decisions/0610)."""

from __future__ import annotations

__all__: list[str] = []
