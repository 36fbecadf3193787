"""Request ids, the access log, Prometheus metrics and the body-size cap: one ASGI middleware.

Pure ASGI (not BaseHTTPMiddleware) so that streaming and exceptions pass through untouched.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facelens.api.errors import send_error
from facelens.errors import ClientGone, PayloadTooLarge, RequestTimeout, Unavailable
from facelens.system import redact

log = logging.getLogger("facelens.access")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Metric labels take bounded values: a junk method name is "other", not a new series.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# After FACELENS_READ_TIMEOUT_S, a body must keep coming at least this fast on average
# (bytes a second): a 20 MB photo then needs about 0.3 Mbit/s; a trickle of a byte every few
# seconds held its request (and the server's places) for as long as it went on.
MIN_BODY_RATE = 32 * 1024
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10, 30)


# On every answer, /docs included: no page of another site may frame it (a transparent frame
# over /docs turned two clicks into "delete every subject"), nor a browser guess a type.
SAFETY_HEADERS = (
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)


def with_safety_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` with each of :data:`SAFETY_HEADERS` the answer does not set itself (the
    console's own policy, stricter, also forbids framing)."""
    present = {name.lower() for name, _ in headers}
    return [*headers, *((n, v) for n, v in SAFETY_HEADERS if n not in present)]


class Metrics:
    """The service's Prometheus metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.one_scrape = asyncio.Lock()  # /metrics collects one scrape at a time
        self.latency = Histogram(
            "facelens_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template, method and status.",
            ["route", "method", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.faces = Counter(
            "facelens_faces_detected_total",
            "Faces found in request images, by route.",
            ["route"],
            registry=self.registry,
        )
        self.recognized = Counter(
            "facelens_faces_recognized_total",
            "Faces given a name (known) or left unknown.",
            ["result"],
            registry=self.registry,
        )
        self.errors = Counter(
            "facelens_errors_total",
            "Requests answered with an error, by error code.",
            ["code"],
            registry=self.registry,
        )
        self.queue = Gauge(
            "facelens_worker_queue",
            "Requests handed to the worker processes and not yet answered.",
            registry=self.registry,
        )


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any ``extra`` fields."""

    _standard = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in self._standard})
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(log_format: str, *, debug: bool = False) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter()
        if log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    redact.guard_logs(debug=debug)  # no URL's credentials in any log line


class ObservabilityMiddleware:
    """Gives each request an id, caps its body, logs it and records its metrics."""

    def __init__(
        self, app: ASGIApp, metrics: Metrics, max_body_bytes: int, read_timeout_s: float
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.read_timeout_s = read_timeout_s  # a body part that does not come: a held connection

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get("x-request-id", "")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status = message["status"]
                started = True
                message["headers"] = with_safety_headers(
                    [*message.get("headers", []), (b"x-request-id", request_id.encode())]
                )
            await send(message)

        received = 0
        body_done = False

        async def capped_receive() -> Message:
            nonlocal received, body_done
            if body_done:  # after the body: waiting for a disconnect, for as long as it takes
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.read_timeout_s)
            except TimeoutError:
                raise RequestTimeout(
                    f"The request body stopped arriving for {self.read_timeout_s:g} s; send "
                    "it at once (FACELENS_READ_TIMEOUT_S)."
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > self.max_body_bytes:
                    raise PayloadTooLarge(self._too_large())
                # A byte now and then keeps each part in time: the pace counts too.
                late = time.perf_counter() - start - self.read_timeout_s
                if not body_done and late > 0 and received < MIN_BODY_RATE * late:
                    raise RequestTimeout(
                        f"The request body arrives slower than {MIN_BODY_RATE // 1024} KiB a "
                        "second; send it at once."
                    )
            return message

        try:
            declared = int(headers.get("content-length", "0") or 0)
        except ValueError:
            declared = 0
        try:
            if declared > self.max_body_bytes:
                state["error_code"] = PayloadTooLarge.code
                await send_error(send_with_id, 413, PayloadTooLarge.code, self._too_large())
            else:
                await self.app(scope, capped_receive, send_with_id)
        except ClientDisconnect:
            # The client left while its body was read: nobody to answer, nothing went wrong.
            status = ClientGone.status
            state["error_code"] = ClientGone.code
        except asyncio.CancelledError:
            # uvicorn cancels what still runs when its graceful shutdown times out: answer
            # that in our shape rather than its text/plain 500 and a logged traceback. The
            # task ends here anyway, so the cancellation is not passed on.
            state["error_code"] = Unavailable.code
            if not started:
                await send_error(
                    send_with_id,
                    503,
                    Unavailable.code,
                    "The server stopped before this request was done; retry in a moment.",
                    headers=[(b"retry-after", b"2")],
                )
        except Exception:
            log.exception(
                "unhandled error in %s %s",
                scope["method"],
                scope["path"],
                extra={"request_id": request_id},
            )
            state["error_code"] = "internal_error"
            if not started:
                await send_error(
                    send_with_id,
                    500,
                    "internal_error",
                    f"An unexpected error happened (request id {request_id}); it was logged. "
                    "Please report it with the request id.",
                )
        finally:
            self._record(scope, state, status, time.perf_counter() - start)

    def _too_large(self) -> str:
        return (
            f"The request body is larger than {self.max_body_bytes:,} bytes; send a smaller "
            "image or raise FACELENS_MAX_BODY_BYTES."
        )

    def _record(self, scope: Scope, state: dict[str, Any], status: int, seconds: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "<unmatched>"
        method = scope["method"]
        label = method if method in _METHODS else "other"
        self.metrics.latency.labels(template, label, str(status)).observe(seconds)
        code = state.get("error_code")
        if status >= 400:
            self.metrics.errors.labels(code or f"http_{status}").inc()
        faces = state.get("faces")
        log.info(
            "%s %s %d %.1fms faces=%s id=%s",
            method,
            scope["path"],
            status,
            seconds * 1000,
            "-" if faces is None else faces,
            state["request_id"],
            extra={
                "method": method,
                "path": scope["path"],
                "route": template,
                "status": status,
                "latency_ms": round(seconds * 1000, 1),
                "faces": faces,
                "request_id": state["request_id"],
                "error_code": code,
            },
        )
