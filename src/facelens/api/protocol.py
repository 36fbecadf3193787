"""uvicorn's h11 protocol with a time limit on request headers.

uvicorn times out idle keep-alive connections but not a connection that has sent part of its
headers and then nothing (slowloris): 1,000 such connections were all held. Here a connection
that has not sent a whole request head within ``HEADER_TIMEOUT_S`` of connecting, or of its
previous answer, is closed. Bodies are timed by the observability middleware, the number of
connections by uvicorn's ``limit_concurrency``.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol


class TimedH11Protocol(H11Protocol):
    header_timeout_s = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.cycle is None or self.cycle.response_complete:  # still waiting for a head
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm()  # a whole request head arrived

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request's head must come in time too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def timed_protocol(header_timeout_s: float) -> type[TimedH11Protocol]:
    """The protocol class with the configured limit."""
    return type("TimedH11", (TimedH11Protocol,), {"header_timeout_s": header_timeout_s})
