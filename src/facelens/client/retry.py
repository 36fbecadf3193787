"""How hard a client call tries (tenacity): what is tried again, how long it waits, and what
it says when no answer came."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import (
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from facelens.errors import APIError, ServerUnreachable


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, APIError):
        return exc.retryable
    return isinstance(exc, httpx.TransportError)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard a call tries: ``attempts`` tries at most, all within ``deadline`` seconds,
    waiting a random 0..``backoff``·2ⁿ seconds (at most ``max_wait``) between them, or the
    server's ``Retry-After`` if longer."""

    attempts: int = 5
    deadline: float = 60.0
    backoff: float = 0.5
    max_wait: float = 10.0

    def wait(self, state: RetryCallState) -> float:
        jitter = wait_random_exponential(multiplier=self.backoff, max=self.max_wait)(state)
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, APIError) and exc.retry_after is not None:
            return max(jitter, exc.retry_after)
        return jitter

    def arguments(self) -> dict[str, Any]:
        return {
            "stop": stop_after_attempt(self.attempts) | stop_before_delay(self.deadline),
            "wait": self.wait,
            "retry": retry_if_exception(_retryable),
            "reraise": True,
        }

    def timeout(self, started: float, per_try: float) -> float:
        """This try's timeout: ``per_try``, or what is left of the deadline if less."""
        return max(0.001, min(per_try, self.deadline - (time.monotonic() - started)))


def unreachable(url: str, exc: httpx.TransportError, policy: RetryPolicy) -> ServerUnreachable:
    kind = (
        "timed out" if isinstance(exc, httpx.TimeoutException) else str(exc) or type(exc).__name__
    )
    return ServerUnreachable(
        f"No answer from the facelens server at {url} ({kind}) after up to {policy.attempts} "
        f"tries in {policy.deadline:g} s; is it running and reachable?"
    )
