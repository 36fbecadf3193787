"""A real MQTT broker (Debian's mosquitto) on a free loopback port, and a real subscriber
(paho), for the tests of event delivery and of the Frigate bridge."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

MOSQUITTO = "/usr/sbin/mosquitto"


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """Debian's mosquitto on a free loopback port, stopped and started at will."""

    def __init__(self, folder: Path) -> None:
        if shutil.which(MOSQUITTO) is None:
            pytest.fail(f"{MOSQUITTO} is missing: scripts/test installs Debian's mosquitto.")
        self.port = free_port()
        self.config = folder / "mosquitto.conf"
        # Persistence: a subscriber's session (and what is queued for it) outlives a restart.
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {folder}/\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Broker:
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._listening, 20, "mosquitto to listen")
        return self

    def _listening(self) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=20)
            self.process = None


class Subscriber:
    """A real MQTT client (paho) that records what the broker gives it, reconnecting."""

    def __init__(self, port: int, topic: str, session: str | None = None) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[tuple[str, bytes, bool]] = []
        self.subscribed = threading.Event()
        # A named session (clean_session off): the broker keeps what it owes while we are away.
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=session or "", clean_session=session is None
        )
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = lambda c, u, m: self.messages.append(
            (m.topic, m.payload, bool(m.retain))
        )
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect_async("127.0.0.1", port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
