"""The shop floor now: current machine states, reason entries and alerts
(``andon.floor.alerts``), the board's content (``andon.floor.board``) and signal alarms
(``andon.floor.alarms``). Its records live in the platform's metadata database, the one
sideways import its layer allows (``docs/layering.md``)."""

from __future__ import annotations

__all__: list[str] = []
