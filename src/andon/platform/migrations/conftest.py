"""Keep pytest's ``--doctest-modules`` from importing the Alembic environment script, which
only runs inside Alembic."""

from __future__ import annotations

__all__ = ["collect_ignore"]

collect_ignore = ["env.py"]
