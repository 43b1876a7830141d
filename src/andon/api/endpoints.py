"""Every endpoint declares its permission and scope here, in one place, so that the role
matrix can be generated from the declarations and no route can forget its check.

Scopes:

* ``public``: no credentials (login, refresh, health).
* ``authenticated``: any valid principal (``/auth/me``).
* ``tenant``: the permission must be granted tenant-wide.
* ``sites``: a listing; the permission at any site suffices, results are filtered to the
  sites where it holds.
* ``site``: the path's ``{site_id}`` is looked up *in the caller's tenant* (404 otherwise)
  and the permission must hold at that site.
* ``platform``: platform administrators only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from fastapi import APIRouter
from pydantic import BaseModel

from andon.platform.permissions import Permission

__all__ = ["ERROR_RESPONSES", "DeclaredRouter", "Endpoint", "Scope"]

Scope = Literal["public", "authenticated", "tenant", "sites", "site", "platform"]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    method: str
    path: str
    permission: Permission | None
    scope: Scope


class _ErrorModel(BaseModel):
    detail: Any


def _err(text: str) -> dict[str, Any]:
    return {"description": text, "model": _ErrorModel}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _err("Malformed request"),
    401: _err("Missing or invalid credentials"),
    403: _err("Not permitted"),
    404: _err("No such object in your tenant"),
    409: _err("Already exists"),
    413: _err("Request body too large"),
    422: _err("Invalid request"),
    429: _err("Rate limit exceeded"),
}


class DeclaredRouter:
    """An ``APIRouter`` whose routes can only be added with a declaration."""

    def __init__(self, guard: Callable[[Endpoint], Any]) -> None:
        self.router = APIRouter()
        self.endpoints: list[Endpoint] = []
        self._guard = guard

    def route(
        self,
        method: str,
        path: str,
        *,
        name: str,
        permission: Permission | None,
        scope: Scope,
        **kwargs: Any,
    ) -> Callable[[F], F]:
        if (scope in ("public", "authenticated")) != (permission is None):
            raise ValueError(f"{name}: scope {scope} and permission {permission} do not fit")
        if scope == "site" and "{site_id}" not in path:
            raise ValueError(f"{name}: a site-scoped path needs {{site_id}}")
        ep = Endpoint(name, method, path, permission, scope)
        responses = {**ERROR_RESPONSES, **kwargs.pop("responses", {})}

        def deco(fn: F) -> F:
            self.endpoints.append(ep)
            self.router.add_api_route(
                path,
                fn,
                methods=[method],
                name=name,
                operation_id=name,
                dependencies=[self._guard(ep)],
                responses=responses,
                openapi_extra={
                    "x-permission": permission.value if permission else None,
                    "x-scope": scope,
                },
                **kwargs,
            )
            return fn

        return deco
