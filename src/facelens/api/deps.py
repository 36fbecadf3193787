"""What the routes share: the services of one running server, and the API-key check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool

from facelens.api.idempotency import IdempotencyStore
from facelens.api.observability import Metrics
from facelens.errors import Unauthorized
from facelens.gallery.sqlite import SQLiteGallery
from facelens.keys import KeyStore
from facelens.settings import Settings
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


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


# Declared as a security scheme, so OpenAPI says how to authenticate and /docs can send it.
_api_key_header = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="An API key from 'facelens keys create' (needed once any key exists).",
)


async def require_api_key(
    request: Request, given: Annotated[str | None, Security(_api_key_header)] = None
) -> str:
    """The caller's key id when keys are configured ('' when they are not); else 401."""
    keys = services(request).keys
    request.state.api_key_id = ""
    if not await run_in_threadpool(keys.enabled):
        return ""
    if not given:
        raise Unauthorized(
            f"This server requires an API key: send it in the {API_KEY_HEADER} header."
        )
    key_id = await run_in_threadpool(keys.check, given)
    if key_id is None:
        raise Unauthorized(
            f"The {API_KEY_HEADER} is not a valid key (unknown or revoked); "
            "ask the administrator for a key ('facelens keys create')."
        )
    request.state.api_key_id = key_id
    return key_id
