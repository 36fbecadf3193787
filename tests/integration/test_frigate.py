"""``facelens frigate`` as a process, with the real model and the shared people enrolled,
Debian's mosquitto as the broker, and a stand-in for Frigate's HTTP API (its snapshots and its
sub-label route, as in ../shared/specs/compat-apis.md §4): Frigate's event messages go in, the
right sub-labels come out."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from facelens.integrations.frigate_messages import MESSAGE_BYTES, QUEUED_BYTES
from tests.integration.test_watch import metrics_at
from tests.support.mqtt import Broker, Subscriber, free_port, wait_until
from tests.support.server import FACELENS, enrolled

pytestmark = pytest.mark.integration


class FakeFrigate:
    """Frigate's API as the bridge may use it: snapshots by event (served whatever the event's
    ``has_snapshot``, as Frigate does for events in progress), the newest frame by camera (the
    whole frame, which the bridge must not use), and sub-labels written back (recorded); 404
    for what it does not have. Every request is recorded (method, path). A snapshot of an event
    in ``hold`` is answered slowly, a byte at a time, until ``release`` is set: the bridge waits
    for it (never timing out) meanwhile."""

    def __init__(
        self, snapshots: dict[str, bytes], latest: dict[str, bytes], hold: str | None = None
    ) -> None:
        self.gets: list[str] = []
        self.requests: list[tuple[str, str]] = []
        self.sub_labels: list[tuple[str, dict[str, Any]]] = []
        self.holding = threading.Event()  # a held snapshot is being answered
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _hold(self) -> None:
                body = b" " * 2000 + b'{"success":false}'
                self.send_response(404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                outer.holding.set()
                sent = 0
                while not outer.release.wait(0.5) and sent < 1000:
                    self.wfile.write(body[sent : sent + 1])  # within the bridge's read timeout
                    sent += 1
                self.wfile.write(body[sent:])

            def do_GET(self) -> None:  # the http.server interface
                outer.gets.append(self.path)
                outer.requests.append(("GET", self.path))
                parts = urlsplit(self.path).path.strip("/").split("/")
                image = None
                if parts[:2] == ["api", "events"] and parts[3:] == ["snapshot.jpg"]:
                    if parts[2] == hold:
                        return self._hold()
                    image = snapshots.get(parts[2])
                elif len(parts) == 3 and parts[0] == "api" and parts[2] == "latest.jpg":
                    image = latest.get(parts[1])
                if image is None:
                    self._answer(404, b'{"success":false}', "application/json")
                else:
                    self._answer(200, image, "image/jpeg")

            def do_POST(self) -> None:
                outer.requests.append(("POST", self.path))
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = urlsplit(self.path).path.strip("/").split("/")
                if len(parts) != 4 or parts[:2] != ["api", "events"] or parts[3] != "sub_label":
                    return self._answer(404, b'{"success":false}', "application/json")
                outer.sub_labels.append((parts[2], json.loads(body)))
                self._answer(200, b'{"success":true,"message":"ok"}', "application/json")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()


class Bridge:
    """``facelens frigate`` as a process on ``data``, its stderr read line by line."""

    def __init__(self, data: Path, frigate: FakeFrigate, broker: Broker, *options: str) -> None:
        self.process = subprocess.Popen(
            [
                FACELENS,
                "--data-dir",
                str(data),
                "frigate",
                "--frigate",
                frigate.url,
                "--mqtt",
                f"mqtt://127.0.0.1:{broker.port}",
                *options,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.said: list[str] = []
        assert self.process.stderr is not None
        stderr = self.process.stderr
        self.reader = threading.Thread(
            target=lambda: self.said.extend(iter(stderr.readline, "")), daemon=True
        )
        self.reader.start()
        wait_until(
            lambda: (
                any("subscribed" in line for line in self.said) or self.process.poll() is not None
            ),
            120,
            f"the bridge ({self.said})",
        )
        assert self.process.poll() is None, self.said

    def stop(self) -> str:
        """Ctrl-C; all it said."""
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=60)
        self.reader.join(timeout=10)
        return "".join(self.said)


class Publisher:
    """Frigate's side of the broker (or anyone's who may publish to it)."""

    def __init__(self, broker: Broker) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def send(self, *payloads: str | bytes) -> None:
        for payload in payloads:
            self.client.publish("frigate/events", payload, qos=1).wait_for_publish(30)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def frigate_event(
    kind: Any, event: Any, camera: Any, label: Any, snapshot: Any, **more: Any
) -> str:
    """A ``frigate/events`` message as Frigate 0.16 publishes it (the fields the bridge
    reads, and a few it must not trip on); any field may be given any JSON value."""
    after = {
        "id": event,
        "camera": camera,
        "label": label,
        "sub_label": None,
        "top_score": 0.84,
        "has_snapshot": snapshot,
        "current_zones": [],
        "attributes": {"face": 0.9},
        **more,
    }
    return json.dumps({"type": kind, "before": after, "after": after})


# Event ids as Frigate makes them: the frame time, a dash, six random [a-z0-9].
CAR = "1718900001.123456-car001"
OBAMA = "1718900002.123456-obama1"
STRANGER = "1718900003.123456-strang"
GONE = "1718900004.123456-gone01"
HOLD = "1718900005.123456-hold01"
BIG = "1718900006.123456-big001"
PORCH = "1718900007.123456-porch1"
KEPT = "1718900008.123456-kept01"
PAIR = "1718900009.123456-pair01"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, people_dir: Path) -> Path:
    return enrolled(tmp_path_factory.mktemp("frigate") / "data", people_dir)


@pytest.fixture(scope="module")
def obama(faces_dir: Path) -> bytes:
    return (faces_dir / "probes" / "obama1.jpg").read_bytes()


def test_frigate_person_events_get_their_sub_label_and_strangers_none(
    data: Path, obama: bytes, lfw_dir: Path, faces_dir: Path, tmp_path: Path
) -> None:
    stranger = next(p for p in sorted((lfw_dir / "probes").iterdir())).read_bytes()  # not enrolled
    two = (faces_dir / "probes" / "two_people.jpg").read_bytes()  # Biden and Obama
    frigate = FakeFrigate(
        snapshots={OBAMA: obama, STRANGER: stranger, PORCH: stranger, KEPT: obama, PAIR: two},
        # The porch camera's whole frame shows Obama; the porch event's person is a stranger.
        latest={"front_door": obama, "porch": obama},
    )
    broker = Broker(tmp_path).start()
    verdicts = Subscriber(broker.port, "facelens/frigate/#")
    assert verdicts.subscribed.wait(20)
    bridge = Bridge(data, frigate, broker, "--attempts", "3")
    publisher = Publisher(broker)
    try:
        publisher.send(
            # A car: not a person, never fetched.
            frigate_event("new", CAR, "front_door", "car", False),
            "not a frigate message",  # rejected, nothing breaks
            # Obama: no snapshot yet (the camera's newest frame), named at once, then no more.
            frigate_event("new", OBAMA, "front_door", "person", False),
            frigate_event("update", OBAMA, "front_door", "person", True),
            frigate_event("end", OBAMA, "front_door", "person", True),
            # A stranger: tried on 3 snapshots, then left alone; never labelled.
            *[frigate_event("update", STRANGER, "garden", "person", True)] * 5,
            frigate_event("end", STRANGER, "garden", "person", True),
            # An event Frigate cannot show: counted, no harm.
            frigate_event("new", GONE, "garden", "person", True),
            # A stranger in progress before Frigate has a snapshot, on a camera whose whole
            # frame shows Obama: judged on the event's own snapshot, never the whole frame.
            frigate_event("new", PORCH, "porch", "person", False),
            # Named already (Frigate 0.14's [name, score]): left alone, never fetched.
            frigate_event("update", KEPT, "porch", "person", True, sub_label=["Bob", 0.93]),
            # Two faces in the snapshot: which is the event's person is not known; no name.
            frigate_event("update", PAIR, "porch", "person", True),
        )
        wait_until(
            lambda: len([t for t, _, _ in verdicts.messages]) >= 6,
            120,
            f"the verdicts ({verdicts.messages}; {bridge.said})",
        )
        wait_until(lambda: any(GONE in g for g in frigate.gets), 60, "the last event")
    finally:
        publisher.close()
        summary = bridge.stop()
        verdicts.close()
        broker.stop()
        frigate.close()
    assert bridge.process.returncode == 0, summary
    # Only Obama's event was labelled, once, with a score Frigate takes (0 < score ≤ 1).
    assert [event for event, _ in frigate.sub_labels] == [OBAMA]
    body = frigate.sub_labels[0][1]
    assert body["subLabel"] == "obama" and 0 < body["subLabelScore"] <= 1
    # What was fetched: each event's own snapshot at Frigate's `height` (Obama's before
    # has_snapshot), 3 for the stranger, never a camera's whole frame, nothing for the car or
    # the event named already.
    assert [g for g in frigate.gets if OBAMA in g] == [
        f"/api/events/{OBAMA}/snapshot.jpg?height=500&crop=1"
    ]
    assert len([g for g in frigate.gets if STRANGER in g]) == 3
    assert all(g.endswith("/snapshot.jpg?height=500&crop=1") for g in frigate.gets), frigate.gets
    assert not [g for g in frigate.gets if CAR in g or KEPT in g]
    # Each verdict published in Frigate's own face-update shape; nobody named scores 0.0.
    published = [json.loads(p) for _, p, _ in verdicts.messages]
    front = [v for v in published if v["camera"] == "front_door"]
    garden = [v for v in published if v["camera"] == "garden"]
    porch = {v["id"]: v for v in published if v["camera"] == "porch"}
    assert [(v["id"], v["name"]) for v in front] == [(OBAMA, "obama")]
    assert [(v["id"], v["name"], v["score"], v["attempt"]) for v in garden] == [
        (STRANGER, None, 0.0, 1),
        (STRANGER, None, 0.0, 2),
        (STRANGER, None, 0.0, 3),
    ]
    assert sorted(porch) == [PORCH, PAIR]
    assert (porch[PORCH]["name"], porch[PORCH]["score"]) == (None, 0.0)
    assert (porch[PAIR]["name"], porch[PAIR]["faces"]) == (None, 2)
    assert all(v["type"] == "face" for v in published)
    assert "5 person events" in summary and "1 named (obama)" in summary
    assert "1 left with the sub-label they had" in summary
    assert "1 snapshots not fetched" in summary
    assert "1 messages rejected (json 1)" in summary


def test_hostile_messages_are_rejected_one_by_one_and_the_bridge_goes_on(
    data: Path, obama: bytes, tmp_path: Path
) -> None:
    # Anyone who may publish to the broker: control characters where Frigate's API paths are
    # made, paths out of the event's route, fields of the wrong type, not JSON at all.
    restart = "../../api/restart?"
    forged = "front_door\r\nINFO forged line"
    hostile: list[tuple[str | bytes, str]] = [
        (frigate_event("new", restart, "front_door", "person", True), "id"),
        (frigate_event("new", CAR, restart, "person", False), "camera"),
        (frigate_event("new", "1718900000.1-ab\x00c", "front_door", "person", True), "id"),
        (frigate_event("new", "1718900000.1-abc\n", "front_door", "person", True), "id"),
        (frigate_event("new", CAR, "front\x1b[2Jdoor", "person", False), "camera"),
        (frigate_event("new", CAR, forged, "person", False), "camera"),
        (frigate_event("new", "1718900000.1-abc%2F..", "front_door", "person", True), "id"),
        (frigate_event("new", 1718900000.1, "front_door", "person", True), "id"),
        (frigate_event("new", [OBAMA], "front_door", "person", True), "id"),
        (frigate_event("new", CAR, ["front_door"], "person", False), "camera"),
        (frigate_event("new", CAR, None, "person", False), "camera"),
        (frigate_event("new", CAR, "front_door", {"person": 1}, True), "label"),
        (frigate_event("new", CAR, "front_door", "person", "true"), "has_snapshot"),
        (frigate_event(["new"], CAR, "front_door", "person", True), "type"),
        (json.dumps({"type": "new", "after": [OBAMA]}), "shape"),
        (json.dumps([{"after": {"id": OBAMA}}]), "shape"),
        ("{not json", "json"),
        (b"\xff\xfe\x00\x01", "json"),
        ("[" * 50_000, "json"),
    ]
    frigate = FakeFrigate(snapshots={OBAMA: obama}, latest={"front_door": obama})
    broker = Broker(tmp_path).start()
    bridge = Bridge(data, frigate, broker)
    publisher = Publisher(broker)
    try:
        publisher.send(*(payload for payload, _ in hostile))
        publisher.send(frigate_event("new", OBAMA, "front_door", "person", True))
        wait_until(
            lambda: frigate.sub_labels or bridge.process.poll() is not None,
            120,
            f"the good event ({bridge.said})",
        )
        assert bridge.process.poll() is None, "".join(bridge.said)  # still running
    finally:
        publisher.close()
        said = bridge.stop()
        broker.stop()
        frigate.close()
    assert bridge.process.returncode == 0, said
    # Frigate was asked for the good event's snapshot and its sub-label, and nothing else.
    assert frigate.requests == [
        ("GET", f"/api/events/{OBAMA}/snapshot.jpg?height=500&crop=1"),
        ("POST", f"/api/events/{OBAMA}/sub_label"),
    ]
    assert [(event, body["subLabel"]) for event, body in frigate.sub_labels] == [(OBAMA, "obama")]
    # Each one logged and counted by its reason; the summary has the counts.
    assert f"{len(hostile)} messages rejected (" in said
    for reason, count in Counter(reason for _, reason in hostile).items():
        assert f"{reason} {count}" in said
    logged = [line for line in bridge.said if "frigate message rejected" in line]
    assert len(logged) == len(hostile)
    # No control character reached the log: each is shown escaped and forges no line.
    assert "\x1b" not in said and "\x00" not in said
    assert not [line for line in bridge.said if line.startswith("INFO forged")]
    assert repr(forged) in said


def test_huge_payloads_and_floods_are_dropped_within_byte_caps_and_counted(
    data: Path, obama: bytes, tmp_path: Path
) -> None:
    # While the bridge waits for one snapshot (answered a byte at a time), messages pile up:
    # what waits is capped at MESSAGE_BYTES a message and QUEUED_BYTES in all.
    def padded(event: str, label: str, size: int) -> str:
        # The padding is in "before" and "after"; trailing whitespace makes up the odd byte.
        short = len(frigate_event("new", event, "front_door", label, True, padding=""))
        pad = "x" * ((size - short) // 2)
        message = frigate_event("new", event, "front_door", label, True, padding=pad)
        return message + " " * (size - len(message))

    huge = padded(BIG, "person", 5 * 1024 * 1024)  # a person event, but 5 MB
    large = padded(CAR, "car", MESSAGE_BYTES)  # as large as a message may be
    assert len(huge) == 5 * 1024 * 1024 and len(large) == MESSAGE_BYTES
    fit = QUEUED_BYTES // MESSAGE_BYTES
    flood = [large] * (fit + 8) + [frigate_event("update", CAR, "front_door", "car", True)] * 300
    frigate = FakeFrigate(snapshots={OBAMA: obama}, latest={}, hold=HOLD)
    broker = Broker(tmp_path).start()
    port = free_port()
    bridge = Bridge(data, frigate, broker, "--metrics-port", str(port))
    publisher = Publisher(broker)
    metrics = f"http://127.0.0.1:{port}/metrics"
    arrived = ("facelens_frigate_messages_total", ())
    waiting = ("facelens_frigate_queue_messages", ())
    try:
        publisher.send(huge, frigate_event("new", HOLD, "front_door", "person", True))
        wait_until(frigate.holding.is_set, 120, f"the held snapshot ({bridge.said})")
        publisher.send(*flood)
        wait_until(lambda: metrics_at(metrics)[arrived] == 2 + len(flood), 120, "the flood")
        held = metrics_at(metrics)
        frigate.release.set()
        wait_until(lambda: metrics_at(metrics)[waiting] == 0, 120, "the queue to drain")
        publisher.send(frigate_event("new", OBAMA, "front_door", "person", True))
        wait_until(
            lambda: frigate.sub_labels or bridge.process.poll() is not None,
            120,
            f"the good event ({bridge.said})",
        )
        assert bridge.process.poll() is None, "".join(bridge.said)  # still running
        drained = metrics_at(metrics)
    finally:
        publisher.close()
        said = bridge.stop()
        broker.stop()
        frigate.close()
    assert bridge.process.returncode == 0, said
    rejected = "facelens_frigate_messages_rejected_total"
    # While held: as many large messages as QUEUED_BYTES holds waited; the rest were dropped.
    assert held[waiting] == fit
    assert held[("facelens_frigate_queue_bytes", ())] == fit * MESSAGE_BYTES
    assert held[(rejected, (("reason", "too_large"),))] == 1
    assert held[(rejected, (("reason", "queue_full"),))] == len(flood) - fit
    # Then the queue drained (bytes too) and the good event was named; the huge one and the
    # dropped ones were never fetched.
    assert drained[("facelens_frigate_queue_bytes", ())] == 0
    assert [event for event, _ in frigate.sub_labels] == [OBAMA]
    assert {path for _, path in frigate.requests} == {
        f"/api/events/{HOLD}/snapshot.jpg?height=500&crop=1",
        f"/api/events/{OBAMA}/snapshot.jpg?height=500&crop=1",
        f"/api/events/{OBAMA}/sub_label",
    }
    assert f"{len(flood) - fit + 1} messages rejected (too_large 1, queue_full" in said


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
