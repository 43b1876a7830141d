"""What edge and ingest both speak, one layer above the model: the uplink's frames and MQTT
topics (``frames``), the edge's health report (``health``) and the network helpers every
connector, uplink and receiver shares (``net``: backoff, TLS contexts, MQTT clients).

Nothing here imports a package above ``andon.model``; the edge and the platform's ingest
meet here instead of importing each other (``docs/layering.md``).
"""

from __future__ import annotations

__all__: list[str] = []
