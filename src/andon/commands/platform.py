"""`andon serve` and `andon audit ...`: the platform service's commands."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the platform's commands to the top-level ``andon`` app."""
