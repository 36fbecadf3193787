"""``facelens watch``: cameras and video files, tracked faces, events as JSON lines."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from facelens.cli.app import (
    app,
    engine_for_gallery,
    err,
    escape,
    handled,
    open_gallery,
    serve_metrics,
    until_stopped,
)
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
            help="Publish events and presence to this broker: mqtt\\[s]://\\[user:pass@]host\\[:port]."
        ),
    ] = None,
    annotate: Annotated[
        Path | None,
        typer.Option(
            help="Write the first source's processed frames, faces boxed and named, to this .mp4."
        ),
    ] = None,
    crops: Annotated[
        bool,
        typer.Option(
            "--crops",
            help="Put a small JPEG of the face in each event (base64 'crop'); off by default "
            "(biometric data). Env FACELENS_EVENT_CROPS.",
        ),
    ] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve Prometheus metrics (frames, drops, embeddings per second and per "
            "track) on this loopback port while watching.",
            min=0,
            max=65535,
        ),
    ] = None,
) -> None:
    """Follow the faces in video: each face is tracked, recognised once (then again only when
    it is seen better), and reported when it arrives, is renamed and leaves. Events are stored
    in the data directory (events.sqlite3) before they are printed or delivered. Ctrl-C ends
    cleanly, with a summary."""
    from facelens.events.delivery import Deliveries
    from facelens.events.event import Event
    from facelens.events.log import EventLog
    from facelens.gallery import shared_url
    from facelens.video.loop import VideoOut, Watched, stream_name
    from facelens.video.policy import SourcePolicy
    from facelens.video.session import Session
    from facelens.video.source import FrameSource

    with handled(ctx) as state:
        if annotate is not None:
            if len(sources) > 1:
                raise InvalidValue("--annotate writes one video: give one source with it.")
            if annotate.suffix.lower() != ".mp4":
                raise InvalidValue(f"{annotate}: --annotate writes an .mp4 file.")
            annotate.parent.mkdir(parents=True, exist_ok=True)
        readers = []
        # Any file or camera its user can open; URLs as FACELENS_STREAM_* allow.
        policy = SourcePolicy.of(state.settings, any_local=True)
        for source in sources:
            try:
                readers.append(FrameSource(source, policy))
            except FileNotFoundError:
                raise InputPathError(
                    f"{source}: no such file (give a video file, a stream URL or a camera)."
                ) from None
        try:
            deliveries = Deliveries(
                webhook,
                mqtt,
                attempts=state.settings.events_delivery_attempts,
                timeout_s=state.settings.events_delivery_timeout_s,
            )
        except ValueError as exc:
            raise InvalidValue(str(exc)) from None
        streams: list[Watched] = []  # the session's, once made
        if metrics_port is not None:  # a port in use is said before anything is opened
            from facelens.video.metrics import StreamMetrics

            serve_metrics(
                metrics_port,
                StreamMetrics(lambda: {w.tracker.stream: w.status() for w in streams}),
            )
        gallery = open_gallery(state, follow=True)  # runs for months: follows other servers
        engine = engine_for_gallery(state, gallery)
        log = EventLog(
            state.settings.events_path, targets=deliveries.names, url=shared_url(state.settings)
        )
        log.prune_every(days=state.settings.events_retention_days)  # now, then hourly
        deliveries.start(log)
        session = Session(
            engine,
            gallery.index,
            log,
            fps=fps,
            crops=crops or state.settings.event_crops,
            streams=streams,
        )
        taken: set[str] = set()
        for reader in readers:
            session.watch(stream_name(reader.source, taken), reader)
        video = VideoOut(annotate) if annotate is not None else None

        def printed(found: list[Event]) -> None:
            if events is EventsOut.jsonl:
                for event in found:
                    sys.stdout.write(json.dumps(event.as_dict(), ensure_ascii=False) + "\n")
                sys.stdout.flush()

        try:
            with until_stopped() as stop:  # Ctrl-C: end cleanly
                reports = session.run(
                    printed,
                    stop=stop,
                    on_frame=(lambda w, f: video(w, f) if w is streams[0] else None)
                    if video
                    else None,
                )
        finally:
            if video is not None:
                video.close()
            for shown in deliveries.close(drain_s=DRAIN_S):
                err.print(
                    escape(
                        f"{shown}: events not delivered yet stay stored and go with the next "
                        "run to it."
                    )
                )
            for status in deliveries.status():
                if status["given_up"]:
                    why = status["last_error"] or "see the log"
                    err.print(
                        escape(
                            f"{status['url']}: {status['given_up']} events given up on after "
                            f"{deliveries.attempts} attempts each (last: {why}); they stay "
                            "stored as dead until a server's POST /v1/events/deliveries/retry "
                            "sends them again."
                        )
                    )
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
