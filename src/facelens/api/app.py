"""The FastAPI application factory: routes, error mapping and middleware, given the services."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from facelens import __version__
from facelens.api import (
    console,
    errors,
    events,
    health,
    people,
    photos,
    recognize,
    review,
    streams,
)
from facelens.api.admission import Admission, AdmissionMiddleware
from facelens.api.compat import (
    compreface,
    compreface_subjects,
    compreface_verify,
    deepstack,
    kserve,
)
from facelens.api.guard import BrowserGuard, origins
from facelens.api.observability import ObservabilityMiddleware
from facelens.api.paths import PathGuard
from facelens.api.services import Services
from facelens.models.profiles import DEFAULT_MODEL, PROFILES

DESCRIPTION = """Self-hosted face recognition. The web console is at [`/`](/).

* `POST /predictor` keeps the original demo's contract: base64 image in, annotated base64 JPEG out.
* `/v1/...` is the JSON API: recognize, detect, verify, embed, and people management.
* `/v1/vision/face...` (DeepStack / CodeProject.AI) and `/api/v1/recognition/...` (CompreFace)
  answer those APIs' clients on the same gallery, in their own shapes and error bodies.
* `/v2/...` is KServe's Open Inference Protocol: models `face-detect`, `face-embed` and
  `face-recognize`, images as BYTES (JSON base64 or binary tensors).
* Errors of the facelens API have the shape `{{"error": {{"code": ..., "message": ...}}}}`.
* When API keys are configured, `/v1` and `/predictor` need an `X-API-Key` header.

This server runs the **{profile.name}** model ({profile.summary}), model id `{profile.id}`, at
threshold {threshold} (a face is a person when its `distance` is at most this). The models are
{models}; `{default}` is the default for a new gallery.
"""


def create_app(svc: Services) -> FastAPI:
    profile = svc.gallery.profile
    # Swagger UI and ReDoc from files in the package: the docs work with no internet access.
    app = FastAPIOffline(
        title="facelens",
        version=__version__,
        description=DESCRIPTION.format(
            profile=profile,
            threshold=profile.scoring(svc.settings).threshold,
            default=DEFAULT_MODEL,
            models=", ".join(f"`{name}`" for name in PROFILES),
        ),
        debug=False,  # never: tracebacks would go to clients
    )
    app.state.services = svc
    _optional_key_in_openapi(app)
    errors.install(app)
    app.include_router(health.router)
    app.include_router(recognize.router)
    app.include_router(people.router)
    app.include_router(photos.router)
    app.include_router(review.router)
    app.include_router(events.router)
    app.include_router(streams.router)
    app.include_router(deepstack.router)
    app.include_router(compreface.router)
    app.include_router(compreface_subjects.router)
    app.include_router(compreface_verify.router)
    app.include_router(kserve.router)
    app.include_router(kserve.keyed)
    app.include_router(console.router())
    settings = svc.settings
    # Outermost last: observability (ids, logs, metrics) → admission (how many at once) →
    # browser guard → CORS → path guard → routes. The server's protocol counts connections
    # in the same Admission (app.state.admission).
    app.add_middleware(PathGuard)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=sorted(origins(settings.cors_origins)),
            allow_methods=["*"],
            allow_headers=["X-API-Key", "Content-Type", "Idempotency-Key", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Idempotent-Replayed", "X-Faces-Found", "Retry-After"],
        )
    app.add_middleware(
        BrowserGuard,
        bound_host=settings.host,
        allowed_hosts=settings.allowed_hosts,
        cors_origins=settings.cors_origins,
    )
    app.state.admission = Admission(
        max_connections=settings.max_connections,
        max_connections_per_client=settings.max_connections_per_client,
        max_requests=settings.max_requests,
        max_live_views=settings.max_live_views,
        trusted_proxies=settings.proxy_networks,
    )
    app.add_middleware(AdmissionMiddleware, admission=app.state.admission)
    app.add_middleware(
        ObservabilityMiddleware,
        metrics=svc.metrics,
        max_body_bytes=settings.max_body_bytes,
        read_timeout_s=settings.read_timeout_s,
    )
    return app


def _optional_key_in_openapi(app: FastAPI) -> None:
    """The key is needed only once keys are configured: say so in OpenAPI by allowing each
    secured operation no scheme too (``{}``), so clients and /docs know it may be left out."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for item in schema.get("paths", {}).values():
                for operation in item.values():
                    if isinstance(operation, dict) and operation.get("security"):
                        operation["security"] = [*operation["security"], {}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
