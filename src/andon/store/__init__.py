"""Telemetry storage: the ``TelemetryStore`` protocol and its implementations."""

from __future__ import annotations

from pathlib import Path

from andon.store.base import Aggregates, AppendResult, LastValue, TelemetryStore
from andon.store.duckdb_store import DuckDBStore

__all__ = [
    "Aggregates",
    "AppendResult",
    "DuckDBStore",
    "LastValue",
    "TelemetryStore",
    "open_store",
]


def open_store(
    url_or_path: str | Path | None = None, *, max_signals_per_tenant: int | None = None
) -> TelemetryStore:
    """Open the telemetry store named by a URL or a path (``max_signals_per_tenant``: the
    cap of each tenant's signal dictionary, ``None`` for none).

    * ``None``, ``":memory:"``, ``"duckdb://"`` or ``"duckdb://:memory:"``: in-memory DuckDB.
    * ``"duckdb:///abs/file.duckdb"`` or ``"duckdb://rel/file.duckdb"``: a DuckDB file;
      ``?memory_limit=64MB`` sets DuckDB's memory limit (default
      ``andon.store.duckdb_store.DEFAULT_MEMORY_LIMIT``).
    * any other string or ``Path`` without a ``scheme://``: a DuckDB file at that path.

    Other schemes and other query parameters raise ``ValueError``.
    """
    cap = max_signals_per_tenant
    if url_or_path is None or isinstance(url_or_path, Path):
        return DuckDBStore.open(url_or_path, max_signals_per_tenant=cap)
    scheme, sep, rest = url_or_path.partition("://")
    if not sep:
        return DuckDBStore.open(url_or_path, max_signals_per_tenant=cap)
    if scheme.lower() == "duckdb":
        rest, _, query = rest.partition("?")
        params = dict(p.partition("=")[::2] for p in query.split("&") if p)
        unknown = sorted(set(params) - {"memory_limit"})
        if unknown:
            raise ValueError(
                f"unknown parameter {unknown[0]!r} in store URL {url_or_path!r} "
                "(known: memory_limit)"
            )
        if "memory_limit" in params:
            return DuckDBStore.open(
                rest or None, max_signals_per_tenant=cap, memory_limit=params["memory_limit"]
            )
        return DuckDBStore.open(rest or None, max_signals_per_tenant=cap)
    raise ValueError(f"unsupported store URL scheme {scheme!r} in {url_or_path!r} (use duckdb://)")
