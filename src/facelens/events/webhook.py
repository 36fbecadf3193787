"""A webhook: each event POSTed as JSON, each attempt bounded whatever the receiver does."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

CONNECT_TIMEOUT_S = 5.0  # a webhook's connection, within the attempt's time
ANSWER_BYTES = 4096  # of a webhook's answer, read at most (its start goes in the error)
SHOWN_ANSWER_CHARS = 200


class Unreachable(ConnectionError):
    """The target could not be reached: it saw nothing, so the attempt does not count
    against the event (MQTT's "not connected" is a ConnectionError too)."""


class Refused(Exception):
    """The target was reached but did not take the event: the attempt counts."""


class Webhook:
    """POSTs each event as JSON to ``url`` (``Idempotency-Key``: its id); only a 2xx answer
    takes it. Bounded whatever the receiver does: each attempt has ``timeout_s`` in all (not
    per read: a receiver dripping bytes is cut off too), at most ``ANSWER_BYTES`` of the
    answer are read, redirects are not followed (the event would go elsewhere)."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self.url, self.timeout_s = url, timeout_s
        # The attempts run on an event loop of their own (on the courier's thread): only a
        # cancellation bounds an attempt in all, which httpx's per-phase timeouts do not.
        self._loop = asyncio.new_event_loop()
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s, connect=min(CONNECT_TIMEOUT_S, timeout_s)),
            follow_redirects=False,
            headers={"Accept-Encoding": "identity"},  # what is read is what was sent
        )

    def __call__(self, event: dict[str, Any]) -> None:
        self._loop.run_until_complete(self._attempt(event))

    async def _attempt(self, event: dict[str, Any]) -> None:
        headers = {"Idempotency-Key": str(event["id"])}
        try:
            async with asyncio.timeout(self.timeout_s):
                request = self._client.stream("POST", self.url, json=event, headers=headers)
                async with request as answer:
                    start = await _first_bytes(answer, ANSWER_BYTES)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise Unreachable(f"cannot connect ({exc})") from None
        except TimeoutError:
            raise Refused(f"no complete answer within {self.timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise Refused(f"{type(exc).__name__}: {exc}") from None
        if answer.is_success:
            return
        said = f"answered {answer.status_code} {answer.reason_phrase}".rstrip()
        if answer.is_redirect:
            said += " (redirects are not followed: give the final URL)"
        text = " ".join(start.decode("utf-8", "replace").split())[:SHOWN_ANSWER_CHARS]
        raise Refused(said + (f": {text}" if text else ""))

    def close(self) -> None:
        if not self._loop.is_closed():
            self._loop.run_until_complete(self._client.aclose())
            self._loop.close()


async def _first_bytes(answer: httpx.Response, limit: int) -> bytes:
    """At most ``limit`` bytes of an answer's body, as sent; the rest is never read."""
    data = bytearray()
    async for chunk in answer.aiter_raw():
        data += chunk[: limit - len(data)]
        if len(data) >= limit:
            break
    return bytes(data)
