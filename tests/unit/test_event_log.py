"""The event log on real SQLite: pages through an index whatever the filter, live listeners
fed by one tail that reads each new row once (300,000 stored events, 200 listeners), face crops
of a deleted person blanked and overwritten on disk, retention applied while running."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from facelens.errors import StorageError
from facelens.events.event import Event
from facelens.events.log import EventLog, Filter
from facelens.events.people import forget_crops_in, rename, undo_rename
from facelens.events.tail import Stored
from facelens.models.base import Box
from tests.support.helpers import fill_events
from tests.support.mqtt import wait_until

BIG = 300_000


def event(
    n: int,
    name: str,
    kind: str = "arrived",
    *,
    track: int | None = None,
    previous: str | None = None,
    crop: bytes | None = None,
    when: datetime | None = None,
) -> Event:
    return Event(
        f"id{n}",
        kind,  # type: ignore[arg-type]
        "door",
        n if track is None else track,
        name,
        0.3,
        0.9,
        Box(0, 0, 10, 10),
        when or datetime.now(UTC),
        previous=previous,
        crop=crop,
    )


def plan(db: sqlite3.Connection, sql: str, args: list[object] | tuple[object, ...] = ()) -> str:
    return " / ".join(str(row[3]) for row in db.execute("EXPLAIN QUERY PLAN " + sql, args))


def test_each_filter_pages_through_an_index_never_a_scan(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.sqlite3")
    since = datetime(2026, 1, 2, tzinfo=UTC)
    expected = {
        Filter(): "INTEGER PRIMARY KEY (rowid>?)",
        Filter(stream="s1"): "INDEX events_stream (stream=? AND seq>?)",
        Filter(name="p3"): "INDEX events_name (name=? AND seq>?)",
        Filter(kind="left"): "INDEX events_kind (kind=? AND seq>?)",
        Filter(name="p3", since=since): "INDEX events_name (name=? AND seq>?)",
        Filter(since=since): "INTEGER PRIMARY KEY (rowid>?)",
    }
    with sqlite3.connect(log.path) as db:
        for chosen, index in expected.items():
            for newest in (False, True):
                sql, args = EventLog.select(chosen, after=10, limit=101, newest=newest)
                found = plan(db, sql, args)
                assert found == f"SEARCH events USING {index}", (chosen, found)
        # The outbox, retention and the tail's look: searches too.
        assert "SCAN" not in plan(
            db,
            "SELECT d.seq, e.body FROM deliveries d JOIN events e ON e.seq = d.seq "
            "WHERE d.target = 'hook' AND d.state = 'pending' ORDER BY d.seq LIMIT 100",
        )
        assert "SCAN" not in plan(db, "DELETE FROM events WHERE time < '2026'")
    log.close()


def test_many_live_listeners_cost_one_read_per_look_of_new_rows_only(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite3"
    log = EventLog(path)
    fill_events(path, BIG)
    tail = log.tail
    statements: list[str] = []
    with tail._db.reading() as connection:  # the file's one connection in this process
        connection.set_trace_callback(statements.append)
    boxes: list[list[Stored]] = [[] for _ in range(200)]
    heads = {tail.listen(box.extend) for box in boxes}
    assert heads == {BIG}  # from now on
    writer = EventLog(path)  # another process's log, as a stream's or a watch's
    writer.add([event(1, "ann"), event(2, "bob", "left"), event(3, "ann", "left")])
    wait_until(lambda: all(len(box) == 3 for box in boxes), 30, "every listener to get 3")
    assert all([r.event["id"] for r in box] == ["id1", "id2", "id3"] for box in boxes)
    assert all([r.seq for r in box] == [BIG + 1, BIG + 2, BIG + 3] for box in boxes)
    assert json.loads(boxes[0][0].text) == boxes[0][0].event  # sent as stored
    newest = [s for s in statements if "MAX(seq)" in s]
    looks = [s for s in statements if s.startswith("SELECT") and s not in newest]
    # The newest row, once, when the first listener came: the last entry of the key.
    assert newest == ["SELECT COALESCE(MAX(seq), 0) FROM events"]
    # Then one read per look for all 200 listeners (one per listener would be 200 a look)...
    assert 0 < len(looks) < len(boxes)
    # ... each a range of the primary key after the newest row seen: new rows only.
    with sqlite3.connect(path) as db:
        for sql in set(looks):
            assert plan(db, sql) == "SEARCH events USING INTEGER PRIMARY KEY (rowid>?)", sql
    for box in boxes:
        tail.forget(box.extend)
    assert tail.listeners == 0
    writer.close()
    log.close()


def test_a_filter_tests_live_events_as_sql_does(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.sqlite3")
    start = datetime(2026, 3, 1, 12, tzinfo=UTC)
    log.add(
        [
            event(i, name, kind, when=start + timedelta(minutes=i))
            for i, (name, kind) in enumerate(
                [("ann", "arrived"), ("bob", "arrived"), ("ann", "left"), ("bob", "left")]
            )
        ]
    )
    stored = log.events(limit=10)
    filters = [
        Filter(name="ann"),
        Filter(kind="left"),
        Filter(name="bob", kind="left"),
        Filter(since=start + timedelta(minutes=1)),
        Filter(until=datetime(2026, 3, 1, 12, 2)),  # no zone: UTC
        Filter(stream="elsewhere"),
    ]
    for chosen in filters:
        by_sql = [e["id"] for _, e in log.events(**_keywords(chosen))]
        by_test = [e["id"] for _, e in stored if chosen.matches(e)]
        assert by_sql == by_test, chosen
    log.close()


def _keywords(chosen: Filter) -> dict[str, object]:
    return {
        "stream": chosen.stream,
        "name": chosen.name,
        "kind": chosen.kind,
        "since": chosen.since,
        "until": chosen.until,
    }


def crop() -> bytes:
    return os.urandom(6000)  # unique: findable on disk as its base64


def on_disk(data_dir: Path, jpeg: bytes) -> float:
    """How much of a crop is in the event log's files (the database, its WAL), as the share of
    its base64 text's 64-character pieces found there (a crop spans pages: pieces cut by a
    page boundary are not found whole)."""
    disk = b"".join(p.read_bytes() for p in sorted(data_dir.glob("events.sqlite3*")))
    text = base64.b64encode(jpeg)
    pieces = [text[i : i + 64] for i in range(0, len(text) - 64, 64)]
    return sum(piece in disk for piece in pieces) / len(pieces)


def test_a_deleted_persons_crops_are_blanked_on_their_tracks_and_overwritten(
    tmp_path: Path,
) -> None:
    log = EventLog(tmp_path / "events.sqlite3", targets=("hook",))
    crops = [crop() for _ in range(6)]
    log.add(
        [
            # Track 7 arrives unknown, is renamed ann, leaves: all three show ann's face.
            event(1, "unknown", track=7, crop=crops[0]),
            event(2, "bob", track=8, crop=crops[1]),
            event(3, "ann", "renamed", track=7, previous="unknown", crop=crops[2]),
            event(4, "ann", "left", track=7, crop=crops[3]),
            event(5, "bob", "left", track=8, crop=crops[4]),
            # A later run's track 7 (numbers start again) is someone else.
            event(6, "cleo", track=7, crop=crops[5]),
        ]
    )
    assert all(on_disk(tmp_path, c) > 0.9 for c in crops)  # they are there
    assert forget_crops_in(tmp_path, ["ann"]) == 3
    kept = {e["id"]: e["crop"] for _, e in log.events(limit=10)}
    assert [i for i, c in kept.items() if c is None] == ["id1", "id3", "id4"]
    assert [e["id"] for _, e in log.pending("hook")] == [f"id{i}" for i in range(1, 7)]
    assert log.pending("hook")[0][1]["crop"] is None  # what is still to go goes without
    for gone in (crops[0], crops[2], crops[3]):
        assert on_disk(tmp_path, gone) == 0  # not left in free pages or the WAL
    for still in (crops[1], crops[4], crops[5]):
        assert on_disk(tmp_path, still) > 0.9
    log.close()


def test_a_renamed_persons_events_take_the_new_name_and_undo_gives_the_old_one_back(
    tmp_path: Path,
) -> None:
    log = EventLog(tmp_path / "events.sqlite3", targets=("hook",))
    log.add(
        [
            event(1, "obama", track=1),
            event(2, "biden", "renamed", track=1, previous="obama"),  # track 1 was obama
            event(3, "barack", track=2),  # a person of that name before (since deleted)
            event(4, "obamas", track=3),
        ]
    )
    before = [(e["name"], e["previous"]) for _, e in log.events(limit=10)]
    done = rename(log, "obama", "barack")
    assert (done.named, done.previous) == ((1,), (2,))
    after = [(e["name"], e["previous"]) for _, e in log.events(limit=10)]
    assert after == [("barack", None), ("biden", "barack"), ("barack", None), ("obamas", None)]
    assert [e["id"] for _, e in log.events(name="barack")] == ["id1", "id3"]
    assert log.events(name="obama") == []
    # What is still to go goes out as stored: under the name the person has now.
    assert [e["name"] for _, e in log.pending("hook")] == ["barack", "biden", "barack", "obamas"]
    undo_rename(log, done)
    assert [(e["name"], e["previous"]) for _, e in log.events(limit=10)] == before
    assert [e["id"] for _, e in log.events(name="obama")] == ["id1"]
    log.close()


def test_a_deleted_persons_crops_go_from_the_log_the_data_dir_holds_now(tmp_path: Path) -> None:
    # The server keeps its log open; the operator moved it away (its damage message says
    # "move it away to start afresh") and a stream's process made a new one since.
    held = EventLog(tmp_path / "events.sqlite3")
    for suffix in ("", "-wal", "-shm"):
        side = tmp_path / f"events.sqlite3{suffix}"
        if side.exists():
            side.rename(tmp_path / f"moved.sqlite3{suffix}")
    (tmp_path / "stream").mkdir()
    made = EventLog(tmp_path / "stream" / "events.sqlite3")  # as another process makes it
    face = crop()
    made.add([event(1, "ann", track=7, crop=face)])
    made.close()
    (tmp_path / "stream" / "events.sqlite3").rename(tmp_path / "events.sqlite3")
    try:
        # Before: the path gave the held connection, to the moved file; the crop stayed.
        assert forget_crops_in(tmp_path, ["ann"]) == 1
        assert on_disk(tmp_path, face) == 0
    finally:
        held.close()


def test_no_event_log_no_crops_to_forget(tmp_path: Path) -> None:
    assert forget_crops_in(tmp_path, ["ann"]) == 0
    assert not (tmp_path / "events.sqlite3").exists()


def test_retention_is_applied_while_running_not_only_at_the_start(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.sqlite3")
    log.prune_every(days=30, every_s=0.1)
    old = datetime.now(UTC) - timedelta(days=31)
    log.add([event(1, "ann", when=old), event(2, "bob")])  # stored after the start
    wait_until(lambda: len(log.events()) == 1, 30, "the old event to go")
    assert [e["id"] for _, e in log.events()] == ["id2"]
    log.close()


def test_an_outbox_of_an_earlier_release_gains_its_columns(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite3"
    with sqlite3.connect(path) as db:  # the first release's outbox
        db.executescript(
            "CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL "
            "UNIQUE, time TEXT NOT NULL, stream TEXT NOT NULL, kind TEXT NOT NULL, name TEXT "
            "NOT NULL, body TEXT NOT NULL); CREATE TABLE deliveries (target TEXT NOT NULL, "
            "seq INTEGER NOT NULL REFERENCES events(seq) ON DELETE CASCADE, attempts INTEGER "
            "NOT NULL DEFAULT 0, PRIMARY KEY (target, seq));"
        )
    EventLog(path, targets=("hook",)).close()  # an old writer's file, upgraded
    log = EventLog(path, targets=("hook",))
    log.add([event(1, "ann")])
    ((seq, _),) = log.pending("hook")
    assert log.failed("hook", seq, "answered 500") == 1
    with sqlite3.connect(path) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(deliveries)")}
    assert {"state", "last_error", "tried_at"} <= columns
    log.close()


def test_an_events_file_from_before_the_outbox_states_is_upgraded_in_place(
    tmp_path: Path,
) -> None:
    """docs/upgrading.md: events.sqlite3 gains columns when opened, rewriting nothing; an event
    still owed to a target stays owed."""
    path = tmp_path / "events.sqlite3"
    with sqlite3.connect(path) as db:  # the first release's outbox: no state, error or time
        db.executescript(
            "CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL "
            "UNIQUE, time TEXT NOT NULL, stream TEXT NOT NULL, kind TEXT NOT NULL, name TEXT "
            "NOT NULL, body TEXT NOT NULL);"
            "CREATE TABLE deliveries (target TEXT NOT NULL, seq INTEGER NOT NULL REFERENCES "
            "events(seq) ON DELETE CASCADE, attempts INTEGER NOT NULL DEFAULT 0, "
            "PRIMARY KEY (target, seq));"
        )
        body = json.dumps(event(1, "ann").as_dict())
        db.execute(
            "INSERT INTO events (id, time, stream, kind, name, body) "
            "VALUES ('id1', ?, 'door', 'arrived', 'ann', ?)",
            (event(1, "ann").time.isoformat(), body),
        )
        db.execute("INSERT INTO deliveries VALUES ('webhook', 1, 3)")
    log = EventLog(path, targets=["webhook"])
    try:
        ((seq, owed),) = log.pending("webhook")
        assert (seq, owed["id"], owed["name"]) == (1, "id1", "ann")
        assert [(o.target, o.pending, o.dead, o.attempts) for o in log.outboxes()] == [
            ("webhook", 1, 0, 3)
        ]
    finally:
        log.close()


def test_a_full_disk_during_an_event_write_is_the_storage_error_and_loses_nothing(
    tmp_path: Path,
) -> None:
    log = EventLog(tmp_path / "events.sqlite3", targets=["hook"])
    log.add([event(1, "ann")])
    pages = log._db.execute("PRAGMA page_count")[0][0]
    # SQLite reports SQLITE_FULL ("database or disk is full") when it cannot grow the file,
    # and has then rolled the transaction back already: a second ROLLBACK failed ("no
    # transaction is active") and a raw sqlite3.OperationalError hid the real error.
    log._db.execute(f"PRAGMA max_page_count = {pages + 1}")
    big = [event(n, "bob", crop=os.urandom(BIG)) for n in range(2, 6)]
    with pytest.raises(StorageError, match=r"^Event log .*disk is full"):
        log.add(big)
    with log._db.reading() as connection:
        assert not connection.in_transaction
    assert [e["id"] for _, e in log.events()] == ["id1"]
    assert [seq for seq, _ in log.pending("hook")] == [1]
    # Room again: the same log goes on writing (nothing was left half-done or locked).
    log._db.execute(f"PRAGMA max_page_count = {pages + 10_000}")
    log.add(big)
    assert [e["id"] for _, e in log.events()] == ["id1", "id2", "id3", "id4", "id5"]
    log.close()
