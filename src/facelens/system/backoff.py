"""Waits between attempts at something that failed (a camera to reconnect, an event to deliver)."""

from __future__ import annotations

import random


def backoff_s(attempt: int, first: float, cap: float) -> float:
    """How long to wait before ``attempt`` (1, 2, ...): full jitter over a window that doubles
    from ``first`` and is capped at ``cap``, so many peers that fail at once do not retry in
    step."""
    return random.uniform(0, min(cap, first * 2 ** min(attempt - 1, 32)))
