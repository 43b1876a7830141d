"""Telemetry storage: the ``TelemetryStore`` protocol and its implementations."""

from andon.store.base import Aggregates, AppendResult, LastValue, TelemetryStore

__all__ = ["Aggregates", "AppendResult", "LastValue", "TelemetryStore"]
