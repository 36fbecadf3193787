"""A bridge for Frigate NVR: Frigate tells MQTT about each tracked object; for a person, the
bridge fetches the event's snapshot from Frigate's API, recognises it against the gallery, and
writes the name back as the event's sub-label (what Double Take does, without Double Take).

The contract (``../shared/specs/compat-apis.md`` §4, checked against Frigate's
``frigate/api/media.py``): ``frigate/events`` messages carry ``{"type": "new"|"update"|"end",
"after": {"id", "camera", "label", "has_snapshot", "sub_label", ...}}``; the snapshot is ``GET
/api/events/{id}/snapshot.jpg?height=500&crop=1`` (Frigate reads ``height``; Double Take's ``h``
is ignored), which Frigate serves for an event in progress even before ``has_snapshot`` (its
best frame so far, cropped to the person); the name goes back with ``POST
/api/events/{id}/sub_label {"subLabel", "subLabelScore"}``. The camera's whole frame is never
used: it holds everyone in view, not the event's person. Nor is an ended event's snapshot:
Frigate then answers the stored one as its snapshot settings made it (``crop`` off by default:
the whole frame), ignoring the query (it marks it cacheable, an event in progress ``no-store``).
A snapshot with several faces names nobody (which face is the event's person is not known).
An event that already has a sub-label (from Frigate's face or logo models, or a person) is left
alone unless ``overwrite_sub_labels``. Each event is tried at most ``attempts`` times (on its
new and update messages) and not again once named. Every attempt's verdict is published to
``facelens/frigate/<camera>`` in the shape of Frigate's own ``tracked_object_update`` face
message (``name`` null and ``score`` 0.0 when nobody is named).

Anyone who can publish to the broker can write to the events topic, so every message is checked
before anything is done with it: its size, its JSON, and each field the bridge reads against
Frigate's own formats (the event id goes into Frigate API paths, escaped as well; the camera name
into the verdict's topic).
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

from facelens.core.matching import UNKNOWN
from facelens.core.pipeline import RecognizedFace
from facelens.errors import FaceLensError
from facelens.integrations.frigate_messages import (
    FrigateEvent,
    Inbox,
    Rejected,
    Tally,
    parse_event,
    shown,
)

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


class EventEnded(FaceLensError):
    """Frigate answered an ended event's stored snapshot (made as its settings say, often
    the whole frame) instead of one cropped to the person."""

    code = "frigate_event_ended"


@dataclass(frozen=True, slots=True)
class Verdict:
    event: str
    camera: str
    name: str | None  # None: nobody named (no known face, or several faces)
    confidence: float  # 0.0 when nobody is named, as Frigate sends
    distance: float | None
    attempt: int
    written: bool  # the sub-label was set in Frigate
    faces: int = 1  # faces found in the snapshot

    def as_message(self, timestamp: float) -> dict[str, Any]:
        """Frigate's own face update shape, with our distance, attempt and face count."""
        return {
            "type": "face",
            "id": self.event,
            "name": self.name,
            "score": self.confidence,
            "camera": self.camera,
            "timestamp": timestamp,
            "distance": self.distance,
            "attempt": self.attempt,
            "faces": self.faces,
        }


@dataclass(slots=True)
class BridgeCounts:
    events: int = 0  # person events seen
    attempts: int = 0
    named: int = 0
    failures: int = 0  # snapshots that could not be fetched or read
    kept: int = 0  # events left alone: Frigate or a person had named them
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
        overwrite_sub_labels: bool = False,
    ) -> None:
        self.frigate = frigate
        self.recognize = recognize
        self.attempts = attempts
        self.labels = frozenset(labels)
        self.cameras = frozenset(cameras)
        self.counts = counts or BridgeCounts()
        self.announce = announce  # each verdict, once made
        self.overwrite_sub_labels = overwrite_sub_labels
        self._tried: OrderedDict[str, int] = OrderedDict()  # event id → attempts (-1: named)
        self._kept: OrderedDict[str, None] = OrderedDict()  # events left with their sub-label

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
        """Try to name the event's person, if it is one, still unnamed (by us, Frigate or a
        person) and under its attempts; the verdict, or None when nothing was tried."""
        if not self.wanted(event):
            return None
        tried = self._tried.get(event.id, 0)
        if event.type == "end":  # done with it, whatever happened; its snapshot is no crop
            self._tried.pop(event.id, None)
            self._kept.pop(event.id, None)
            return None
        if tried < 0:  # named by us: its sub-label is ours
            return None
        if event.sub_label is not None and not self.overwrite_sub_labels:
            self._keep(event)
            return None
        if tried >= self.attempts:
            return None
        if tried == 0:
            self.counts.events += 1
        self._remember(self._tried, event.id, tried + 1)
        self.counts.attempts += 1
        try:
            faces = self.recognize(self._snapshot(event), f"frigate event {event.id}")
        except (httpx.HTTPError, FaceLensError) as exc:
            self.counts.failures += 1
            log.warning("frigate event %s: no snapshot to recognise (%s)", event.id, exc)
            return None
        if len(faces) != 1 or faces[0].match.name == UNKNOWN:
            if len(faces) > 1:
                log.info(
                    "frigate event %s: %d faces in the snapshot; which is the event's person "
                    "is not known, so none names it",
                    event.id,
                    len(faces),
                )
            nearest = min(
                (f.match.distance for f in faces if f.match.distance is not None), default=None
            )
            distance = None if nearest is None else round(nearest, 4)
            return Verdict(
                event.id, event.camera, None, 0.0, distance, tried + 1, False, len(faces)
            )
        (face,) = faces
        written = self._write_back(event, face)
        if written:
            self.counts.named += 1
            self.counts.labelled.add(face.match.name)
            if event.type != "end":
                self._remember(self._tried, event.id, -1)
        return Verdict(
            event.id,
            event.camera,
            face.match.name,
            round(face.match.confidence, 4),
            None if face.match.distance is None else round(face.match.distance, 4),
            tried + 1,
            written,
        )

    def _keep(self, event: FrigateEvent) -> None:
        """Leave an event named by Frigate or a person alone (counted and logged once)."""
        if event.id not in self._kept:
            self.counts.kept += 1
            log.info(
                "frigate event %s already has the sub-label %s: left alone "
                "(--overwrite-sub-labels names it anyway)",
                event.id,
                shown(event.sub_label),
            )
        self._remember(self._kept, event.id, None)

    @staticmethod
    def _remember(memory: OrderedDict[str, Any], event_id: str, value: Any) -> None:
        memory[event_id] = value
        memory.move_to_end(event_id)
        while len(memory) > REMEMBERED:
            memory.popitem(last=False)

    def _snapshot(self, event: FrigateEvent) -> bytes:
        """The event's snapshot, cropped to its person: Frigate serves it while the event is
        in progress (its best frame so far) whether or not ``has_snapshot`` says so yet.
        :class:`EventEnded` if the event ended meanwhile (the snapshot stored, not cropped)."""
        answer = self.frigate.get(
            f"/api/events/{segment(event.id)}/snapshot.jpg",
            params={"height": SNAPSHOT_HEIGHT, "crop": 1},
        )
        answer.raise_for_status()
        if "no-store" not in answer.headers.get("cache-control", "no-store"):
            raise EventEnded(
                "the event has ended: Frigate answered its stored snapshot, not one cropped "
                "to the person"
            )
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
        yield counter(
            "kept", "Person events left alone: Frigate or a person had named them.", counts.kept
        )
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
