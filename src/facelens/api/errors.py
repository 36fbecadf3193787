"""Our exceptions → HTTP status codes, in one place, and one JSON error shape everywhere."""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import compile_path
from starlette.types import Send

from facelens import errors

log = logging.getLogger(__name__)

# The most specific class in an exception's MRO wins.
STATUS: dict[type[errors.FaceLensError], int] = {
    errors.ImageError: 400,
    errors.InputPathError: 400,
    errors.Unauthorized: 401,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.ImageTooLarge: 413,
    errors.PayloadTooLarge: 413,
    errors.UnsupportedMediaType: 415,
    errors.InvalidValue: 422,
    errors.NoFaceFound: 422,
    errors.StorageError: 503,
    errors.ModelError: 503,
    errors.Unavailable: 503,
    errors.WorkTimeout: 504,
    errors.RequestTimeout: 408,
    errors.ClientGone: errors.ClientGone.status,
}
RETRY_AFTER_S = 2
# Codes for Starlette's own errors (unknown route, wrong method, ...).
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


def status_for(exc: errors.FaceLensError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


async def send_error(send: Send, status: int, code: str, message: str) -> None:
    """Our error shape sent from ASGI middleware, before any route runs."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def error_response(status: int, code: str, message: str) -> JSONResponse:
    # Only a busy or restarting server is worth retrying; a damaged gallery or a missing model
    # is not, so their 503 has no Retry-After.
    headers = {"Retry-After": str(RETRY_AFTER_S)} if code == errors.Unavailable.code else None
    if status == 401:
        headers = {"WWW-Authenticate": 'ApiKey header="X-API-Key"'}
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def response_for(exc: errors.FaceLensError) -> JSONResponse:
    return error_response(status_for(exc), exc.code, exc.message)


async def _facelens_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.FaceLensError)
    request.state.error_code = exc.code
    return response_for(exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg')}"
        for e in exc.errors()
    )
    request.state.error_code = "invalid_request"
    return error_response(422, "invalid_request", f"Invalid request: {problems}.")


_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def _allowed_methods(request: Request) -> list[str]:
    """The methods the API documents for the request's path (from the OpenAPI schema)."""
    methods: set[str] = set()
    for template, item in request.app.openapi()["paths"].items():
        if compile_path(template)[0].match(request.url.path):
            methods |= {m.upper() for m in item if m in _HTTP_METHODS}
    return sorted(methods)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    request.state.error_code = code
    message = str(exc.detail)
    if exc.status_code == 404:
        message = f"No such endpoint: {request.url.path}. The API is listed at /docs."
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Starlette lists only the first route matching the path: list every route's methods.
        allowed = _allowed_methods(request)
        headers["Allow"] = ", ".join(allowed) or headers.get("Allow", "")
        message = f"{request.method} is not allowed on {request.url.path}; use {headers['Allow']}."
    response = error_response(exc.status_code, code, message)
    for key, value in headers.items():
        response.headers[key] = value
    return response


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.FaceLensError, _facelens_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
