"""``facelens frigate`` as a process, with the real model and the shared people enrolled,
Debian's mosquitto as the broker, and a stand-in for Frigate's HTTP API (its snapshots and its
sub-label route, as in ../shared/specs/compat-apis.md §4): Frigate's event messages go in, the
right sub-labels come out."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.mqtt import Broker, Subscriber, wait_until
from tests.server import FACELENS, enrolled

pytestmark = pytest.mark.integration


class FakeFrigate:
    """Frigate's API as the bridge uses it: snapshots by event, the newest frame by camera,
    and sub-labels written back (recorded); 404 for what it does not have."""

    def __init__(self, snapshots: dict[str, bytes], latest: dict[str, bytes]) -> None:
        self.gets: list[str] = []
        self.sub_labels: list[tuple[str, dict[str, Any]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # the http.server interface
                outer.gets.append(self.path)
                parts = urlsplit(self.path).path.strip("/").split("/")
                image = None
                if parts[:2] == ["api", "events"] and parts[3:] == ["snapshot.jpg"]:
                    image = snapshots.get(parts[2])
                elif len(parts) == 3 and parts[0] == "api" and parts[2] == "latest.jpg":
                    image = latest.get(parts[1])
                if image is None:
                    self._answer(404, b'{"success":false}', "application/json")
                else:
                    self._answer(200, image, "image/jpeg")

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                event = self.path.strip("/").split("/")[2]
                outer.sub_labels.append((event, body))
                self._answer(200, b'{"success":true,"message":"ok"}', "application/json")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def frigate_event(kind: str, event: str, camera: str, label: str, snapshot: bool) -> str:
    """A ``frigate/events`` message as Frigate 0.16 publishes it (the fields the bridge
    reads, and a few it must not trip on)."""
    after = {
        "id": event,
        "camera": camera,
        "label": label,
        "sub_label": None,
        "top_score": 0.84,
        "has_snapshot": snapshot,
        "current_zones": [],
        "attributes": {"face": 0.9},
    }
    return json.dumps({"type": kind, "before": after, "after": after})


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, people_dir: Path) -> Path:
    return enrolled(tmp_path_factory.mktemp("frigate") / "data", people_dir)


def test_frigate_person_events_get_their_sub_label_and_strangers_none(
    data: Path, faces_dir: Path, lfw_dir: Path, tmp_path: Path
) -> None:
    obama = (faces_dir / "probes" / "obama1.jpg").read_bytes()
    stranger = next(p for p in sorted((lfw_dir / "probes").iterdir()))  # not enrolled here
    frigate = FakeFrigate(
        snapshots={"ev-obama": obama, "ev-stranger": stranger.read_bytes()},
        latest={"front_door": obama},
    )
    broker = Broker(tmp_path).start()
    verdicts = Subscriber(broker.port, "facelens/frigate/#")
    assert verdicts.subscribed.wait(20)
    options = ["--frigate", frigate.url, "--mqtt", f"mqtt://127.0.0.1:{broker.port}"]
    bridge = subprocess.Popen(
        [FACELENS, "--data-dir", str(data), "frigate", *options, "--attempts", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    said: list[str] = []
    assert bridge.stderr is not None
    stderr = bridge.stderr

    def read() -> None:
        said.extend(iter(stderr.readline, ""))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2)
    publisher.connect("127.0.0.1", broker.port)
    publisher.loop_start()
    try:
        wait_until(lambda: any("subscribed" in line for line in said), 120, f"the bridge {said}")
        messages = [
            # A car: not a person, never fetched.
            frigate_event("new", "ev-car", "front_door", "car", False),
            "not a frigate message",  # ignored, nothing breaks
            # Obama: no snapshot yet (the camera's newest frame), named at once, then no more.
            frigate_event("new", "ev-obama", "front_door", "person", False),
            frigate_event("update", "ev-obama", "front_door", "person", True),
            frigate_event("end", "ev-obama", "front_door", "person", True),
            # A stranger: tried on 3 snapshots, then left alone; never labelled.
            *[frigate_event("update", "ev-stranger", "garden", "person", True)] * 5,
            frigate_event("end", "ev-stranger", "garden", "person", True),
            # An event Frigate cannot show: counted, no harm.
            frigate_event("new", "ev-gone", "garden", "person", True),
        ]
        for message in messages:
            publisher.publish("frigate/events", message, qos=1).wait_for_publish(10)
        wait_until(
            lambda: len([t for t, _, _ in verdicts.messages]) >= 4,
            120,
            f"the verdicts ({verdicts.messages}; {said})",
        )
        wait_until(lambda: any("ev-gone" in g for g in frigate.gets), 60, "the last event")
    finally:
        publisher.loop_stop()
        bridge.send_signal(signal.SIGINT)
        bridge.wait(timeout=60)
        reader.join(timeout=10)
        verdicts.close()
        broker.stop()
        frigate.close()
    assert bridge.returncode == 0, said
    # Only Obama's event was labelled, once, with a score Frigate takes (0 < score ≤ 1).
    assert [event for event, _ in frigate.sub_labels] == ["ev-obama"]
    body = frigate.sub_labels[0][1]
    assert body["subLabel"] == "obama" and 0 < body["subLabelScore"] <= 1
    # What was fetched: the camera's frame for Obama (no snapshot yet), 3 snapshots for the
    # stranger, nothing for the car.
    assert [g for g in frigate.gets if "ev-obama" in g or "front_door" in g] == [
        "/api/front_door/latest.jpg?h=500"
    ]
    assert len([g for g in frigate.gets if "ev-stranger" in g]) == 3
    assert all("snapshot.jpg?h=500&crop=1" in g for g in frigate.gets if "ev-stranger" in g)
    assert not [g for g in frigate.gets if "ev-car" in g]
    # Each verdict published in Frigate's own face-update shape.
    published = [json.loads(p) for _, p, _ in verdicts.messages]
    front = [v for v in published if v["camera"] == "front_door"]
    garden = [v for v in published if v["camera"] == "garden"]
    assert [(v["id"], v["name"]) for v in front] == [("ev-obama", "obama")]
    assert [(v["id"], v["name"], v["attempt"]) for v in garden] == [
        ("ev-stranger", None, 1),
        ("ev-stranger", None, 2),
        ("ev-stranger", None, 3),
    ]
    assert all(v["type"] == "face" for v in published)
    summary = "".join(said)
    assert "3 person events" in summary and "1 named (obama)" in summary
    assert "1 snapshots not fetched" in summary


def test_bad_frigate_or_broker_addresses_are_refused_at_once(data: Path) -> None:
    for options, said in (
        (["--frigate", "frigate:5000", "--mqtt", "mqtt://127.0.0.1"], "--frigate frigate:5000"),
        (["--frigate", "http://frigate:5000", "--mqtt", "http://u:secret@broker"], "mqtt://"),
    ):
        refused = subprocess.run(
            [FACELENS, "--data-dir", str(data), "frigate", *options],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode == 9, refused.stderr  # an unusable value
        assert said in refused.stderr and "secret" not in refused.stderr
