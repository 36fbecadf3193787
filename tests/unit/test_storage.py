"""The storage layer: one connection per file per process, shared by every store in the file,
one write transaction at a time, failures said in our words and by what the file holds."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import pytest

from facelens.api.idempotency import IdempotencyStore
from facelens.api.keys import KeyStore
from facelens.errors import StorageError
from facelens.events.log import EventLog
from facelens.gallery import SQLiteGallery
from facelens.storage.sqlite import Database, Table
from tests.support.mqtt import wait_until


def open_files(path: Path) -> int:
    """How many descriptors this process holds on ``path`` (SQLite keeps one per connection)."""
    target = os.path.realpath(path)
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == target
        except OSError:
            continue
    return count


def test_every_store_of_a_file_shares_its_two_connections(tmp_path: Path) -> None:
    gallery_path = tmp_path / "gallery.sqlite3"
    events_path = tmp_path / "events.sqlite3"
    gallery = SQLiteGallery(gallery_path)
    keys = KeyStore(gallery_path)
    idempotency = IdempotencyStore(gallery_path)
    log = EventLog(events_path, targets=["hook"])
    tail = log.tail
    other_log = EventLog(events_path)  # as a stream manager's outbox beside the API's log
    streams = Table(events_path, "CREATE TABLE IF NOT EXISTS t (x)", "Event log")
    try:
        # Every store reads and writes (the readers open on the first read).
        gallery.add_person("ann")
        assert [p.name for p in gallery.list_people()] == ["ann"]
        assert not keys.enabled() and idempotency.get("", "k") is None
        log.add([])
        assert log.last_seq() == other_log.last_seq() == 0
        # Before the storage layer: three connections to each file in one server process,
        # and one more per store. Now one that writes and one that reads, however many stores.
        assert open_files(gallery_path) == 2
        assert open_files(events_path) == 2
        assert gallery.file._db.lock is keys.db.lock is idempotency.db.lock
        assert log._db.lock is tail._db.lock is other_log._db.lock is streams.db.lock
        assert gallery.file._db.lock is not log._db.lock
    finally:
        for store in (streams, other_log, log, idempotency, keys, gallery):
            store.close()
    assert open_files(gallery_path) == 0 and open_files(events_path) == 0  # closed with the last


def test_a_handle_closed_leaves_the_others_working_and_says_so_when_used(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite3"
    first, second = Database.open(path), Database.open(path)
    first.execute("CREATE TABLE t (x)")
    first.close()
    first.close()  # again: nothing
    second.execute("INSERT INTO t VALUES (1)")
    assert second.execute("SELECT x FROM t") == [(1,)]
    with pytest.raises(StorageError, match="closed by this process"):
        first.execute("SELECT x FROM t")
    second.close()
    third = Database.open(path)  # a fresh connection once every handle went
    assert third.execute("SELECT x FROM t") == [(1,)]
    third.close()


def test_a_write_from_another_thread_waits_for_a_transaction_and_is_never_part_of_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.sqlite3"
    gallery_side, keys_side = Database.open(path), Database.open(path)
    gallery_side.execute("CREATE TABLE t (x)")
    inside, written = threading.Event(), threading.Event()

    def other_store() -> None:
        inside.wait(10)
        keys_side.execute("INSERT INTO t VALUES ('keys')")
        written.set()

    thread = threading.Thread(target=other_store)
    thread.start()
    with pytest.raises(RuntimeError), gallery_side.transaction() as db:
        db.execute("INSERT INTO t VALUES ('gallery')")
        inside.set()
        # On one shared connection without one lock, the other store's statement would run
        # now, inside this transaction, and be rolled back with it.
        assert not written.wait(0.5)
        raise RuntimeError("rolled back")
    thread.join(10)
    assert written.is_set()
    assert gallery_side.execute("SELECT x FROM t") == [("keys",)]
    gallery_side.close()
    keys_side.close()


def test_a_failed_read_of_the_event_log_is_our_error_naming_the_event_log(
    tmp_path: Path,
) -> None:
    # The file's name says nothing: what it holds is said by whoever opened it.
    log = EventLog(tmp_path / "history.db", targets=["hook"])
    try:
        with sqlite3.connect(tmp_path / "history.db") as other:
            other.execute("DROP TABLE deliveries")  # another process broke it under us
        # Before: sqlite3.OperationalError escaped from the outbox's read into the courier.
        with pytest.raises(StorageError, match=r"^Event log .*history\.db.*no such table"):
            log.pending("hook")
        with pytest.raises(StorageError, match=r"^Event log "):
            log.outboxes()
    finally:
        log.close()


def test_a_file_that_is_not_a_database_is_named_for_what_it_should_hold(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite3"
    path.write_bytes(b"this is not a database, at all, but it is long enough" * 100)
    with pytest.raises(
        StorageError, match=r"^The event log .* is not a facelens event log.*'facelens restore'"
    ):
        EventLog(path)
    assert open_files(path) == 0  # nothing left open by the failed start


def _move_away(path: Path, to: Path) -> None:
    """Move a database and its -wal and -shm files (as an operator moves a log away)."""
    for suffix in ("", "-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(to.with_name(to.name + suffix))


def test_a_file_replaced_under_an_open_handle_is_opened_afresh_by_its_path(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.sqlite3"
    held = Database.open(path, "Event log")  # the server's, open all along
    held.execute("CREATE TABLE old (x)")
    _move_away(path, tmp_path / "moved.sqlite3")
    with sqlite3.connect(path) as other:  # another process makes a new file at the path
        other.execute("CREATE TABLE new (x)")
    other.close()
    fresh = Database.open(path, "Event log")
    try:
        # Before: the registry, keyed by the path, gave the connection to the moved file;
        # what was written through it went there, not to the file the path names.
        tables = {str(row[0]) for row in fresh.execute("SELECT name FROM sqlite_master")}
        assert tables == {"new"}
        assert held.execute("SELECT name FROM sqlite_master") == [("old",)]  # still its own
        held.close()  # the last on the moved file: the new one stays the path's
        again = Database.open(path, "Event log")
        assert again.lock is fresh.lock
        again.close()
    finally:
        fresh.close()
        held.close()
    assert open_files(path) == 0 and open_files(tmp_path / "moved.sqlite3") == 0


def _held(lock: threading.RLock) -> bool:
    """Whether another thread holds ``lock``."""
    if lock.acquire(blocking=False):
        lock.release()
        return False
    return True


def test_a_key_check_does_not_wait_for_a_gallery_write_that_waits_for_another_process(
    tmp_path: Path,
) -> None:
    path = tmp_path / "gallery.sqlite3"
    gallery, keys = SQLiteGallery(path), KeyStore(path)
    other = sqlite3.connect(path, isolation_level=None)  # another process, writing
    other.execute("BEGIN IMMEDIATE")
    writing = threading.Thread(target=gallery.add_person, args=("ann",))
    checked = threading.Event()
    checking = threading.Thread(target=lambda: (keys.enabled(), checked.set()))
    try:
        writing.start()  # waits for the other process's lock (SQLite's busy timeout)
        wait_until(lambda: _held(gallery.file._db.lock), 10, "the write to start waiting")
        checking.start()
        assert checked.wait(3)  # a safety net: a read in WAL mode waits for no writer
    finally:
        other.execute("COMMIT")
        other.close()
        writing.join(30)
        checking.join(30)
        keys.close()
        gallery.close()


def test_a_read_never_writes(tmp_path: Path) -> None:
    db = Database.open(tmp_path / "a.sqlite3")
    try:
        db.execute("CREATE TABLE t (x)")
        with pytest.raises(StorageError, match=r"readonly|read only"):
            db.read("INSERT INTO t VALUES (1)")
        assert db.read("SELECT COUNT(*) FROM t") == [(0,)]
    finally:
        db.close()
