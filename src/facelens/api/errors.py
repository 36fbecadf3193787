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
    # Only a busy or restarting server is worth retrying; a damaged gallery or a missing model
    # is not, so their 503 has no Retry-After.
    if status == 401:
        return {"WWW-Authenticate": 'ApiKey header="X-API-Key"'}
    return {"Retry-After": str(RETRY_AFTER_S)} if code == errors.Unavailable.code else None


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}},
        status_code=status,
        headers=_headers(status, code),
    )


def response_for(exc: errors.FaceLensError) -> JSONResponse:
    return error_response(status_for(exc), exc.code, exc.api_message)


# -- the error bodies of the compatibility APIs (their clients parse them) ------------------

DEEPSTACK_PREFIX = "/v1/vision/"
COMPREFACE_PREFIX = "/api/v1/recognition"
KSERVE_PREFIX = "/v2"
# CompreFace's codes (ExceptionResponseDto): 10 unknown key, 20 missing key, 26 validation,
# 28 no face, 42 subject not found, 43 subject exists; 24 for a missing face id (facelens's
# choice: the spec names none) and 0 for a failure of the server. An image that cannot be read
# is 28 on every route, as in CompreFace, whose API answers every image its face service
# refuses with 28 (FacesRestApiClient: any 400 of the core is NoFacesFoundException); too many
# pixels, bad base64 and an empty body stay validation errors (26).
_COMPREFACE_CODES: dict[type[errors.FaceLensError], tuple[int, int]] = {
    errors.KeyMissing: (400, 20),
    errors.Unauthorized: (404, 10),
    errors.NoFaceFound: (400, 28),
    errors.ImageError: (400, 28),
    errors.ImageTooLarge: (400, 26),
    errors.BadBase64: (400, 26),
    errors.EmptyBody: (400, 26),
    errors.PersonNotFound: (404, 42),
    errors.NotFound: (404, 24),
    errors.Conflict: (400, 43),
}


def _deepstack(status: int, message: str, headers: dict[str, str] | None) -> JSONResponse:
    """DeepStack's shape and statuses: 400 for the client's mistakes, 401 for keys, 500 for
    the server's (CodeProject.AI adds the status as ``code``)."""
    ds_status = status if status in (400, 401, 403, 404, 405) else 500 if status >= 500 else 400
    return JSONResponse(
        {"success": False, "error": message, "duration": 0, "code": ds_status},
        status_code=ds_status,
        headers=headers,
    )


def _compreface(
    status: int, message: str, exc: errors.FaceLensError | None, headers: dict[str, str] | None
) -> JSONResponse:
    code = 26 if status < 500 else 0
    if 400 <= status < 500 and status not in (401, 403, 404, 405):
        status = 400  # CompreFace answers every invalid request with 400
    for cls in type(exc).__mro__ if exc is not None else ():
        if cls in _COMPREFACE_CODES:
            status, code = _COMPREFACE_CODES[cls]
            break
    return JSONResponse({"message": message, "code": code}, status_code=status, headers=headers)


def render(
    request: Request,
    status: int,
    code: str,
    message: str,
    exc: errors.FaceLensError | None = None,
) -> JSONResponse:
    """The error answer in the dialect of the API the request called."""
    path = request.url.path
    if path.startswith(DEEPSTACK_PREFIX):
        return _deepstack(status, message, _headers(status, code))
    if path.startswith(COMPREFACE_PREFIX):
        return _compreface(status, message, exc, _headers(status, code))
    if path == KSERVE_PREFIX or path.startswith(KSERVE_PREFIX + "/"):
        # The Open Inference Protocol's error shape.
        return JSONResponse({"error": message}, status_code=status, headers=_headers(status, code))
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
