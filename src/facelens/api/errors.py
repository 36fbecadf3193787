"""Our exceptions → HTTP status codes, in one place, and one JSON error shape everywhere."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

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
    errors.Forbidden: 403,
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
    errors.CannotListen: 503,  # the CLI's (a port in use); a request never causes it
    errors.UnsafeSettings: 503,  # the CLI's ('serve' open without keys); nor this
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


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
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
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _headers(status: int, code: str) -> dict[str, str] | None:
    # Only a busy or restarting server, or a shared database out of reach, is worth retrying;
    # a damaged gallery or a missing model is not, so their 503 has no Retry-After.
    if status == 401:
        return {"WWW-Authenticate": 'ApiKey header="X-API-Key"'}
    retried = (errors.Unavailable.code, errors.DatabaseUnavailable.code)
    return {"Retry-After": str(RETRY_AFTER_S)} if code in retried else None


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}},
        status_code=status,
        headers=_headers(status, code),
    )


def response_for(exc: errors.FaceLensError) -> JSONResponse:
    return error_response(status_for(exc), exc.code, exc.api_message)


# -- the error bodies of the foreign APIs (their clients parse them) ----------------------------

Headers = dict[str, str] | None
Dialect = Callable[[int, str, "errors.FaceLensError | None", Headers], JSONResponse]
"""An API's error body: from the status, the message, the error (if one of ours) and headers."""

_DIALECTS: list[tuple[Callable[[str], bool], Dialect]] = []


def register_dialect(serves: Callable[[str], bool], dialect: Dialect) -> None:
    """Answer the errors of every path ``serves`` accepts with ``dialect`` (each module of
    ``api/compat/`` registers its own API's as it is imported)."""
    _DIALECTS.append((serves, dialect))


def render(
    request: Request,
    status: int,
    code: str,
    message: str,
    exc: errors.FaceLensError | None = None,
) -> JSONResponse:
    """The error answer in the dialect of the API the request called (ours by default)."""
    path = request.url.path
    for serves, dialect in _DIALECTS:
        if serves(path):
            return dialect(status, message, exc, _headers(status, code))
    return error_response(status, code, message)


async def _facelens_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.FaceLensError)
    request.state.error_code = exc.code
    return render(request, status_for(exc), exc.code, exc.api_message, exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg')}"
        for e in exc.errors()
    )
    request.state.error_code = "invalid_request"
    return render(request, 422, "invalid_request", f"Invalid request: {problems}.")


_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def _allowed_methods(request: Request) -> list[str]:
    """The methods the API documents for the request's path (from the OpenAPI schema)."""
    paths = request.app.openapi()["paths"]
    path = request.url.path
    # A path of its own (``/faces/delete``) is not also ``/faces/{image_id}``.
    matching = [path] if path in paths else [t for t in paths if compile_path(t)[0].match(path)]
    methods: set[str] = set()
    for template in matching:
        methods |= {m.upper() for m in paths[template] if m in _HTTP_METHODS}
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
    response = render(request, exc.status_code, code, message)
    for key, value in headers.items():
        response.headers[key] = value
    return response


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.FaceLensError, _facelens_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
