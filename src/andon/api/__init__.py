"""The HTTP API of the platform service: FastAPI, ``/api/v1``, OpenAPI published.

Every route declares its permission and scope (``andon.api.endpoints``); ``endpoints()``
lists the declarations, from which the role matrix is generated.
"""

from __future__ import annotations

from andon.api.app import PREFIX, create_app, endpoints
from andon.api.endpoints import Endpoint, Scope

__all__ = ["PREFIX", "Endpoint", "Scope", "create_app", "endpoints"]
