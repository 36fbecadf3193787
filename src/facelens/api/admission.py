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

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from facelens.api.errors import send_error
from facelens.errors import Unavailable

log = logging.getLogger(__name__)

HEALTH_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_LIVE_VIEW = re.compile(r"/v1/events/stream|/v1/streams/[^/]+/mjpeg")
RETRY_AFTER_S = 2
HEADROOM = 16  # connections kept past the cap, when none is idle, for health checks
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
    requests: Counter[str] = field(default_factory=Counter)
    live_views: Counter[str] = field(default_factory=Counter)

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

    def refusal(self, path: str, client: str) -> str | None:
        """Why a request cannot be taken now, or None (then it is counted until :meth:`leave`).
        Health checks are neither counted nor refused (the middleware lets them by)."""
        if self.crowded:
            return (
                f"All {self.max_connections} connections are busy with requests "
                "(FACELENS_MAX_CONNECTIONS); try again shortly."
            )
        if _LIVE_VIEW.fullmatch(path):
            budget, limit, name = self.live_views, self.max_live_views, "FACELENS_MAX_LIVE_VIEWS"
            what = "live views (event streams, MJPEG)"
        else:
            budget, limit, name = self.requests, self.max_requests, "FACELENS_MAX_REQUESTS"
            what = "requests"
        if budget.total() >= limit:
            return f"{limit} {what} are in progress, the most this server takes ({name})."
        if budget[client] >= quarter(limit):
            return (
                f"This client has {budget[client]} {what} in progress, the most one client "
                f"may have (a quarter of {name})."
            )
        budget[client] += 1
        return None

    def leave(self, path: str, client: str) -> None:
        budget = self.live_views if _LIVE_VIEW.fullmatch(path) else self.requests
        budget[client] -= 1
        if budget[client] <= 0:
            del budget[client]


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
        refused = self.admission.refusal(path, group)
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
        try:
            await self.app(scope, receive, send)
        finally:
            self.admission.leave(path, group)


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
    head = (
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
        f"retry-after: {RETRY_AFTER_S}\r\nconnection: close\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


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
        super().handle_events()
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm()  # a whole request head arrived
            self.idle_since = None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request's head must come in time too

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
            if len(mine) > admission.max_connections_per_client and not _close_idlest(mine, self):
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

    def _refuse(self) -> None:
        log.warning("refused a connection from %s: every connection is busy", self.group)
        self.transport.write(_refusal_bytes())
        self.transport.close()
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
