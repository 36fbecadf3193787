"""An event: a person arrived at, was renamed on, or left a camera's view. Made by the video
tracker (``video/tracks.py``), stored in the event log and delivered as JSON."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from facelens.models.base import Box

Kind = Literal["arrived", "renamed", "left"]


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    kind: Kind
    stream: str
    track: int
    name: str
    distance: float | None
    confidence: float | None
    box: Box
    time: datetime
    duration_s: float | None = None  # for "left": how long the track was there
    previous: str | None = None  # for "renamed": the name it had
    crop: bytes | None = None  # a JPEG of the face, when crops are switched on
    # When the newest frame the event rests on was taken (monotonic s): where its latency
    # starts. Not part of the event as told.
    basis: float = field(default=0.0, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "stream": self.stream,
            "track": self.track,
            "name": self.name,
            "distance": self.distance,
            "confidence": self.confidence,
            "box": self.box.as_dict(),
            "time": self.time.isoformat(),
            "duration_s": self.duration_s,
            "previous": self.previous,
            "crop": None if self.crop is None else base64.b64encode(self.crop).decode("ascii"),
        }
