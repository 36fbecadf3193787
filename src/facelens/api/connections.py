"""The connections the server takes (uvicorn's HTTP/1.1 protocol, guarded): at most
``FACELENS_MAX_CONNECTIONS_PER_CLIENT`` from one address and ``FACELENS_MAX_CONNECTIONS`` in
all, a request head within ``FACELENS_READ_TIMEOUT_S``; a connection beyond a limit makes room
by closing the one idle longest, and is refused (a JSON 503) only when every one is busy. The
counts and the request budget are :class:`~facelens.api.admission.Admission`'s."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable

from uvicorn.protocols.http.h11_impl import H11Protocol

from facelens.api.admission import (
    CLIENT_HEADROOM,
    HEADROOM,
    LINGER_S,
    RETRY_AFTER_S,
    Admission,
    client_group,
)
from facelens.api.observability import with_safety_headers
from facelens.errors import Unavailable

log = logging.getLogger(__name__)


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
