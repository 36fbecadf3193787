"""Delivery of stored events: a webhook (POST JSON) and MQTT, each on its own thread, from the
event log's outbox. A target that fails is retried with capped back-off and jitter; recognition
never waits for it. At least once: a receiver de-duplicates by the event's ``id``.

In order, one event at a time, per target. An event the target was reached with but did not
take (any answer but 2xx, a redirect included; no complete answer in time) is tried at most
``attempts`` times, then given up on: it stays in the outbox, ``dead``, and the events after it
go on (so they overtake it). While the target cannot be reached at all (no connection, no
broker), nothing is counted and every event waits, in order, for as long as it takes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from facelens.errors import StorageError
from facelens.events.log import EventLog
from facelens.events.webhook import Webhook
from facelens.system.backoff import backoff_s
from facelens.system.redact import endpoint, mask

log = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], None]
CONNECT_WAIT_S = 5.0
RETRY_FIRST_S = 0.5
RETRY_CAP_S = 30.0  # the longest wait between two attempts
CLAIM_RETRY_S = 2.0  # how often a server that does not deliver a target checks it may


class Courier:
    """Delivers one target's pending events, oldest first, until stopped."""

    def __init__(
        self, events: EventLog, target: str, send: Send, shown: str, *, attempts: int
    ) -> None:
        self.events, self.target, self.send, self.shown = events, target, send, shown
        self.attempts = attempts
        self.delivered = self.failures = self.given_up = 0  # this run's
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"deliver {shown}", daemon=True)

    def start(self) -> Courier:
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        failures = 0  # in a row: how long to wait before the next attempt
        while not self._stop.is_set():
            try:
                failures = self._deliver(failures)
            except (sqlite3.Error, StorageError) as exc:  # the outbox itself (busy, disk full):
                # tried again; a courier that ended here would deliver nothing more until a restart
                log.warning(
                    "delivery to %s: the outbox cannot be read or written: %s", self.shown, exc
                )
                self._stop.wait(RETRY_CAP_S)

    def _deliver(self, failures: int) -> int:
        """Try the pending events once each, in order, until one fails; the failures in a row."""
        if not self.events.claim(self.target):  # another server delivers them now
            self._stop.wait(CLAIM_RETRY_S)
            return failures
        batch = self.events.pending(self.target)
        if not batch:
            with self.events.added:
                self.events.added.wait(timeout=0.5)
            return failures
        for seq, event in batch:
            if self._stop.is_set():
                break
            try:
                self.send(event)
            except Exception as exc:  # any failure of the target: retried, never fatal
                self.failures += 1
                self.last_error = mask(f"{type(exc).__name__}: {exc}")
                counted = not isinstance(exc, ConnectionError)
                tried = self.events.failed(self.target, seq, self.last_error, counted=counted)
                if counted and tried >= self.attempts:
                    self.events.give_up(self.target, seq)
                    self.given_up += 1
                    log.error(
                        "delivery to %s: event %s given up after %d attempts (%s); kept in the "
                        "outbox as dead (POST /v1/events/deliveries/retry sends it again)",
                        self.shown,
                        event.get("id"),
                        tried,
                        self.last_error,
                    )
                    failures = 0
                    continue  # the next event, at once
                failures += 1
                wait = backoff_s(failures, first=RETRY_FIRST_S, cap=RETRY_CAP_S)
                log.warning(
                    "delivery to %s failed (%s); retrying in %.1f s",
                    self.shown,
                    self.last_error,
                    wait,
                )
                self._stop.wait(wait)
                return failures
            failures = 0
            self.last_error = None
            self.events.delivered(self.target, seq)
            self.delivered += 1
        return failures

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for every pending event to go; whether they all went
        (yes, when another server delivers them)."""
        if not self.events.claim(self.target):
            return True
        deadline = threading.Event()
        for _ in range(int(timeout * 10)):
            if not self.events.pending(self.target, 1):
                return True
            deadline.wait(0.1)
        return not self.events.pending(self.target, 1)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        with self.events.added:
            self.events.added.notify_all()
        self._thread.join(timeout=timeout)


def topic_part(text: str) -> str:
    """A name as one MQTT topic level: no level separator or wildcards."""
    return "".join("_" if c in "/+#" else c for c in text) or "_"


class Mqtt:
    """Events to ``facelens/events`` and each person's presence, retained, to
    ``facelens/<stream>/<person>`` (``present`` / ``absent``), at QoS 1. ``mqtt://`` or
    ``mqtts://`` (TLS), with ``user:password@`` if the broker wants credentials."""

    def __init__(
        self,
        url: str,
        prefix: str = "facelens",
        subscriptions: dict[str, Callable[[bytes], None]] | None = None,
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"{mask(url)}: give mqtt://host[:port] or mqtts://host[:port]")
        self.prefix = prefix
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"facelens-{uuid.uuid4().hex[:12]}"
        )
        if parts.username:
            self.client.username_pw_set(unquote(parts.username), unquote(parts.password or ""))
        if parts.scheme == "mqtts":
            self.client.tls_set()
        self.connected = threading.Event()
        self.subscriptions = subscriptions or {}
        self.client.on_connect = self._on_connect
        self.subscribed = threading.Event()  # the broker acknowledged our subscriptions
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.on_disconnect = lambda *_: self.connected.clear()
        self.client.reconnect_delay_set(min_delay=1, max_delay=5)
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        self.client.connect_async(parts.hostname, port)
        self.client.loop_start()

    def _on_connect(self, client: Any, *_: Any) -> None:
        # Subscribed again on every connection: a broker restarted without our session
        # forgets what we asked for.
        for topic in self.subscriptions:
            client.subscribe(topic, qos=1)
        self.connected.set()

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        import paho.mqtt.client as mqtt

        for topic, handle in self.subscriptions.items():
            if mqtt.topic_matches_sub(topic, message.topic):
                handle(bytes(message.payload))
                return

    def publish(self, topic: str, payload: str, *, retain: bool = False) -> None:
        if not self.connected.wait(CONNECT_WAIT_S):  # a reconnect under way: worth the wait
            raise ConnectionError("not connected to the MQTT broker")
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout=10)
        if not info.is_published():
            raise TimeoutError("the MQTT broker did not acknowledge the message")

    def send(self, event: dict[str, Any]) -> None:
        self.publish(f"{self.prefix}/events", json.dumps(event))
        topic = f"{self.prefix}/{topic_part(event['stream'])}/{topic_part(event['name'])}"
        if event["kind"] in ("arrived", "renamed"):
            self.publish(topic, "present", retain=True)
        if event["kind"] == "left":
            self.publish(topic, "absent", retain=True)
        if event["kind"] == "renamed" and event.get("previous"):
            old = f"{self.prefix}/{topic_part(event['stream'])}/{topic_part(event['previous'])}"
            self.publish(old, "absent", retain=True)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def target_name(kind: str, url: str) -> str:
    """A target's name in the outbox: its kind and its URL's digest. What one run could not
    deliver goes to the same receiver with the next run (never to another), and no secret is
    stored in clear."""
    return f"{kind}:{hashlib.sha256(url.encode()).hexdigest()[:16]}"


def target_names(webhook: str | None, mqtt: str | None) -> tuple[str, ...]:
    """The outbox names of these targets (for a process that stores events others deliver)."""
    return tuple(
        target_name(kind, url) for kind, url in (("webhook", webhook), ("mqtt", mqtt)) if url
    )


@dataclass(frozen=True, slots=True)
class Target:
    name: str  # in the outbox: kind and digest (no secret)
    kind: str  # webhook or mqtt
    shown: str  # scheme://host[:port]/…: no credentials, path or query
    send: Send
    close: Callable[[], None]


class Deliveries:
    """The targets events go to (a webhook, an MQTT broker), each with its courier thread."""

    def __init__(
        self,
        webhook_url: str | None,
        mqtt_url: str | None,
        *,
        attempts: int,
        timeout_s: float,
    ) -> None:
        self.publisher = Mqtt(mqtt_url) if mqtt_url else None  # ValueError: a bad URL
        self.attempts, self.timeout_s = attempts, timeout_s
        self._targets: list[Target] = []
        if webhook_url:
            hook = Webhook(webhook_url, timeout_s)
            name = target_name("webhook", webhook_url)
            shown = endpoint(webhook_url)
            self._targets.append(Target(name, "webhook", shown, hook, hook.close))
        if mqtt_url and self.publisher is not None:
            name = target_name("mqtt", mqtt_url)
            self._targets.append(
                Target(name, "mqtt", endpoint(mqtt_url), self.publisher.send, lambda: None)
            )
        self.couriers: list[Courier] = []

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self._targets)

    def start(self, events: EventLog) -> Deliveries:
        self.couriers = [
            Courier(events, t.name, t.send, t.shown, attempts=self.attempts).start()
            for t in self._targets
        ]
        return self

    def status(self) -> list[dict[str, Any]]:
        """Each target's delivery since the start: what went, failed attempts, events given
        up on, and why the last attempt failed (None: it did not)."""
        couriers = {c.target: c for c in self.couriers}
        found = []
        for t in self._targets:
            c = couriers.get(t.name)  # none before start()
            found.append(
                {
                    "target": t.name,
                    "kind": t.kind,
                    "url": t.shown,
                    "running": c is not None and c.running,
                    "delivered": c.delivered if c else 0,
                    "failed_attempts": c.failures if c else 0,
                    "given_up": c.given_up if c else 0,
                    "last_error": c.last_error if c else None,
                }
            )
        return found

    def close(self, drain_s: float) -> list[str]:
        """Give pending events up to ``drain_s`` s to go, then stop; the targets (shown) that
        still have some (they stay stored and go with the next run)."""
        late = [c.shown for c in self.couriers if not c.drain(timeout=drain_s)]
        for courier in self.couriers:
            courier.stop(timeout=self.timeout_s + 5)  # an attempt under way ends by then
        busy = {c.target for c in self.couriers if c.running}  # an attempt that would not end
        for target in self._targets:
            if target.name not in busy:
                target.close()
        if self.publisher is not None:
            self.publisher.close()
        return late


class DeliveryMetrics(Collector):
    """``facelens_event_deliveries_total`` (by target and result: delivered, failed attempt,
    given up) of this process's couriers, and ``facelens_event_outbox`` (events by target and
    state: pending, dead) of the outbox on disk, labelled by outbox name (no secret)."""

    def __init__(self, deliveries: Deliveries, events: EventLog) -> None:
        self.deliveries, self.events = deliveries, events

    def collect(self) -> Iterator[Metric]:
        done = CounterMetricFamily(
            "facelens_event_deliveries",
            "Delivery attempts of events since the start, by target and result (delivered, "
            "failed: an attempt that failed, given_up: an event marked dead).",
            labels=["target", "result"],
        )
        for status in self.deliveries.status():
            for result, key in (
                ("delivered", "delivered"),
                ("failed", "failed_attempts"),
                ("given_up", "given_up"),
            ):
                done.add_metric([status["target"], result], float(status[key]))
        outbox = GaugeMetricFamily(
            "facelens_event_outbox",
            "Events in the outbox, by target and state (pending: still to go; dead: given up "
            "on, kept until retried or past retention).",
            labels=["target", "state"],
        )
        for box in self.events.outboxes():
            outbox.add_metric([box.target, "pending"], float(box.pending))
            outbox.add_metric([box.target, "dead"], float(box.dead))
        yield from (done, outbox)
