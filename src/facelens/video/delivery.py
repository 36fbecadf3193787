"""Delivery of stored events: a webhook (POST JSON) and MQTT, each on its own thread, from the
event log's outbox. A target that fails is retried with capped back-off and jitter; recognition
never waits for it. At least once: a receiver de-duplicates by the event's ``id``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from facelens.video.eventlog import EventLog
from facelens.video.source import backoff_s, mask

log = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], None]
CONNECT_WAIT_S = 5.0
RETRY_CAP_S = 10.0


class Courier:
    """Delivers one target's pending events, oldest first, until stopped."""

    def __init__(self, events: EventLog, target: str, send: Send, shown: str) -> None:
        self.events, self.target, self.send, self.shown = events, target, send, shown
        self.delivered = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"deliver {shown}", daemon=True)

    def start(self) -> Courier:
        self._thread.start()
        return self

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            batch = self.events.pending(self.target)
            if not batch:
                with self.events.added:
                    self.events.added.wait(timeout=0.5)
                continue
            for seq, event in batch:
                try:
                    self.send(event)
                except Exception as exc:  # any failure of the target: retried, never fatal
                    failures += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    wait = backoff_s(failures, first=0.5, cap=RETRY_CAP_S)
                    log.warning(
                        "delivery to %s failed (%s); retrying in %.1f s",
                        self.shown,
                        self.last_error,
                        wait,
                    )
                    self._stop.wait(wait)
                    break
                failures = 0
                self.last_error = None
                self.events.delivered(self.target, seq)
                self.delivered += 1

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for every pending event to go; whether they all went."""
        deadline = threading.Event()
        for _ in range(int(timeout * 10)):
            if not self.events.pending(self.target, 1):
                return True
            deadline.wait(0.1)
        return not self.events.pending(self.target, 1)

    def stop(self) -> None:
        self._stop.set()
        with self.events.added:
            self.events.added.notify_all()
        self._thread.join(timeout=10)


def webhook(url: str) -> Send:
    """POST each event as JSON to ``url``; a non-2xx answer is a failure (retried)."""
    client = httpx.Client(timeout=httpx.Timeout(10.0))

    def send(event: dict[str, Any]) -> None:
        answer = client.post(url, json=event, headers={"Idempotency-Key": event["id"]})
        answer.raise_for_status()

    return send


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


class Deliveries:
    """The targets events go to (a webhook, an MQTT broker), each with its courier thread."""

    def __init__(self, webhook_url: str | None, mqtt_url: str | None) -> None:
        self.publisher = Mqtt(mqtt_url) if mqtt_url else None  # ValueError: a bad URL
        self._targets: dict[str, tuple[Send, str]] = {}
        if webhook_url:
            self._targets[target_name("webhook", webhook_url)] = (
                webhook(webhook_url),
                mask(webhook_url),
            )
        if mqtt_url and self.publisher is not None:
            self._targets[target_name("mqtt", mqtt_url)] = (self.publisher.send, mask(mqtt_url))
        self.couriers: list[Courier] = []

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._targets)

    def start(self, events: EventLog) -> Deliveries:
        self.couriers = [
            Courier(events, name, send, shown).start()
            for name, (send, shown) in self._targets.items()
        ]
        return self

    def close(self, drain_s: float) -> list[str]:
        """Give pending events up to ``drain_s`` s to go, then stop; the targets (shown) that
        still have some (they stay stored and go with the next run)."""
        late = [c.shown for c in self.couriers if not c.drain(timeout=drain_s)]
        for courier in self.couriers:
            courier.stop()
        if self.publisher is not None:
            self.publisher.close()
        return late
