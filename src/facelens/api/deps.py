"""What the routes share: the services of one running server, and the API-key check."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool

from facelens.api.idempotency import IdempotencyStore
from facelens.api.observability import Metrics
from facelens.errors import KeyMissing, Unauthorized
from facelens.gallery.sqlite import SQLiteGallery
from facelens.keys import KeyStore
from facelens.settings import Settings
from facelens.video.eventlog import EventLog
from facelens.video.streams import StreamManager
from facelens.workers import SpawnedWorkerPool

API_KEY_HEADER = "X-API-Key"


@dataclass(slots=True)
class Services:
    settings: Settings
    pool: SpawnedWorkerPool
    gallery: SQLiteGallery
    keys: KeyStore
    idempotency: IdempotencyStore
    metrics: Metrics
    events: EventLog | None = None  # opened on first use (events of 'facelens watch' runs)
    streams: StreamManager | None = None  # the streams the server watches (None: runs none)


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


# Declared as a security scheme, so OpenAPI says how to authenticate and /docs can send it.
_api_key_header = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="An API key from 'facelens keys create' (needed once any key exists).",
)


async def authorize(request: Request, given: str | None, *, compat: bool = False) -> str:
    """The caller's key id when keys are configured ('' when they are not, or when a
    compatibility route is called without a key from an open network); else 401."""
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
    key_id = await run_in_threadpool(svc.keys.check, given)
    if key_id is None:
        raise Unauthorized(
            f"The {API_KEY_HEADER} is not a valid key (unknown or revoked); "
            "ask the administrator for a key ('facelens keys create')."
        )
    request.state.api_key_id = key_id
    return key_id


def _from_open_network(request: Request, settings: Settings) -> bool:
    if request.client is None or not settings.open_networks:
        return False
    try:
        address = ipaddress.ip_address(request.client.host)
    except ValueError:
        return False
    return any(address in network for network in settings.open_networks)


async def require_api_key(
    request: Request, given: Annotated[str | None, Security(_api_key_header)] = None
) -> str:
    """The caller's key id when keys are configured ('' when they are not); else 401."""
    return await authorize(request, given)


async def require_compat_key(
    request: Request, given: Annotated[str | None, Security(_api_key_header)] = None
) -> str:
    """:func:`require_api_key` for the compatibility routes: also open to the networks of
    ``FACELENS_COMPAT_OPEN_NETWORKS`` (clients that cannot send a key)."""
    return await authorize(request, given, compat=True)
