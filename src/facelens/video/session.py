"""One video session, the same for ``facelens watch``, a server's stream and the benchmark:
sources read as named streams, each followed by its tracker (one engine, one gallery index),
and the frame loop (:func:`facelens.video.loop.watch`) storing their events before anything
is told."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from facelens.core.matching import GalleryIndex
from facelens.core.pipeline import Engine
from facelens.events.event import Event
from facelens.events.log import EventLog
from facelens.video.loop import StreamReport, Watched, watch
from facelens.video.source import Frame, FrameSource
from facelens.video.tracks import StreamTracker

DEFAULT_FPS = 10.0  # frames a tracker expects per second when no rate is asked for


@dataclass
class Session:
    """Streams watched with ``engine`` against the gallery ``index`` (read again as it
    changes), at most ``fps`` frames a second each (None: as they come), their events stored
    in ``events``; ``crops``: events carry the face's crop."""

    engine: Engine
    index: Callable[[], GalleryIndex]
    events: EventLog
    fps: float | None = None
    crops: bool = False
    streams: list[Watched] = field(default_factory=list)

    def watch(self, name: str, source: FrameSource) -> Watched:
        """Start reading ``source`` as the stream ``name``."""
        tracker = StreamTracker(
            name, self.engine, self.index, fps=self.fps or DEFAULT_FPS, crops=self.crops
        )
        watched = Watched(source.start(), tracker)
        self.streams.append(watched)
        return watched

    def run(
        self,
        on_events: Callable[[list[Event]], None],
        *,
        stop: threading.Event,
        on_frame: Callable[[Watched, Frame], None] | None = None,
        on_tick: Callable[[], None] | None = None,
    ) -> list[StreamReport]:
        """The frame loop until every source has ended or ``stop`` is set (see
        :func:`facelens.video.loop.watch`); what each stream did."""
        return watch(
            self.streams,
            self.events,
            on_events,
            fps=self.fps,
            stop=stop,
            on_frame=on_frame,
            on_tick=on_tick,
        )
