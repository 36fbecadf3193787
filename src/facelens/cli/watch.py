"""``facelens watch``: cameras and video files, tracked faces, events as JSON lines."""

from __future__ import annotations

import json
import signal
import sys
import threading
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from facelens.cli.app import app, engine_for_gallery, err, escape, handled, open_gallery
from facelens.errors import InputPathError, InvalidValue

DRAIN_S = 20.0  # at the end, how long events still pending may take to go


class EventsOut(StrEnum):
    jsonl = "jsonl"
    none = "none"


@app.command()
def watch(
    ctx: typer.Context,
    sources: Annotated[
        list[str],
        typer.Argument(
            help="Video files, rtsp:// or http(s):// streams (MJPEG too), or camera indexes "
            "(0) or devices (/dev/video0)."
        ),
    ],
    fps: Annotated[
        float | None,
        typer.Option(
            help="Frames per second to process per source (unset: as fast as it keeps up).", min=0.1
        ),
    ] = None,
    events: Annotated[
        EventsOut, typer.Option(help="Print events on stdout as JSON lines, or not.")
    ] = EventsOut.jsonl,
    webhook: Annotated[
        str | None, typer.Option(help="POST each event as JSON to this URL (retried).")
    ] = None,
    mqtt: Annotated[
        str | None,
        typer.Option(
            help="Publish events and presence to this broker: mqtt[s]://[user:pass@]host[:port]."
        ),
    ] = None,
    annotate: Annotated[
        Path | None,
        typer.Option(
            help="Write the first source's processed frames, faces boxed and named, to this .mp4."
        ),
    ] = None,
) -> None:
    """Follow the faces in video: each face is tracked, recognised once (then again only when
    it is seen better), and reported when it arrives, is renamed and leaves. Events are stored
    in the data directory (events.sqlite3) before they are printed or delivered. Ctrl-C ends
    cleanly, with a summary."""
    from facelens.video.delivery import Courier, Mqtt
    from facelens.video.delivery import webhook as webhook_sender
    from facelens.video.eventlog import EventLog
    from facelens.video.source import FrameSource, mask
    from facelens.video.tracks import Event, StreamTracker
    from facelens.video.watch import Watched, stream_name
    from facelens.video.watch import watch as run

    with handled(ctx) as state:
        if annotate is not None:
            if len(sources) > 1:
                raise InvalidValue("--annotate writes one video: give one source with it.")
            if annotate.suffix.lower() != ".mp4":
                raise InvalidValue(f"{annotate}: --annotate writes an .mp4 file.")
            annotate.parent.mkdir(parents=True, exist_ok=True)
        readers = []
        for source in sources:
            try:
                readers.append(FrameSource(source))
            except FileNotFoundError:
                raise InputPathError(
                    f"{source}: no such file (give a video file, a stream URL or a camera)."
                ) from None
        gallery = open_gallery(state)
        engine = engine_for_gallery(state, gallery)
        # A target is named by its URL's digest: what one run could not deliver goes to the same
        # receiver with the next run (never to another), and no secret is stored in clear.
        targets: dict[str, tuple[object, str]] = {}
        if webhook:
            targets[_target("webhook", webhook)] = (webhook_sender(webhook), mask(webhook))
        publisher = None
        if mqtt:
            try:
                publisher = Mqtt(mqtt)
            except ValueError as exc:
                raise InvalidValue(str(exc)) from None
            targets[_target("mqtt", mqtt)] = (publisher.send, mask(mqtt))
        log = EventLog(state.settings.data_dir / "events.sqlite3", targets=targets)
        log.forget_before(days=state.settings.events_retention_days)
        couriers = [
            Courier(log, target, send, shown).start()  # type: ignore[arg-type]
            for target, (send, shown) in targets.items()
        ]
        taken: set[str] = set()
        streams = [
            Watched(
                r.start(),
                StreamTracker(stream_name(r.source, taken), engine, gallery.index, fps=fps or 10.0),
            )
            for r in readers
        ]

        def printed(found: list[Event]) -> None:
            if events is EventsOut.jsonl:
                for event in found:
                    sys.stdout.write(json.dumps(event.as_dict(), ensure_ascii=False) + "\n")
                sys.stdout.flush()

        stop = threading.Event()
        previous = signal.signal(signal.SIGINT, lambda *_: stop.set())  # Ctrl-C: end cleanly
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            reports = run(streams, log, printed, fps=fps, stop=stop, annotate=annotate)
        finally:
            signal.signal(signal.SIGINT, previous)
            for courier in couriers:
                if not courier.drain(timeout=DRAIN_S):
                    err.print(
                        escape(
                            f"{courier.shown}: events not delivered yet stay stored and go "
                            "with the next run to it."
                        )
                    )
                courier.stop()
            if publisher is not None:
                publisher.close()
            log.close()
            gallery.close()
        for report in reports:
            err.print(
                escape(
                    f"{report.name} ({report.source}): {report.frames_processed} frames processed "
                    f"of {report.frames_read} read ({report.frames_dropped} dropped), "
                    f"{report.tracks} faces tracked, {report.embeddings} embeddings, "
                    f"{report.reconnects} reconnects; seen: "
                    + (", ".join(sorted(report.people)) or "nobody")
                )
            )


def _target(kind: str, url: str) -> str:
    import hashlib

    return f"{kind}:{hashlib.sha256(url.encode()).hexdigest()[:16]}"
