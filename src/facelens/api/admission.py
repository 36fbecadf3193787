"""How much the server takes at once, so that idle, slow or greedy clients cannot lock the others
out, and health checks are answered whatever the load.

- **Connections** (counted by :class:`GuardedH11Protocol`): at most
  ``FACELENS_MAX_CONNECTIONS_PER_CLIENT`` from one address (an IPv6 client: its /64), and
  ``FACELENS_MAX_CONNECTIONS`` in all. A connection beyond either makes room by closing the
  connection *idle* longest (waiting for a request head: a half-open socket, or keep-alive),
  so held-open sockets never lock anybody out. Only when every connection is busy with a
  request is the newest one refused (a JSON 503 with ``Retry-After``), past a small headroom
  kept for health checks. Connections from ``FACELENS_TRUSTED_PROXIES`` are not limited per
  address (a proxy carries many clients).
- **Requests** (counted by :class:`AdmissionMiddleware`): at most ``FACELENS_MAX_REQUESTS`` in
  progress, a quarter of them per client; live views (the event stream, MJPEG) have a budget of
  their own, ``FACELENS_MAX_LIVE_VIEWS``, a quarter of it per client, as they last for hours.
  Beyond: a JSON 503 with ``Retry-After``. ``/healthz``, ``/readyz`` and ``/metrics`` are
  never counted nor refused, so a liveness probe does not restart a busy server.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from facelens.api.errors import send_error
from facelens.api.observability import with_safety_headers
from facelens.errors import Unavailable

log = logging.getLogger(__name__)

HEALTH_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_LIVE_VIEW = re.compile(r"/v1/events/stream|/v1/streams/[^/]+/mjpeg")
RETRY_AFTER_S = 2
HEADROOM = 16  # connections kept past the cap, when none is idle, for health checks
CLIENT_HEADROOM = 4  # and past one client's share
LINGER_S = 1.0  # a refused connection is closed this long after its answer
Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def client_group(host: str) -> str:
    """Whose connection this is, for the per-client limits: an IPv4 address, or the /64 of an
    IPv6 one (one machine has a whole /64 to choose addresses from)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(getattr(address, "ipv4_mapped", None) or address)


def quarter(limit: int) -> int:
    """One client's share of a budget."""
    return max(1, limit // 4)


@dataclass(slots=True)
class Admission:
    """The limits and the counts, shared by the protocol and the middleware of one server (one
    event loop: no locks)."""

    max_connections: int
    max_connections_per_client: int
    max_requests: int
    max_live_views: int
    trusted_proxies: Networks = ()
    open: int = 0
    by_client: dict[str, set[GuardedH11Protocol]] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)  # in progress, per client
    live_views: Counter[str] = field(default_factory=Counter)
    working: int = 0  # requests counted in the server's budget (bodies in whole)

    def trusted(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.trusted_proxies)

    @property
    def crowded(self) -> bool:
        """More connections are open than allowed (none was idle to close)."""
        return self.open > self.max_connections

    def refusal(self, path: str, client: str, *, working: bool = True) -> str | None:
        """Why a request cannot be taken now, or None (then it is counted until :meth:`leave`).
        A request still receiving its body (``working`` false) counts in its client's share
        only, and in the server's budget once the body is in (:meth:`start_work`): a slow
        upload holds its client's places, never everybody's. Health checks are neither counted
        nor refused (the middleware lets them by)."""
        if self.crowded:
            return (
                f"All {self.max_connections} connections are busy with requests "
                "(FACELENS_MAX_CONNECTIONS); try again shortly."
            )
        if _LIVE_VIEW.fullmatch(path):
            budget, limit, name = self.live_views, self.max_live_views, "FACELENS_MAX_LIVE_VIEWS"
            what, total = "live views (event streams, MJPEG)", self.live_views.total()
        else:
            budget, limit, name = self.requests, self.max_requests, "FACELENS_MAX_REQUESTS"
            what, total = "requests", self.working if working else 0
        if total >= limit:
            return f"{limit} {what} are in progress, the most this server takes ({name})."
        if budget[client] >= quarter(limit):
            return (
                f"This client has {budget[client]} {what} in progress, the most one client "
                f"may have (a quarter of {name})."
            )
        budget[client] += 1
        if working and not _LIVE_VIEW.fullmatch(path):
            self.working += 1
        return None

    def start_work(self) -> str | None:
        """A request's body came in whole: why it cannot be worked on now, or None (then it
        counts in the server's budget until :meth:`leave`)."""
        if self.working >= self.max_requests:
            return (
                f"{self.max_requests} requests are in progress, the most this server takes "
                "(FACELENS_MAX_REQUESTS)."
            )
        self.working += 1
        return None

    def leave(self, path: str, client: str, *, worked: bool = True) -> None:
        live = _LIVE_VIEW.fullmatch(path)
        budget = self.live_views if live else self.requests
        budget[client] -= 1
        if budget[client] <= 0:
            del budget[client]
        if worked and not live:
            self.working -= 1


def _has_body(scope: Scope) -> bool:
    """Whether the request sends a body (a declared length above 0, or chunks)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return value.strip() not in (b"", b"0")
        if name == b"transfer-encoding":
            return True
    return False


class AdmissionMiddleware:
    """Counts requests in progress; refuses those beyond the budgets with a JSON 503."""

    def __init__(self, app: ASGIApp, admission: Admission) -> None:
        self.app = app
        self.admission = admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in HEALTH_PATHS:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        group = client_group(client[0]) if client else ""
        path = scope["path"]
        uploading = _has_body(scope)
        if scope.get("state", {}).get("beyond_client_share"):
            refused: str | None = (
                f"This client has more connections open than it may "
                f"({self.admission.max_connections_per_client}, "
                "FACELENS_MAX_CONNECTIONS_PER_CLIENT), each busy; try again shortly."
            )
        else:
            refused = self.admission.refusal(path, group, working=not uploading)
        if refused is not None:
            scope.setdefault("state", {})["error_code"] = Unavailable.code
            log.warning("refused %s %s from %s: %s", scope["method"], path, group, refused)
            await send_error(
                send,
                503,
                Unavailable.code,
                refused,
                headers=[(b"retry-after", str(RETRY_AFTER_S).encode())],
            )
            return
        worked = not uploading

        async def receive_then_work() -> Message:
            nonlocal worked
            message = await receive()
            if (
                not worked
                and message["type"] == "http.request"
                and not message.get("more_body", False)
            ):
                refused = self.admission.start_work()
                if refused is not None:
                    raise Unavailable(refused)
                worked = True
            return message

        try:
            await self.app(scope, receive_then_work if uploading else receive, send)
        finally:
            self.admission.leave(path, group, worked=worked)


def _refusal_bytes() -> bytes:
    body = json.dumps(
        {
            "error": {
                "code": Unavailable.code,
                "message": "The server has all the connections it takes, each busy with a "
                "request (FACELENS_MAX_CONNECTIONS); try again shortly.",
            }
        }
    ).encode()
    return _raw_answer(503, "Service Unavailable", body, [(b"retry-after", b"%d" % RETRY_AFTER_S)])


def _raw_answer(
    status: int,
    reason: str,
    body: bytes,
    extra: list[tuple[bytes, bytes]] = (),  # type: ignore[assignment]
) -> bytes:
    """A whole JSON answer written straight to a connection (before or without h11), with the
    headers every answer carries."""
    headers = with_safety_headers(
        [
            (b"content-type", b"application/json"),
            *extra,
            (b"connection", b"close"),
            (b"content-length", str(len(body)).encode()),
        ]
    )
    head = f"HTTP/1.1 {status} {reason}\r\n".encode() + b"".join(
        name + b": " + value + b"\r\n" for name, value in headers
    )
    return head + b"\r\n" + body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a time limit on request heads and the connection limits.

    uvicorn times out idle keep-alive connections but not one that has sent part of its head
    and then nothing (slowloris): such a connection is closed ``header_timeout_s`` after it
    connected or had its previous answer. Bodies are timed by the observability middleware.
    """

    header_timeout_s = 10.0
    admission: Admission
    _header_timer: asyncio.TimerHandle | None = None
    idle_since: float | None = None  # waiting for a request head since (monotonic), or busy
    group = ""
    counted = False

    # -- the head's time limit ----------------------------------------------------------------

    def _arm(self) -> None:
        self._disarm()
        self.idle_since = time.monotonic()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.cycle is None or self.cycle.response_complete:  # still waiting for a head
            self.transport.close()

    def handle_events(self) -> None:
        busy = self.cycle is not None and not self.cycle.response_complete
        super().handle_events()
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm()  # a whole request head arrived
            self.idle_since = None
            if not busy and self.beyond_share():
                # Kept past its client's share (nothing of theirs was idle to close): the
                # middleware answers only health checks on it. Told before the request runs.
                self.scope["state"]["beyond_client_share"] = True

    def beyond_share(self) -> bool:
        """Whether this connection's client has more connections open than its share."""
        mine = self.admission.by_client.get(self.group)
        return mine is not None and len(mine) > self.admission.max_connections_per_client

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return  # read and dropped until it is closed: the refusal must be readable
        super().data_received(data)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # The next request's head must come in time too; unless a pipelined one has already
        # started (then the connection is busy, not idle, and must not be closed to make room).
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self._arm()

    # -- answers nobody reads -----------------------------------------------------------------

    _write_timer: asyncio.TimerHandle | None = None

    def pause_writing(self) -> None:
        """The client stopped reading (its socket buffers are full): it has as long as a
        request's head would to read on, else the connection is closed. Otherwise an answer
        nobody reads keeps its connection busy, and enough of them lock everyone out."""
        super().pause_writing()
        if self._write_timer is None:
            self._write_timer = self.loop.call_later(self.header_timeout_s, self._not_reading)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _not_reading(self) -> None:
        self._write_timer = None
        log.warning("closed a connection from %s: it stopped reading its answer", self.group)
        self.transport.abort()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request h11 cannot parse, in our shape and headers."""
        body = json.dumps({"error": {"code": "bad_request", "message": msg}}).encode()
        self.transport.write(_raw_answer(400, "Bad Request", body))
        self.transport.close()

    # -- the connection limits ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()
        admission = self.admission
        host = self.client[0] if self.client else ""
        self.group = client_group(host)
        self.counted = True
        admission.open += 1
        if not admission.trusted(host):
            mine = admission.by_client.setdefault(self.group, set())
            mine.add(self)
            share = admission.max_connections_per_client
            # Over its share with nothing of its own idle to close: kept, up to a headroom
            # (health checks get in; other requests on it are refused: handle_events).
            if (
                len(mine) > share
                and not _close_idlest(mine, self)
                and len(mine) > share + CLIENT_HEADROOM
            ):
                self._refuse()
                return
        # Over the cap with nothing idle to close: kept (health checks get in; other requests
        # on it are refused by the middleware while crowded), up to a headroom.
        if (
            admission.open > admission.max_connections
            and not _close_idlest(self.connections, self)
            and admission.open > admission.max_connections + HEADROOM
        ):
            self._refuse()

    refused = False

    def _refuse(self) -> None:
        """Answer 503 and close. What the client sends meanwhile is read and dropped for a
        moment first: closing with it unread would reset the connection, losing the answer."""
        log.warning("refused a connection from %s: every connection is busy", self.group)
        self.refused = True
        self._disarm()
        self.transport.write(_refusal_bytes())
        self.loop.call_later(LINGER_S, self.transport.close)
        self._forget()

    def _forget(self) -> None:
        if self.counted:
            self.counted = False
            self.admission.open -= 1
            mine = self.admission.by_client.get(self.group)
            if mine is not None:
                mine.discard(self)
                if not mine:
                    del self.admission.by_client[self.group]

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        self._forget()
        super().connection_lost(exc)


def _close_idlest(connections: Iterable[object], newcomer: GuardedH11Protocol) -> bool:
    """Close the connection among ``connections`` idle longest (not ``newcomer``); whether there
    was one."""
    idle = [
        c
        for c in connections
        if isinstance(c, GuardedH11Protocol)
        and c is not newcomer
        and c.counted
        and c.idle_since is not None
    ]
    if not idle:
        return False
    idlest = min(idle, key=lambda c: c.idle_since or 0.0)
    idlest.transport.close()
    idlest._forget()  # counted out now: its connection_lost comes on a later turn of the loop
    return True


def guarded_protocol(header_timeout_s: float, admission: Admission) -> type[GuardedH11Protocol]:
    """The protocol class with the configured limits."""
    return type(
        "GuardedH11",
        (GuardedH11Protocol,),
        {"header_timeout_s": header_timeout_s, "admission": admission},
    )
