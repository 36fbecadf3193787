"""What the Frigate bridge accepts from the ``frigate/events`` topic, which anyone who can
publish to the broker can write to: messages of bounded size, queued in bounded number and bytes
(:class:`Inbox`), each field the bridge reads checked against Frigate's own formats
(:func:`parse_event`); :class:`Rejected` with a reason for anything else, counted by reason
(:class:`Tally`)."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from facelens.errors import InvalidValue

log = logging.getLogger(__name__)

# What waits for recognition. Frigate's event messages are a few kB (before and after, a few
# fields each); 256 kB is none of them. The queue holds at most 256 of them and 8 MB in all:
# beyond, messages are dropped (and counted) rather than held.
MESSAGE_BYTES = 256 * 1024
QUEUED_MESSAGES = 256
QUEUED_BYTES = 8 * 1024 * 1024

# Frigate's own formats. An event id is the frame time, a dash and six random [a-z0-9]
# ("1607123955.475377-mxklsc"); a camera name is its config key, [a-zA-Z0-9_-]+. The lengths
# are ours, far beyond any Frigate makes. ASCII classes on purpose: \d and \w take any script.
EVENT_ID = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,9})?-[a-z0-9]{1,32}")
CAMERA = re.compile(r"[a-zA-Z0-9_-]{1,100}")
KINDS = frozenset({"new", "update", "end"})
LABEL_CHARS = 100
SUB_LABEL_CHARS = 100  # Frigate refuses longer sub-labels
SHOWN_CHARS = 60  # of a refused value, in the log

# Why a message was not handled, the label of facelens_frigate_messages_rejected_total.
REASONS = (
    "too_large",  # more than MESSAGE_BYTES
    "queue_full",  # QUEUED_MESSAGES or QUEUED_BYTES waiting already
    "json",  # not JSON
    "shape",  # JSON, but no "after" object
    "type",  # not new, update or end
    "id",  # not a Frigate event id
    "camera",  # not a Frigate camera name
    "label",  # not a short printable string
    "has_snapshot",  # not true or false
    "sub_label",  # not null, a name, or Frigate's [name, score]
    "error",  # checked, but handling it failed (logged)
)


def shown(value: object) -> str:
    """A value from a message as the log shows it: its repr (control characters escaped, so
    one cannot forge a log line or drive a terminal), cut short."""
    text = repr(value[: SHOWN_CHARS + 1] if isinstance(value, str | bytes) else value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "..."


class Rejected(InvalidValue):
    """A message on the events topic that is not a Frigate event the bridge can use."""

    code = "frigate_message_rejected"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Tally:
    """Counts by reason, kept from any thread (paho's drops, the bridge's rejects)."""

    def __init__(self, reasons: Sequence[str] = REASONS) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(reasons, 0)

    def add(self, reason: str) -> None:
        with self._lock:
            self._counts[reason] += 1

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


@dataclass(frozen=True, slots=True)
class FrigateEvent:
    id: str
    type: str  # new, update, end
    camera: str
    label: str
    has_snapshot: bool
    sub_label: str | None = None  # the name Frigate (its face or logo models) or a person gave


def parse_event(payload: bytes) -> FrigateEvent:
    """A ``frigate/events`` message, each field the bridge reads checked; :class:`Rejected`
    (with the reason) for anything else."""
    try:
        message = json.loads(payload)
    except (ValueError, RecursionError):  # not UTF-8 or not JSON; nested past the parser
        raise Rejected("json", f"not JSON: {shown(payload)}") from None
    after = message.get("after") if isinstance(message, dict) else None
    if not isinstance(after, dict):
        raise Rejected("shape", "not a Frigate event (no 'after' object)")
    kind = message.get("type")
    if not (isinstance(kind, str) and kind in KINDS):
        raise Rejected("type", f"type {shown(kind)} is not new, update or end")
    event_id = after.get("id")
    if not (isinstance(event_id, str) and EVENT_ID.fullmatch(event_id)):
        raise Rejected("id", f"id {shown(event_id)} is not a Frigate event id")
    camera = after.get("camera")
    if not (isinstance(camera, str) and CAMERA.fullmatch(camera)):
        raise Rejected("camera", f"camera {shown(camera)} is not a Frigate camera name")
    label = after.get("label")
    if not (isinstance(label, str) and 0 < len(label) <= LABEL_CHARS and label.isprintable()):
        raise Rejected("label", f"label {shown(label)} is not an object label")
    has_snapshot = after.get("has_snapshot", False)
    if not isinstance(has_snapshot, bool):
        raise Rejected("has_snapshot", f"has_snapshot {shown(has_snapshot)} is not true or false")
    return FrigateEvent(
        event_id, kind, camera, label, has_snapshot, _sub_label(after.get("sub_label"))
    )


def _sub_label(value: object) -> str | None:
    """The event's sub-label: ``null`` or blank (none), a name (Frigate before 0.14), or
    ``[name, score]`` (0.14 on); :class:`Rejected` for anything else."""
    name = value
    if isinstance(value, list):
        score = value[1] if len(value) == 2 else "missing"
        if not (score is None or (isinstance(score, int | float) and not isinstance(score, bool))):
            raise Rejected("sub_label", f"sub_label {shown(value)} is not [name, score]")
        name = value[0]
    if name is None or (isinstance(name, str) and not name.strip()):
        return None
    if not (isinstance(name, str) and len(name) <= SUB_LABEL_CHARS and name.isprintable()):
        raise Rejected("sub_label", f"sub_label {shown(value)} is not a name or [name, score]")
    return name


class Inbox:
    """Messages handed over from paho's thread to the bridge's, bounded in count and in bytes.
    ``put`` never blocks (paho's thread must go on reading): a message larger than any Frigate
    event, or one that does not fit, is dropped and counted in ``rejected``."""

    def __init__(
        self,
        rejected: Tally,
        *,
        messages: int = QUEUED_MESSAGES,
        message_bytes: int = MESSAGE_BYTES,
        total_bytes: int = QUEUED_BYTES,
    ) -> None:
        self.rejected = rejected
        self.messages = messages
        self.message_bytes = message_bytes
        self.total_bytes = total_bytes
        self.received = 0  # messages put, kept or not
        self._items: deque[bytes] = deque()
        self._bytes = 0
        self._full = False  # dropping for want of room (logged once per spell)
        self._ready = threading.Condition()

    def put(self, payload: bytes) -> None:
        """Queue ``payload`` if it may wait; else drop it (counted, logged)."""
        with self._ready:
            self.received += 1
            size = len(payload)
            if size > self.message_bytes:
                self.rejected.add("too_large")
                log.warning(
                    "frigate message rejected (too_large): %d bytes, more than %d",
                    size,
                    self.message_bytes,
                )
                return
            if len(self._items) >= self.messages or self._bytes + size > self.total_bytes:
                self.rejected.add("queue_full")
                if not self._full:
                    self._full = True
                    log.warning(
                        "frigate messages dropped (queue_full): %d messages, %d bytes wait "
                        "already; dropping until there is room",
                        len(self._items),
                        self._bytes,
                    )
                return
            self._full = False
            self._items.append(payload)
            self._bytes += size
            self._ready.notify()

    def get(self, timeout: float) -> bytes | None:
        """The oldest message, or None if none came within ``timeout`` seconds."""
        with self._ready:
            if not self._ready.wait_for(lambda: bool(self._items), timeout):
                return None
            payload = self._items.popleft()
            self._bytes -= len(payload)
            return payload

    def waiting(self) -> tuple[int, int]:
        """Messages and bytes waiting now."""
        with self._ready:
            return len(self._items), self._bytes
