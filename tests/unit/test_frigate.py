"""The parts of 'facelens frigate' that need no model, broker or Frigate: what a message must be
to be handled, the bounded inbox, the per-message boundary of the bridge and its metrics."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from facelens.frigate import BridgeCounts, FrigateBridge, FrigateMetrics, Verdict
from facelens.frigate_messages import FrigateEvent, Inbox, Rejected, Tally, parse_event
from facelens.pipeline import RecognizedFace

EVENT = "1718900000.123456-abc123"


def message(**after: Any) -> bytes:
    """A ``frigate/events`` message; ``after`` overrides the fields of a good one (``type``
    included, which sits beside ``after``)."""
    kind = after.pop("type", "new")
    fields = {"id": EVENT, "camera": "front_door", "label": "person", "has_snapshot": True}
    fields.update(after)
    return json.dumps({"type": kind, "before": fields, "after": fields}).encode()


def test_a_frigate_event_is_read_with_its_fields() -> None:
    event = parse_event(message(type="update", camera="Garden_2-b", has_snapshot=False))
    assert (event.id, event.type, event.camera, event.label) == (
        EVENT,
        "update",
        "Garden_2-b",
        "person",
    )
    assert event.has_snapshot is False
    # Frigate's ids as its own code makes them: the frame time's float, however many decimals.
    for good in ("1607123955.475377-mxklsc", "1718900000.1-a1b2c3", "1718900000-zzzzzz"):
        assert parse_event(message(id=good)).id == good
    assert parse_event(message(label="traffic light")).label == "traffic light"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "json"),
        (b"\xff\xfe\x00garbage", "json"),
        (b"[" * 100_000, "json"),  # deeper than the parser goes
        (b"[1, 2]", "shape"),
        (b'{"type": "new"}', "shape"),
        (b'{"type": "new", "after": "x"}', "shape"),
        (message(type="restart"), "type"),
        (message(type=["new"]), "type"),  # unhashable: must not raise TypeError
        (message(type=None), "type"),
        (message(id="ev\x00il"), "id"),
        (message(id="1718900000.1-abc\n"), "id"),  # $ would have let the newline through
        (message(id="../../api/restart?"), "id"),
        (message(id="1718900000.1-ABC"), "id"),
        (message(id="\uff11\uff17\uff11\uff18.1-abc"), "id"),  # full-width digits: \d takes them
        (message(id=1718900000.1), "id"),
        (message(id=["1718900000.1-abc"]), "id"),
        (message(id=None), "id"),
        (message(id="1718900000.1-" + "a" * 5000), "id"),
        (message(camera="front\x1b[2Jdoor"), "camera"),
        (message(camera="../../api/restart?"), "camera"),
        (message(camera="front door"), "camera"),
        (message(camera="%2e%2e"), "camera"),
        (message(camera=""), "camera"),
        (message(camera=7), "camera"),
        (message(camera={"name": "x"}), "camera"),
        (message(label=None), "label"),
        (message(label="per\nson"), "label"),
        (message(label="x" * 101), "label"),
        (message(has_snapshot="yes"), "has_snapshot"),
        (message(has_snapshot=1), "has_snapshot"),
    ],
)
def test_anything_but_a_frigate_event_in_frigates_formats_is_rejected_with_its_reason(
    payload: bytes, reason: str
) -> None:
    with pytest.raises(Rejected) as refused:
        parse_event(payload)
    assert refused.value.reason == reason
    assert "\n" not in refused.value.message and "\x1b" not in refused.value.message
    assert len(refused.value.message) < 200  # the value cut short, not 5,000 characters


def test_the_inbox_caps_each_message_and_the_bytes_and_count_waiting() -> None:
    tally = Tally()
    inbox = Inbox(tally, messages=3, message_bytes=100, total_bytes=250)
    inbox.put(b"x" * 101)  # larger than any message may be
    for _ in range(3):
        inbox.put(b"y" * 100)  # the third does not fit in 250 bytes
    assert inbox.waiting() == (2, 200)
    inbox.put(b"z" * 10)
    inbox.put(b"z" * 10)  # three waiting: no more
    assert inbox.waiting() == (3, 210)
    assert tally.counts()["too_large"] == 1 and tally.counts()["queue_full"] == 2
    assert inbox.received == 6
    assert [inbox.get(timeout=1) for _ in range(3)] == [b"y" * 100, b"y" * 100, b"z" * 10]
    assert inbox.get(timeout=0.01) is None and inbox.waiting() == (0, 0)
    inbox.put(b"z" * 10)  # room again
    assert inbox.waiting() == (1, 10)


class Recorder:
    """Frigate's API as an httpx transport: every request's path recorded; 200 with
    ``snapshot`` for each, or 404 if there is none."""

    def __init__(self, snapshot: bytes | None) -> None:
        self.snapshot = snapshot
        self.paths: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.raw_path.decode())
        if self.snapshot is None:
            return httpx.Response(404, json={"success": False})
        return httpx.Response(200, content=self.snapshot)


def bridge_with(
    recognize: Any, announce: Any = lambda _: None, snapshot: bytes | None = None
) -> tuple[FrigateBridge, Recorder]:
    recorder = Recorder(snapshot)
    client = httpx.Client(base_url="http://frigate:5000", transport=httpx.MockTransport(recorder))
    return FrigateBridge(client, recognize, announce=announce), recorder


def test_one_message_whatever_it_does_never_ends_the_bridge(
    caplog: pytest.LogCaptureFixture,
) -> None:
    crash = "1718900000.2-crash1"

    def recognize(data: bytes, source: str) -> Sequence[RecognizedFace]:
        if crash in source:
            raise RuntimeError("boom\nINFO forged line")
        return []  # nobody: a verdict with no name

    def announce(verdict: Verdict) -> None:
        if verdict.camera == "noisy":
            raise ValueError("cannot publish")

    bridge, frigate = bridge_with(recognize, announce, snapshot=b"a jpeg")
    with caplog.at_level(logging.WARNING):
        assert bridge.receive(message(id=crash)) is None  # recognition raised
        assert bridge.receive(message(id="1718900000.3-abc", camera="noisy")) is None
        assert bridge.receive(message(id="../../api/restart?")) is None
        assert bridge.receive(b"\x00" * 10) is None
        verdict = bridge.receive(message())
    assert verdict is not None and verdict.event == EVENT and verdict.name is None
    counts = bridge.counts.rejected.counts()
    assert counts["error"] == 2 and counts["id"] == 1 and counts["json"] == 1
    assert bridge.counts.attempts == 3  # the crash, the noisy one and the good one
    assert frigate.paths == [
        f"/api/events/{e}/snapshot.jpg?h=500&crop=1" for e in (crash, "1718900000.3-abc", EVENT)
    ]
    logged = [r.getMessage() for r in caplog.records]
    assert any("(error): RuntimeError: 'boom\\nINFO forged line'" in line for line in logged)
    assert all("\n" not in line for line in logged)


def test_ids_and_cameras_stay_within_their_path_segment_even_past_the_checks() -> None:
    bridge, frigate = bridge_with(lambda data, source: [])
    bridge.handle(parse_event(message(has_snapshot=False)))
    # Past the checks (a future format, a caller of handle), a value still stays in its segment.
    bridge.handle(FrigateEvent("1/../x?y#z", "new", "a/../../restart?", "person", False))
    bridge.handle(FrigateEvent("1/../x?y#z", "new", "a/../../restart?", "person", True))
    with pytest.raises(ValueError, match="path segment"):  # receive() counts it an error
        bridge.handle(FrigateEvent("..", "new", "..", "person", True))
    assert frigate.paths == [
        "/api/front_door/latest.jpg?h=500",
        "/api/a%2F..%2F..%2Frestart%3F/latest.jpg?h=500",
        "/api/events/1%2F..%2Fx%3Fy%23z/snapshot.jpg?h=500&crop=1",
    ]


def test_the_metrics_count_messages_and_rejects_by_reason() -> None:
    counts = BridgeCounts()
    inbox = Inbox(counts.rejected, message_bytes=50)
    inbox.put(b"x" * 51)
    inbox.put(b"{}")
    counts.rejected.add("camera")
    counts.attempts = 2
    registry = CollectorRegistry()
    registry.register(FrigateMetrics(counts, inbox))
    samples = {
        (s.name, tuple(s.labels.values())): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }
    assert samples[("facelens_frigate_messages_total", ())] == 2
    assert samples[("facelens_frigate_messages_rejected_total", ("too_large",))] == 1
    assert samples[("facelens_frigate_messages_rejected_total", ("camera",))] == 1
    assert samples[("facelens_frigate_messages_rejected_total", ("json",))] == 0
    assert samples[("facelens_frigate_snapshots_total", ())] == 2
    assert samples[("facelens_frigate_queue_messages", ())] == 1
    assert samples[("facelens_frigate_queue_bytes", ())] == 2
