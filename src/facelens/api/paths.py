"""Request paths refused before routing.

The server decodes the path before the routes see it, so ``/v1/people/x%2Ffaces%2F1`` would
be routed as ``/v1/people/x/faces/1``: a request naming a person ``x/faces/1`` would delete
person x's face 1. No name or id holds ``/`` (names may not), so a path with an encoded slash
is refused, for every route, with ``400 encoded_slash`` (in the dialect of the API called).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from facelens.api.errors import render

ENCODED_SLASH = b"%2f"


class PathGuard:
    """Pure ASGI middleware refusing paths whose raw form has an encoded slash."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path") if scope["type"] == "http" else None
        if raw is None or ENCODED_SLASH not in raw.lower():
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["error_code"] = "encoded_slash"
        response = render(
            Request(scope),
            400,
            "encoded_slash",
            "The path holds an encoded slash (%2F): no name or id holds '/', and decoded, the "
            "path would name another resource. Send names without '/'.",
        )
        await response(scope, receive, send)
