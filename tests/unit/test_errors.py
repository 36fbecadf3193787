"""Errors mapped to HTTP statuses in one place, and answered in JSON (no server needed)."""

from __future__ import annotations

import inspect
import json

from facelens import errors
from facelens.api.errors import STATUS, status_for


def test_every_error_class_has_a_deliberate_status() -> None:
    classes = [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.FaceLensError)
        and cls is not errors.FaceLensError
        # Raised only by facelens.client, holding another server's status.
        and cls is not errors.APIError
    ]
    for cls in classes:
        assert status_for(cls("x")) != 500, f"{cls.__name__} would answer 500"
    assert status_for(errors.ImageTooLarge("x")) == 413  # more specific than ImageError's 400
    assert status_for(errors.BadBase64("x")) == 400
    assert status_for(errors.IdempotencyKeyReused("x")) == 422
    assert status_for(errors.FaceLensError("x")) == 500
    assert set(STATUS.values()) <= {400, 401, 403, 404, 408, 409, 413, 415, 422, 499, 503, 504}


def test_a_request_cancelled_by_the_shutdown_is_answered_in_json() -> None:
    """uvicorn cancels what still runs when its graceful shutdown times out; its own answer
    would be a text/plain 500 and a logged traceback."""
    import asyncio

    from facelens.api.observability import Metrics, ObservabilityMiddleware

    async def slow_app(scope: object, receive: object, send: object) -> None:
        raise asyncio.CancelledError

    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/v1/recognize", "headers": []}
    middleware = ObservabilityMiddleware(slow_app, Metrics(), 1000, 1.0)  # type: ignore[arg-type]
    asyncio.run(middleware(scope, receive, send))  # type: ignore[arg-type]
    start, body = sent
    assert start["status"] == 503
    assert (b"content-type", b"application/json") in start["headers"]  # type: ignore[operator]
    assert json.loads(body["body"])["error"]["code"] == "unavailable"  # type: ignore[arg-type]
