"""``facelens frigate``: name the people Frigate NVR sees, as its events' sub-labels."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated

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
from facelens.errors import InvalidValue

if TYPE_CHECKING:
    pass


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
    overwrite_sub_labels: Annotated[
        bool,
        typer.Option(
            "--overwrite-sub-labels",
            help="Also name events that already have a sub-label (set by Frigate's face or "
            "logo models, or by a person). Off: they are left alone.",
        ),
    ] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve Prometheus metrics (messages, rejected messages by reason, events, "
            "snapshots, names, the queue) on this loopback port while bridging.",
            min=0,
            max=65535,
        ),
    ] = None,
) -> None:
    """Name the people in Frigate's events: for each person event (new, then updates), fetch
    its snapshot from Frigate (cropped to the person), recognise it against the gallery, and
    set the event's sub-label to the name when the snapshot holds one face and facelens names
    it (up to --attempts snapshots, none after a match). Events that already have a sub-label
    are left alone unless --overwrite-sub-labels. Each verdict is published to
    facelens/frigate/<camera>. Messages that are not Frigate events (or not in its formats) are
    logged, counted and skipped. Ctrl-C ends with a summary."""
    import httpx

    from facelens.core.recognition import recognize_bytes
    from facelens.events.delivery import Mqtt, topic_part
    from facelens.integrations.frigate import BridgeCounts, FrigateBridge, FrigateMetrics, Verdict
    from facelens.integrations.frigate_messages import Inbox
    from facelens.video.source import mask

    with handled(ctx) as state:
        if not frigate_url.startswith(("http://", "https://")):
            raise InvalidValue(f"--frigate {mask(frigate_url)}: give http(s)://host:port.")
        counts = BridgeCounts()
        inbox = Inbox(counts.rejected)  # paho's thread puts, never blocked; bounded
        if metrics_port is not None:
            serve_metrics(metrics_port, FrigateMetrics(counts, inbox))
        try:
            broker = Mqtt(mqtt, subscriptions={f"{topic_prefix}/events": inbox.put})
        except ValueError as exc:
            raise InvalidValue(str(exc)) from None
        gallery = open_gallery(state, follow=True)  # Frigate's messages wait in the inbox meanwhile
        engine = engine_for_gallery(state, gallery)
        client = httpx.Client(base_url=frigate_url.rstrip("/"), timeout=httpx.Timeout(10.0))

        def announce(verdict: Verdict) -> None:
            message = json.dumps(verdict.as_message(time.time()))
            try:
                broker.publish(f"facelens/frigate/{topic_part(verdict.camera)}", message)
            except (ConnectionError, TimeoutError) as exc:
                err.print(escape(f"the verdict was not published ({exc})"))

        bridge = FrigateBridge(
            client,
            lambda data, source: recognize_bytes(engine, data, source, gallery.index()).faces,
            attempts=attempts,
            cameras=camera or (),
            counts=counts,
            announce=announce,
            overwrite_sub_labels=overwrite_sub_labels,
        )

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
                    payload = inbox.get(timeout=0.5)
                    if payload is not None:
                        bridge.receive(payload)  # never raises: one message cannot end it
        finally:
            broker.close()
            client.close()
            gallery.close()
        rejected = {reason: n for reason, n in counts.rejected.counts().items() if n}
        err.print(
            escape(
                f"{counts.events} person events, {counts.attempts} snapshots tried, "
                f"{counts.named} named ({', '.join(sorted(counts.labelled)) or 'nobody'}), "
                f"{counts.kept} left with the sub-label they had, "
                f"{counts.failures} snapshots not fetched, "
                f"{sum(rejected.values())} messages rejected"
                + (f" ({', '.join(f'{r} {n}' for r, n in rejected.items())})" if rejected else "")
            )
        )
