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
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from facelens.errors import FaceLensError
from facelens.matching import UNKNOWN
from facelens.pipeline import RecognizedFace

log = logging.getLogger(__name__)

REMEMBERED = 2000  # events whose attempts are remembered (oldest forgotten first)
SNAPSHOT_HEIGHT = 500
SUB_LABEL_MAX = 100  # Frigate refuses longer sub-labels

Recognize = Callable[[bytes, str], Sequence[RecognizedFace]]


@dataclass(frozen=True, slots=True)
class FrigateEvent:
    id: str
    type: str  # new, update, end
    camera: str
    label: str
    has_snapshot: bool


def parse_event(payload: bytes) -> FrigateEvent | None:
    """A ``frigate/events`` message, or None for one that is not (logged, never fatal)."""
    try:
        message = json.loads(payload)
        after = message["after"]
        return FrigateEvent(
            str(after["id"]),
            str(message.get("type", "update")),
            str(after["camera"]),
            str(after.get("label", "")),
            bool(after.get("has_snapshot", False)),
        )
    except (ValueError, KeyError, TypeError):
        log.warning("a message on the Frigate events topic is not a Frigate event; ignored")
        return None


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
    ) -> None:
        self.frigate = frigate
        self.recognize = recognize
        self.attempts = attempts
        self.labels = frozenset(labels)
        self.cameras = frozenset(cameras)
        self.counts = BridgeCounts()
        self._tried: OrderedDict[str, int] = OrderedDict()  # event id → attempts (-1: named)

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
            path = f"/api/events/{event.id}/snapshot.jpg"
            params: dict[str, str | int] = {"h": SNAPSHOT_HEIGHT, "crop": 1}
        else:  # Frigate has no snapshot of it yet: the camera's newest frame
            path, params = f"/api/{event.camera}/latest.jpg", {"h": SNAPSHOT_HEIGHT}
        answer = self.frigate.get(path, params=params)
        answer.raise_for_status()
        return answer.content

    def _write_back(self, event: FrigateEvent, face: RecognizedFace) -> bool:
        score = min(1.0, max(0.01, round(face.match.confidence, 2)))  # Frigate: 0 < score ≤ 1
        try:
            answer = self.frigate.post(
                f"/api/events/{event.id}/sub_label",
                json={"subLabel": face.match.name[:SUB_LABEL_MAX], "subLabelScore": score},
            )
            answer.raise_for_status()
        except httpx.HTTPError as exc:
            log.warning("frigate event %s: the sub-label was not set (%s)", event.id, exc)
            return False
        return True
