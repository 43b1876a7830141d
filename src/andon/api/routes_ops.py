"""API routes: ops (registered on the shared declared router of ``andon.api.routes``)."""

from __future__ import annotations

from andon.api.routes import api

__all__ = ["api"]
