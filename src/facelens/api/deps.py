"""What the routes share: the services of one running server, and the API-key check."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool

from facelens.api.keys import Scope
from facelens.api.services import Services
from facelens.errors import Forbidden, KeyMissing, Unauthorized
from facelens.settings import Settings

API_KEY_HEADER = "X-API-Key"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
log = logging.getLogger(__name__)


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


# Declared as a security scheme, so OpenAPI says how to authenticate and /docs can send it.
_api_key_header = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="An API key from 'facelens keys create' (needed once any key exists).",
)


async def authorize(
    request: Request, given: str | None, *, compat: bool = False, scope: Scope = "recognize"
) -> str:
    """The caller's key id when keys are configured ('' when they are not, or when a
    compatibility route is called without a key from an open network); else 401, or 403 when
    the key lacks ``scope``."""
    svc = services(request)
    request.state.api_key_id = ""
    if not await run_in_threadpool(svc.keys.enabled):
        return ""
    if not given:
        if compat and _from_open_network(request, svc.settings):
            return ""
        raise KeyMissing(
            f"This server requires an API key: send it in the {API_KEY_HEADER} header."
        )
    caller = await run_in_threadpool(svc.keys.check, given)
    if caller is None:
        raise Unauthorized(
            f"The {API_KEY_HEADER} is not a valid key (unknown or revoked); "
            "ask the administrator for a key ('facelens keys create')."
        )
    request.state.api_key_id = caller.key_id
    if scope not in caller.scopes:
        raise Forbidden(
            f"API key {caller.key_id} may not do this: it needs the {scope!r} scope (it has "
            f"{', '.join(sorted(caller.scopes))}); ask the administrator for a key with it "
            f"('facelens keys create NAME --scope {scope}')."
        )
    return caller.key_id


def _from_open_network(request: Request, settings: Settings) -> bool:
    """Whether the client's address (the proxy's client, only behind a trusted proxy) is in
    ``FACELENS_COMPAT_OPEN_NETWORKS``; the decision and the address are logged."""
    if request.client is None or not settings.open_networks:
        return False
    try:
        address = ipaddress.ip_address(request.client.host)
    except ValueError:
        return False
    allowed = any(address in network for network in settings.open_networks)
    log.info(
        "compat call without a key from %s: %s (FACELENS_COMPAT_OPEN_NETWORKS)",
        address,
        "allowed, an open network" if allowed else "refused, not an open network",
    )
    return allowed


def require(
    write: Scope = "enrol", *, compat: bool = False, reading_posts: frozenset[str] = frozenset()
) -> Callable[..., Awaitable[str]]:
    """A dependency checking the caller's key: reading (GET, HEAD, and POSTs to the route
    templates of ``reading_posts``) needs ``recognize``, anything else ``write``. ``compat``:
    also open to the networks of ``FACELENS_COMPAT_OPEN_NETWORKS`` (clients that cannot send
    a key). Routes are told by their template, never by the path a caller sent (a subject
    named "recognize" is no recognition)."""

    async def dependency(
        request: Request, given: Annotated[str | None, Security(_api_key_header)] = None
    ) -> str:
        template = getattr(request.scope.get("route"), "path", None)
        reads = request.method in SAFE_METHODS or (
            request.method == "POST" and template in reading_posts
        )
        scope: Scope = "recognize" if reads else write
        return await authorize(request, given, compat=compat, scope=scope)

    return dependency


# The key checks of the routers: what a call of each kind may do.
require_api_key = require("recognize")  # recognition: any key holder, any method
require_enrol_key = require("enrol")  # reading needs recognize, changing the gallery enrol
require_admin_key = require("admin")  # reading needs recognize, changing streams admin
