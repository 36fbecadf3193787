"""The parts of 'facelens frigate' that need no model, broker or Frigate: what a message must be
to be handled, the bounded inbox, the per-message boundary of the bridge and its metrics."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from facelens.core.matching import UNKNOWN, Match
from facelens.core.pipeline import Face, RecognizedFace
from facelens.integrations.frigate import BridgeCounts, FrigateBridge, FrigateMetrics, Verdict
from facelens.integrations.frigate_messages import FrigateEvent, Inbox, Rejected, Tally, parse_event
from facelens.models.base import Box

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
    # The sub-label as Frigate 0.14 on sends it ([name, score]), as before (a name), or none.
    assert parse_event(message()).sub_label is None
    for none in (None, "", "  ", [None, None], ["", 0.0]):
        assert parse_event(message(sub_label=none)).sub_label is None, none
    assert parse_event(message(sub_label=["John Smith", 0.79])).sub_label == "John Smith"
    assert parse_event(message(sub_label=["fedex", None])).sub_label == "fedex"
    assert parse_event(message(sub_label="Alice")).sub_label == "Alice"


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
        (message(sub_label=7), "sub_label"),
        (message(sub_label=[]), "sub_label"),
        (message(sub_label={"name": "x"}), "sub_label"),
        (message(sub_label=["x", "0.9"]), "sub_label"),
        (message(sub_label=["x", 0.9, 1]), "sub_label"),
        (message(sub_label=["x", True]), "sub_label"),
        (message(sub_label=[["x"], 0.9]), "sub_label"),
        (message(sub_label="x\ny"), "sub_label"),
        (message(sub_label="x" * 101), "sub_label"),
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
    recognize: Any,
    announce: Any = lambda _: None,
    snapshot: bytes | None = None,
    **options: Any,
) -> tuple[FrigateBridge, Recorder]:
    recorder = Recorder(snapshot)
    client = httpx.Client(base_url="http://frigate:5000", transport=httpx.MockTransport(recorder))
    return FrigateBridge(client, recognize, announce=announce, **options), recorder


def face(name: str, distance: float = 0.3, left: int = 10) -> RecognizedFace:
    """A recognised face: named, or ``unknown`` (its nearest person ``distance`` away)."""
    known = name != UNKNOWN
    match = Match(name, distance, 0.8 if known else 0.2, None, None, False)
    box = Box(left, 10, left + 50, 60)
    return RecognizedFace(Face(box, 0.9, np.zeros((5, 2)), np.zeros(128, np.float32)), match)


def test_the_events_own_snapshot_is_asked_for_at_frigates_height_never_the_whole_frame() -> None:
    posted: list[dict[str, Any]] = []

    class Frigate(Recorder):
        def __call__(self, request: httpx.Request) -> httpx.Response:
            if request.method == "POST":
                posted.append(json.loads(request.content))
                return httpx.Response(200, json={"success": True})
            return super().__call__(request)

    frigate = Frigate(b"a jpeg")
    client = httpx.Client(base_url="http://frigate:5000", transport=httpx.MockTransport(frigate))
    bridge = FrigateBridge(client, lambda data, source: [face("obama")])
    # In progress, no snapshot yet: Frigate serves the event's best frame so far (media.py).
    verdict = bridge.receive(message(has_snapshot=False))
    assert verdict is not None and verdict.name == "obama" and verdict.written
    assert frigate.paths == [f"/api/events/{EVENT}/snapshot.jpg?height=500&crop=1"]
    assert posted == [{"subLabel": "obama", "subLabelScore": 0.8}]
    # Ended: Frigate would answer its stored snapshot as configured (often the whole frame),
    # not a crop; an end message is never fetched, with a snapshot or without.
    for has_snapshot in (True, False):
        ended = message(id="1718900001.5-other1", type="end", has_snapshot=has_snapshot)
        assert bridge.receive(ended) is None
    assert len(frigate.paths) == 1 and bridge.counts.attempts == 1


def test_a_snapshot_frigate_marks_as_an_ended_events_is_not_used() -> None:
    # The event ended between its message and the request: Frigate ignores height and crop
    # and answers the stored snapshot, cacheable (an event in progress is "no-store").
    seen: list[bytes] = []

    def ended(request: httpx.Request) -> httpx.Response:
        cache = {"cache-control": "private, max-age=31536000"}
        return httpx.Response(200, content=b"the whole frame", headers=cache)

    client = httpx.Client(base_url="http://frigate:5000", transport=httpx.MockTransport(ended))
    bridge = FrigateBridge(client, lambda data, source: seen.append(data) or [face("obama")])
    assert bridge.receive(message(type="update")) is None
    assert seen == [] and bridge.counts.failures == 1 and bridge.counts.named == 0


def test_a_snapshot_with_several_faces_names_nobody_and_strangers_score_zero() -> None:
    faces: list[RecognizedFace] = []
    verdicts: list[Verdict] = []
    bridge, frigate = bridge_with(lambda data, source: faces, verdicts.append, b"a jpeg")
    # A known face beside a stranger's: which is the event's person is not known.
    faces[:] = [face("obama", 0.3), face(UNKNOWN, 0.7, left=100)]
    bridge.receive(message(type="update"))
    # A stranger alone: no name, score 0.0 as Frigate sends, the nearest distance kept.
    faces[:] = [face(UNKNOWN, 0.7123456)]
    bridge.receive(message(type="update"))
    faces[:] = []  # no face at all
    bridge.receive(message(type="update"))
    assert [(v.name, v.confidence, v.faces, v.written) for v in verdicts] == [
        (None, 0.0, 2, False),
        (None, 0.0, 1, False),
        (None, 0.0, 0, False),
    ]
    published = [v.as_message(1.0) for v in verdicts]
    assert [(m["name"], m["score"], m["distance"]) for m in published] == [
        (None, 0.0, 0.3),
        (None, 0.0, 0.7123),
        (None, 0.0, None),
    ]
    assert bridge.counts.named == 0 and all("sub_label" not in p for p in frigate.paths)


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_sub_label_frigate_or_a_person_set_is_left_alone_unless_told(overwrite: bool) -> None:
    bridge, frigate = bridge_with(
        lambda data, source: [face("obama")], snapshot=b"a jpeg", overwrite_sub_labels=overwrite
    )
    named = message(type="update", sub_label=["Bob", 0.93])
    for payload in (named, named, message(type="end", sub_label=["Bob", 0.93])):
        bridge.receive(payload)
    if overwrite:
        assert frigate.paths[0] == f"/api/events/{EVENT}/snapshot.jpg?height=500&crop=1"
        assert f"/api/events/{EVENT}/sub_label" in frigate.paths
        assert bridge.counts.kept == 0
    else:
        assert frigate.paths == []  # not fetched, not written
        assert bridge.counts.kept == 1 and bridge.counts.attempts == 0


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
        f"/api/events/{e}/snapshot.jpg?height=500&crop=1"
        for e in (crash, "1718900000.3-abc", EVENT)
    ]
    logged = [r.getMessage() for r in caplog.records]
    assert any("(error): RuntimeError: 'boom\\nINFO forged line'" in line for line in logged)
    assert all("\n" not in line for line in logged)


def test_ids_stay_within_their_path_segment_even_past_the_checks() -> None:
    bridge, frigate = bridge_with(lambda data, source: [])
    bridge.handle(parse_event(message(has_snapshot=False)))
    # Past the checks (a future format, a caller of handle), a value still stays in its segment.
    bridge.handle(FrigateEvent("1/../x?y#z", "new", "a/../../restart?", "person", False))
    with pytest.raises(ValueError, match="path segment"):  # receive() counts it an error
        bridge.handle(FrigateEvent("..", "new", "..", "person", True))
    assert frigate.paths == [
        f"/api/events/{EVENT}/snapshot.jpg?height=500&crop=1",
        "/api/events/1%2F..%2Fx%3Fy%23z/snapshot.jpg?height=500&crop=1",
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
