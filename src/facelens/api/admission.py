"""How much the server takes at once, so that idle, slow or greedy clients cannot lock the others
out, and health checks are answered whatever the load.

- **Connections** (counted by ``connections.GuardedH11Protocol``): at most
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

import ipaddress
import logging
import re
from collections import Counter
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facelens.api.errors import send_error
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
    # The connections open per client (``connections.GuardedH11Protocol``, which counts them).
    by_client: dict[str, set[object]] = field(default_factory=dict)
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
