"""A bridge for Frigate NVR: Frigate tells MQTT about each tracked object; for a person, the
bridge fetches the event's snapshot from Frigate's API, recognises it against the gallery, and
writes the name back as the event's sub-label (what Double Take does, without Double Take).

The contract (``../shared/specs/compat-apis.md`` §4): ``frigate/events`` messages carry
``{"type": "new"|"update"|"end", "after": {"id", "camera", "label", "has_snapshot", ...}}``;
the snapshot is ``GET /api/events/{id}/snapshot.jpg?h=500&crop=1`` (or, before Frigate has one,
the camera's ``/api/{camera}/latest.jpg?h=500``); the name goes back with ``POST
/api/events/{id}/sub_label {"subLabel", "subLabelScore"}``. Each event is tried at most
``attempts`` times (on its new and update messages) and not again once named. Every attempt's
verdict is published to ``facelens/frigate/<camera>`` in the shape of Frigate's own
``tracked_object_update`` face message (``name`` null for a stranger).

Anyone who can publish to the broker can write to the events topic, so every message is checked
before anything is done with it: its size, its JSON, and each field the bridge reads against
Frigate's own formats (the event id and camera name go into Frigate API paths, escaped as well).
A message that fails a check, or whose handling fails in any way, is logged, counted by reason
and skipped; the bridge goes on with the next.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from facelens.errors import FaceLensError
from facelens.frigate_messages import FrigateEvent, Inbox, Rejected, Tally, parse_event, shown
from facelens.matching import UNKNOWN
from facelens.pipeline import RecognizedFace

log = logging.getLogger(__name__)

REMEMBERED = 2000  # events whose attempts are remembered (oldest forgotten first)
SNAPSHOT_HEIGHT = 500
SUB_LABEL_MAX = 100  # Frigate refuses longer sub-labels

Recognize = Callable[[bytes, str], Sequence[RecognizedFace]]


def segment(text: str) -> str:
    """``text`` as one URL path segment: nothing in it can end the segment or the path, and
    it cannot be a dot segment (``..`` climbs out of the route however it is escaped)."""
    if text in ("", ".", ".."):
        raise ValueError(f"{text!r} cannot be a path segment")
    return quote(text, safe="")


@dataclass(frozen=True, slots=True)
class Verdict:
    event: str
    camera: str
    name: str | None  # None: nobody known in the snapshot
    confidence: float | None
    distance: float | None
    attempt: int
    written: bool  # the sub-label was set in Frigate

    def as_message(self, timestamp: float) -> dict[str, Any]:
        """Frigate's own face update shape, with our distance and attempt."""
        return {
            "type": "face",
            "id": self.event,
            "name": self.name,
            "score": self.confidence,
            "camera": self.camera,
            "timestamp": timestamp,
            "distance": self.distance,
            "attempt": self.attempt,
        }


@dataclass(slots=True)
class BridgeCounts:
    events: int = 0  # person events seen
    attempts: int = 0
    named: int = 0
    failures: int = 0  # snapshots that could not be fetched or read
    labelled: set[str] = field(default_factory=set)
    rejected: Tally = field(default_factory=Tally)  # messages not handled, by reason


class FrigateBridge:
    """Decides what to do with each Frigate event, and does it."""

    def __init__(
        self,
        frigate: httpx.Client,
        recognize: Recognize,
        *,
        attempts: int = 3,
        labels: Sequence[str] = ("person",),
        cameras: Sequence[str] = (),
        counts: BridgeCounts | None = None,
        announce: Callable[[Verdict], None] = lambda _: None,
    ) -> None:
        self.frigate = frigate
        self.recognize = recognize
        self.attempts = attempts
        self.labels = frozenset(labels)
        self.cameras = frozenset(cameras)
        self.counts = counts or BridgeCounts()
        self.announce = announce  # each verdict, once made
        self._tried: OrderedDict[str, int] = OrderedDict()  # event id → attempts (-1: named)

    def receive(self, payload: bytes) -> Verdict | None:
        """One message from the events topic, whatever it holds: checked, handled, its verdict
        announced. Never raises: a message that is not a usable Frigate event, or whose
        handling fails in any way, is logged and counted, and the bridge goes on."""
        try:
            verdict = self.handle(parse_event(payload))
            if verdict is not None:
                self.announce(verdict)
            return verdict
        except Rejected as exc:
            self.counts.rejected.add(exc.reason)
            log.warning("frigate message rejected (%s): %s", exc.reason, exc.message)
        except Exception as exc:  # one message, whatever it did, must not end the bridge
            self.counts.rejected.add("error")
            log.warning(
                "frigate message not handled (error): %s: %s", type(exc).__name__, shown(str(exc))
            )
            log.debug("the failure", exc_info=True)
        return None

    def wanted(self, event: FrigateEvent) -> bool:
        return event.label in self.labels and (not self.cameras or event.camera in self.cameras)

    def handle(self, event: FrigateEvent) -> Verdict | None:
        """Try to name the event's person, if it is one, still unnamed and under its
        attempts; the verdict, or None when nothing was tried."""
        if not self.wanted(event):
            return None
        tried = self._tried.get(event.id, 0)
        if event.type == "end":
            self._tried.pop(event.id, None)  # done with it, whatever happened
        if tried < 0 or tried >= self.attempts:
            return None
        if tried == 0:
            self.counts.events += 1
        self._remember(event.id, tried + 1)
        self.counts.attempts += 1
        try:
            faces = self.recognize(self._snapshot(event), f"frigate event {event.id}")
        except (httpx.HTTPError, FaceLensError) as exc:
            self.counts.failures += 1
            log.warning("frigate event %s: no snapshot to recognise (%s)", event.id, exc)
            return None
        known = [f for f in faces if f.match.name != UNKNOWN]
        if not known:
            nearest = min(
                (f.match.distance for f in faces if f.match.distance is not None), default=None
            )
            return Verdict(event.id, event.camera, None, None, nearest, tried + 1, False)
        best = max(known, key=lambda f: f.match.confidence)
        written = self._write_back(event, best)
        if written:
            self.counts.named += 1
            self.counts.labelled.add(best.match.name)
            if event.type != "end":
                self._remember(event.id, -1)
        return Verdict(
            event.id,
            event.camera,
            best.match.name,
            round(best.match.confidence, 4),
            None if best.match.distance is None else round(best.match.distance, 4),
            tried + 1,
            written,
        )

    def _remember(self, event_id: str, tried: int) -> None:
        self._tried[event_id] = tried
        self._tried.move_to_end(event_id)
        while len(self._tried) > REMEMBERED:
            self._tried.popitem(last=False)

    def _snapshot(self, event: FrigateEvent) -> bytes:
        if event.has_snapshot:
            path = f"/api/events/{segment(event.id)}/snapshot.jpg"
            params: dict[str, str | int] = {"h": SNAPSHOT_HEIGHT, "crop": 1}
        else:  # Frigate has no snapshot of it yet: the camera's newest frame
            path, params = f"/api/{segment(event.camera)}/latest.jpg", {"h": SNAPSHOT_HEIGHT}
        answer = self.frigate.get(path, params=params)
        answer.raise_for_status()
        return answer.content

    def _write_back(self, event: FrigateEvent, face: RecognizedFace) -> bool:
        score = min(1.0, max(0.01, round(face.match.confidence, 2)))  # Frigate: 0 < score ≤ 1
        try:
            answer = self.frigate.post(
                f"/api/events/{segment(event.id)}/sub_label",
                json={"subLabel": face.match.name[:SUB_LABEL_MAX], "subLabelScore": score},
            )
            answer.raise_for_status()
        except httpx.HTTPError as exc:
            log.warning("frigate event %s: the sub-label was not set (%s)", event.id, exc)
            return False
        return True


class FrigateMetrics(Collector):
    """``facelens_frigate_*`` metrics of a running bridge, read from its counts and its inbox
    when scraped (``facelens frigate --metrics-port``)."""

    def __init__(self, counts: BridgeCounts, inbox: Inbox) -> None:
        self.counts = counts
        self.inbox = inbox

    def collect(self) -> Iterator[Metric]:
        def counter(name: str, text: str, value: int) -> Metric:
            family = CounterMetricFamily(f"facelens_frigate_{name}", text)
            family.add_metric([], float(value))
            return family

        counts = self.counts
        yield counter(
            "messages", "Messages received on Frigate's events topic.", self.inbox.received
        )
        rejected = CounterMetricFamily(
            "facelens_frigate_messages_rejected",
            "Messages not handled, by reason (too large, no room, not a Frigate event, a "
            "field not in Frigate's format, handling failed).",
            labels=["reason"],
        )
        for reason, count in counts.rejected.counts().items():
            rejected.add_metric([reason], float(count))
        yield rejected
        yield counter("events", "Person events seen.", counts.events)
        yield counter("snapshots", "Snapshots tried.", counts.attempts)
        yield counter(
            "snapshot_failures", "Snapshots that could not be fetched or read.", counts.failures
        )
        yield counter("named", "Events whose sub-label was set.", counts.named)
        messages, size = self.inbox.waiting()
        queued = GaugeMetricFamily(
            "facelens_frigate_queue_messages", "Messages waiting for recognition."
        )
        queued.add_metric([], float(messages))
        queued_bytes = GaugeMetricFamily(
            "facelens_frigate_queue_bytes", "Bytes of the messages waiting for recognition."
        )
        queued_bytes.add_metric([], float(size))
        yield from (queued, queued_bytes)
