"""``facelens frigate``: name the people Frigate NVR sees, as its events' sub-labels."""

from __future__ import annotations

import json
import queue
import time
from typing import Annotated

import typer

from facelens.cli.app import (
    app,
    engine_for_gallery,
    err,
    escape,
    handled,
    open_gallery,
    until_stopped,
)
from facelens.errors import InvalidValue

QUEUED = 256  # Frigate events waiting for recognition beyond this are dropped (and logged)


@app.command()
def frigate(
    ctx: typer.Context,
    frigate_url: Annotated[
        str,
        typer.Option(
            "--frigate",
            help="Frigate's API, e.g. http://frigate:5000 (the internal port, which needs no "
            "login).",
        ),
    ],
    mqtt: Annotated[
        str,
        typer.Option(
            help="The broker Frigate publishes to: mqtt\\[s]://\\[user:pass@]host\\[:port]."
        ),
    ],
    topic_prefix: Annotated[
        str, typer.Option(help="Frigate's MQTT topic prefix (its mqtt.topic_prefix).")
    ] = "frigate",
    camera: Annotated[
        list[str] | None,
        typer.Option(help="Only these cameras (repeat the option); unset: every camera."),
    ] = None,
    attempts: Annotated[
        int, typer.Option(help="Snapshots tried per event before giving up.", min=1, max=20)
    ] = 3,
) -> None:
    """Name the people in Frigate's events: for each person event (new, then updates), fetch
    its snapshot from Frigate, recognise it against the gallery, and set the event's sub-label
    to the name (up to --attempts snapshots, none after a match). Each verdict is published to
    facelens/frigate/<camera>. Ctrl-C ends with a summary."""
    import httpx

    from facelens.frigate import FrigateBridge, parse_event
    from facelens.recognition import recognize_bytes
    from facelens.video.delivery import Mqtt, topic_part
    from facelens.video.source import mask

    with handled(ctx) as state:
        if not frigate_url.startswith(("http://", "https://")):
            raise InvalidValue(f"--frigate {mask(frigate_url)}: give http(s)://host:port.")
        waiting: queue.Queue[bytes] = queue.Queue(QUEUED)
        dropped = [0]

        def arrived(payload: bytes) -> None:  # paho's thread: hand over, never block it
            try:
                waiting.put_nowait(payload)
            except queue.Full:
                dropped[0] += 1

        try:
            broker = Mqtt(mqtt, subscriptions={f"{topic_prefix}/events": arrived})
        except ValueError as exc:
            raise InvalidValue(str(exc)) from None
        gallery = open_gallery(state)  # Frigate's messages wait in the queue meanwhile
        engine = engine_for_gallery(state, gallery)
        client = httpx.Client(base_url=frigate_url.rstrip("/"), timeout=httpx.Timeout(10.0))
        bridge = FrigateBridge(
            client,
            lambda data, source: recognize_bytes(engine, data, source, gallery.index()).faces,
            attempts=attempts,
            cameras=camera or (),
        )

        def handle(payload: bytes) -> None:
            event = parse_event(payload)
            verdict = None if event is None else bridge.handle(event)
            if verdict is None:
                return
            message = json.dumps(verdict.as_message(time.time()))
            try:
                broker.publish(f"facelens/frigate/{topic_part(verdict.camera)}", message)
            except (ConnectionError, TimeoutError) as exc:
                err.print(escape(f"the verdict was not published ({exc})"))

        err.print(
            escape(
                f"watching {topic_prefix}/events on {mask(mqtt)} for Frigate at "
                f"{mask(frigate_url)}; Ctrl-C ends"
            )
        )
        announced = False
        try:
            with until_stopped() as stop:  # Ctrl-C: end cleanly
                while not stop.is_set():
                    if not announced and broker.subscribed.is_set():
                        announced = True
                        err.print(escape(f"subscribed to {topic_prefix}/events"))
                    try:
                        handle(waiting.get(timeout=0.5))
                    except queue.Empty:
                        continue
        finally:
            broker.close()
            client.close()
            gallery.close()
        counts = bridge.counts
        err.print(
            escape(
                f"{counts.events} person events, {counts.attempts} snapshots tried, "
                f"{counts.named} named ({', '.join(sorted(counts.labelled)) or 'nobody'}), "
                f"{counts.failures} snapshots not fetched, {dropped[0]} messages dropped"
            )
        )
