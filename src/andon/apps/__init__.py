"""``andon.apps``: the app platform (decision 0900) — manifests (``manifest``), grants
(``grant``), where an app's writes go (``sinks``), the gateway that serves an instance's
socket (``gateway``), the sandbox and supervisor, the test harness and the catalog.

Apps themselves import only ``andon.sdk``. The vendor guide: ``docs/apps.md``.
"""

from __future__ import annotations

__all__: list[str] = []
