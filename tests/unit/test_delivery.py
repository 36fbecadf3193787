"""Delivery to a real webhook receiver that misbehaves (tests/support/webhook.py): each attempt is
bounded in time and in what it reads, an event the receiver will not take is given up on after
the set attempts without holding the later ones up, a receiver that is down loses nothing, and
no secret of the URL reaches a log line or an error."""

from __future__ import annotations

import base64
import logging
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from facelens.events import delivery
from facelens.events.delivery import Deliveries
from facelens.events.event import Event
from facelens.events.log import EventLog
from facelens.models.base import Box
from facelens.system.redact import guard_logs
from tests.support.mqtt import free_port, wait_until
from tests.support.webhook import Receiver


def event(n: int, name: str) -> Event:
    return Event(
        f"id{n}", "arrived", "door", n, name, 0.3, 0.9, Box(0, 0, 10, 10), datetime.now(UTC)
    )


def dead_letters(path: Path) -> dict[int, tuple[int, str]]:
    """The outbox's events given up on: seq → (attempts, last error), read from the file."""
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT seq, attempts, last_error FROM deliveries WHERE state = 'dead'"
        ).fetchall()
    return {int(seq): (int(attempts), str(error)) for seq, attempts, error in rows}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.close()


def test_a_misbehaving_receiver_costs_bounded_time_and_memory_and_holds_nothing_up(
    tmp_path: Path, receiver: Receiver
) -> None:
    names = ["ann", "redirect", "bob", "hang", "cleo", "drip", "dan", "huge", "eve", "endless"]
    names += ["fay"]
    deliveries = Deliveries(receiver.url, None, attempts=2, timeout_s=1.0)
    (target,) = deliveries.names
    log = EventLog(tmp_path / "events.sqlite3", targets=deliveries.names)
    log.add([event(n, name) for n, name in enumerate(names)])
    deliveries.start(log)
    try:
        wait_until(lambda: not log.pending(target), 120, "every event delivered or given up on")
        status = deliveries.status()[0]
    finally:
        deliveries.close(drain_s=0)
    # The ones it took, in order, each once; the others did not hold them up.
    taken = ["ann", "bob", "cleo", "dan", "eve", "endless", "fay"]
    assert [e["name"] for e in receiver.received] == taken
    # The others: tried twice each, then kept in the outbox as dead, saying why.
    dead = dead_letters(log.path)
    why = {names[seq - 1]: error for seq, (_, error) in dead.items()}
    assert sorted(why) == ["drip", "hang", "huge", "redirect"]
    assert all(attempts == 2 for attempts, _ in dead.values())
    assert [receiver.attempts[f"id{names.index(n)}"] for n in sorted(why)] == [2, 2, 2, 2]
    assert "302 Found (redirects are not followed" in why["redirect"]
    assert "no complete answer within 1 s" in why["hang"]
    assert "no complete answer within 1 s" in why["drip"]  # a drip is cut off in all
    assert "500 Internal Server Error: xxxx" in why["huge"]
    # What the answers could write before the courier hung up: socket buffers, no more
    # (1.5 GB were announced, the endless one never ends).
    assert receiver.written["huge"] < 64 * 2**20
    assert receiver.written["endless"] < 64 * 2**20
    (box,) = log.outboxes()
    assert (box.pending, box.dead) == (0, 4)
    assert status["delivered"] == 7 and status["given_up"] == 4
    log.close()


def test_events_given_up_on_go_again_first_when_retried(tmp_path: Path, receiver: Receiver) -> None:
    deliveries = Deliveries(receiver.url, None, attempts=1, timeout_s=5.0)
    (target,) = deliveries.names
    log = EventLog(tmp_path / "events.sqlite3", targets=deliveries.names)
    log.add([event(1, "fail"), event(2, "ann")])
    deliveries.start(log)
    try:
        wait_until(lambda: not log.pending(target), 60, "the first given up, the second sent")
        assert [e["id"] for e in receiver.received] == ["id2"]
    finally:
        deliveries.close(drain_s=0)
    # A newer event waits in the outbox when the dead one is put back (the courier stopped
    # meanwhile, so that the order does not depend on when it looks): the older goes first.
    log.add([event(3, "bob")])
    assert log.retry() == 1
    receiver.healed = True  # it takes everything from now on
    deliveries = Deliveries(receiver.url, None, attempts=1, timeout_s=5.0)
    deliveries.start(log)
    try:
        wait_until(lambda: len(receiver.received) == 3, 60, "the retried event and the new one")
    finally:
        deliveries.close(drain_s=0)
    assert [e["id"] for e in receiver.received] == ["id2", "id1", "id3"]  # oldest first
    assert [(b.pending, b.dead) for b in log.outboxes()] == []
    log.close()


def test_a_receiver_that_cannot_be_reached_loses_nothing(tmp_path: Path) -> None:
    port = free_port()
    deliveries = Deliveries(
        f"http://127.0.0.1:{port}/hook", None, attempts=1, timeout_s=2.0
    )  # one attempt would give an answered event up: unreachable ones are not counted
    (target,) = deliveries.names
    log = EventLog(tmp_path / "events.sqlite3", targets=deliveries.names)
    log.add([event(1, "ann"), event(2, "bob")])
    deliveries.start(log)
    try:
        wait_until(lambda: deliveries.couriers[0].failures >= 3, 60, "three refused connections")
        (box,) = log.outboxes()
        assert (box.pending, box.dead, box.attempts) == (2, 0, 0)
        assert box.last_error is not None and "cannot connect" in box.last_error
        receiver = Receiver(port=port)  # it comes up
        try:
            wait_until(lambda: not log.pending(target), 60, "both events, once it is up")
        finally:
            receiver.close()
    finally:
        deliveries.close(drain_s=0)
    assert [e["id"] for e in receiver.received] == ["id1", "id2"]
    log.close()


@pytest.mark.usefixtures("guarded")
def test_no_secret_of_a_webhook_url_reaches_the_logs_or_the_outbox(
    tmp_path: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    guard_logs(debug=True)  # even with httpx's own lines on (--debug)
    caplog.set_level(logging.DEBUG)
    url = receiver.url.replace("://", "://user:s3cret@") + "?token=t0ken&channel=1"
    deliveries = Deliveries(url, None, attempts=1, timeout_s=5.0)
    (target,) = deliveries.names
    log = EventLog(tmp_path / "events.sqlite3", targets=deliveries.names)
    log.add([event(1, "redirect"), event(2, "ann")])
    deliveries.start(log)
    try:
        wait_until(lambda: not log.pending(target), 60, "both events tried")
        status = deliveries.status()[0]
    finally:
        deliveries.close(drain_s=0)
    # The receiver got the credentials and the token; nobody else did.
    assert receiver.headers[0]["authorization"] == "Basic " + base64.b64encode(
        b"user:s3cret"
    ).decode("ascii")
    assert receiver.headers[0][":path"] == "/hook?token=t0ken&channel=1"
    logged = caplog.text
    assert "HTTP Request: POST http://***@127.0.0.1" in logged  # httpx's own line, masked
    assert "/hook?token=***&channel=1" in logged
    assert "302 Found" in logged  # the delivery's warning
    (dead,) = dead_letters(log.path).values()
    for text in (logged, status["url"], dead[1]):
        assert "s3cret" not in text and "t0ken" not in text
    log.close()


@pytest.mark.usefixtures("guarded")
def test_a_webhook_is_shown_without_its_path_which_may_be_its_secret(
    tmp_path: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    # Home Assistant's webhooks: the id in the path is all it takes to post to one.
    guard_logs()
    caplog.set_level(logging.DEBUG)
    url = receiver.url.replace("://", "://user:s3cret@") + "/ha-webhook-id-123?token=t0ken"
    deliveries = Deliveries(url, None, attempts=1, timeout_s=5.0)
    (target,) = deliveries.names
    log = EventLog(tmp_path / "events.sqlite3", targets=deliveries.names)
    log.add([event(1, "fail"), event(2, "ann")])
    deliveries.start(log)
    try:
        wait_until(lambda: not log.pending(target), 60, "both events tried")
        status = deliveries.status()[0]
    finally:
        deliveries.close(drain_s=0)
    assert receiver.headers[0][":path"] == "/hook/ha-webhook-id-123?token=t0ken"
    assert status["url"] == f"http://***@127.0.0.1:{receiver.port}/…"
    assert f"delivery to http://***@127.0.0.1:{receiver.port}/…: event id1 given up" in (
        caplog.text
    )
    (dead,) = dead_letters(log.path).values()
    for text in (caplog.text, str(status), dead[1]):
        assert "ha-webhook-id-123" not in text and "s3cret" not in text
    log.close()


@pytest.mark.usefixtures("guarded")
def test_httpx_request_lines_are_off_unless_debugging(
    tmp_path: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    guard_logs()
    caplog.set_level(logging.DEBUG)  # everything else at debug: httpx stays at warnings
    deliveries = Deliveries(receiver.url, None, attempts=1, timeout_s=5.0)
    log = EventLog(tmp_path / "events.sqlite3", targets=deliveries.names)
    log.add([event(1, "ann")])
    deliveries.start(log)
    try:
        wait_until(lambda: len(receiver.received) == 1, 60, "the event")
    finally:
        deliveries.close(drain_s=0)
    assert "HTTP Request" not in caplog.text
    log.close()


def test_a_courier_outlives_an_outbox_it_cannot_write_and_then_delivers_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The outbox's writes raise our StorageError (a full or read-only disk): the courier
    # caught only SQLite's own error, so its thread ended and nothing more was delivered
    # until the server restarted, even once the disk had room again.
    monkeypatch.setattr(delivery, "RETRY_CAP_S", 0.05)
    log = EventLog(tmp_path / "events.sqlite3", targets=["hook"])
    log.add([event(1, "ann"), event(2, "bob")])
    sent: list[str] = []

    def send(body: dict[str, object]) -> None:
        sent.append(str(body["id"]))
        if len(sent) == 1:
            log._db.execute("PRAGMA query_only = ON")  # marking it delivered fails

    courier = delivery.Courier(log, "hook", send, "hook", attempts=3).start()
    wait_until(lambda: len(sent) >= 2, 10, "a second attempt")  # tried again, not ended
    assert courier.running
    log._db.execute("PRAGMA query_only = OFF")  # room again
    wait_until(lambda: not log.pending("hook"), 10, "every event delivered")
    assert courier.running and sent[-1] == "id2"
    courier.stop()


def test_the_retention_round_outlives_an_event_log_it_cannot_write(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.sqlite3")
    log.prune_every(days=30, every_s=0.02)
    log._db.execute("PRAGMA query_only = ON")  # each round's DELETE fails
    time.sleep(0.2)  # several rounds
    assert log._pruner is not None and log._pruner.is_alive()
    log._db.execute("PRAGMA query_only = OFF")
    log.close()
