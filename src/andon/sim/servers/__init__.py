"""The virtual factory's protocol servers: real peers on loopback for the connectors."""

from __future__ import annotations

__all__: list[str] = []
