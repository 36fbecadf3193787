"""The shared gallery on a real PostgreSQL 15 (started by the test session): several servers'
galleries on one database at once — one identity per name across processes, one schema
upgrade of several started together, changes followed within a second, an outage that stops
no recognition and half-writes nothing."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from facelens.errors import Conflict, DatabaseUnavailable, ModelError
from facelens.gallery.base import NewFace
from facelens.gallery.postgres import PostgresGallery
from facelens.models.base import Box
from tests.contract.conftest import served
from tests.support.fake_model import photo
from tests.support.postgres import PASSWORD, PostgresServer

pytestmark = pytest.mark.integration

BOX = Box(10, 10, 60, 60)
RED, LEFT = (200, 30, 30), Box(20, 40, 100, 120)  # a face of the stand-in model


def face(seed: int) -> NewFace:
    vector = np.random.default_rng(seed).normal(size=128).astype("<f4")
    return NewFace(vector / np.linalg.norm(vector), BOX)


def wait_for(condition: Any, timeout: float, what: str) -> float:
    """Seconds until ``condition()`` held (fails after ``timeout``)."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, f"timed out waiting for {what}"
        time.sleep(0.02)
    return time.monotonic() - start


def _create_round(url: str, spelling: str, barrier: Any, rounds: int, out: Any) -> None:
    gallery = PostgresGallery(url, Path("/nonexistent"), "sface", follow=False)
    made = 0
    try:
        for i in range(rounds):
            barrier.wait(30)
            try:
                gallery.add_person(spelling.format(i))
                made += 1
            except Conflict:
                pass
    finally:
        gallery.close()
        out.put(made)


def test_the_same_person_created_by_two_servers_at_once_is_one_person(database_url: str) -> None:
    PostgresGallery(database_url, Path("/nonexistent"), "sface", follow=False).close()
    context = multiprocessing.get_context("spawn")
    barrier, out, rounds = context.Barrier(2), context.Queue(), 100
    # Two spellings of one name (case and spacing differ): one identity, whoever is first.
    workers = [
        context.Process(target=_create_round, args=(database_url, name, barrier, rounds, out))
        for name in ("Ann Lee {}", "ann  LEE {}")
    ]
    for worker in workers:
        worker.start()
    made = [out.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(30)
    assert sum(made) == rounds  # every round: one created, the other refused
    with psycopg.connect(database_url) as db:
        assert db.execute("SELECT COUNT(*) FROM people").fetchone() == (rounds,)


def _open(url: str, barrier: Any) -> None:
    barrier.wait(30)
    PostgresGallery(url, Path("/nonexistent"), "sface", follow=False).close()


def test_three_servers_started_together_on_an_empty_database_upgrade_it_once(
    database_url: str,
) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(3)
    openers = [context.Process(target=_open, args=(database_url, barrier)) for _ in range(3)]
    for opener in openers:
        opener.start()
    for opener in openers:
        opener.join(60)
    assert [opener.exitcode for opener in openers] == [0, 0, 0]
    with psycopg.connect(database_url) as db:
        assert db.execute("SELECT version FROM schema_history").fetchall() == [(1,)]
        model = db.execute("SELECT value FROM meta WHERE key = 'model'").fetchall()
    assert model == [("sface",)]


def test_a_schema_newer_than_this_facelens_is_refused(database_url: str) -> None:
    PostgresGallery(database_url, Path("/nonexistent"), "sface", follow=False).close()
    with psycopg.connect(database_url) as db:
        db.execute("INSERT INTO schema_history VALUES (99, 'later', 'a newer facelens')")
    with pytest.raises(ModelError, match="schema version 99, made by a newer facelens"):
        PostgresGallery(database_url, Path("/nonexistent"))


def test_changes_on_one_server_reach_the_others_index_within_a_second(
    database_url: str, tmp_path: Path
) -> None:
    a = PostgresGallery(database_url, tmp_path / "a", "sface")
    b = PostgresGallery(database_url, tmp_path / "b", "sface")
    try:
        assert a.index().names == ()
        took = []
        b.record_source("Ann", "0" * 64, "ann.jpg", [face(1)], None)
        took.append(wait_for(lambda: "Ann" in a.index().names, 5, "the enrolment on a"))
        b.rename_person("Ann", "Anna")
        took.append(wait_for(lambda: "Anna" in a.index().names, 5, "the rename on a"))
        a.remove_person("Anna")
        took.append(wait_for(lambda: "Anna" not in b.index().names, 5, "the delete on b"))
        assert max(took) < 1.0, took
        # A change no notification announced (sent by hand, say) is seen by the counter,
        # read every second.
        with psycopg.connect(database_url) as db:
            person = db.execute(
                "INSERT INTO people (name, created_at) VALUES ('Quiet', 'now') RETURNING id"
            ).fetchone()[0]
            db.execute(
                "INSERT INTO faces (person_id, embedding, box_left, box_top, box_right, "
                "box_bottom, created_at) VALUES (%s, %s, 1, 1, 9, 9, 'now')",
                (person, face(2).embedding.tobytes()),
            )
            db.execute("UPDATE meta SET value = CAST(value AS BIGINT) + 1 WHERE key = 'revision'")
        wait_for(lambda: "Quiet" in a.index().names, 5, "the unannounced change")
    finally:
        a.close()
        b.close()


def test_an_outage_stops_no_recognition_and_writes_nothing_half(
    postgres_server: PostgresServer, database_url: str, tmp_path: Path
) -> None:
    with served(tmp_path, database_url=database_url) as api:
        assert api.post("/v1/people", json={"name": "ruby"}).status_code == 201
        enrolled = api.post("/v1/people/ruby/faces", files={"images": photo((RED, LEFT))})
        assert enrolled.status_code in (200, 201), enrolled.text

        def named() -> list[str]:
            seen = api.post("/v1/recognize", files={"image": photo((RED, LEFT))})
            assert seen.status_code == 200, seen.text
            return [f["name"] for f in seen.json()["faces"]]

        wait_for(lambda: named() == ["ruby"], 5, "the workers to know ruby")
        postgres_server.stop()
        try:
            for _ in range(5):
                assert named() == ["ruby"]
            refused = api.post("/v1/people", json={"name": "jade"})
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "database_unavailable"
            assert refused.headers["retry-after"] == "2"
            assert PASSWORD not in refused.text
            ready = api.get("/readyz")
            assert ready.status_code == 200, ready.text
            wait_for(
                lambda: "cannot be reached" in str(api.get("/readyz").json().get("database")),
                15,
                "readyz to tell the database is out of reach",
            )
            assert PASSWORD not in api.get("/readyz").text
        finally:
            postgres_server.start()
        wait_for(
            lambda: api.post("/v1/people", json={"name": "jade"}).status_code == 201,
            30,
            "writes to work again",
        )
        assert sorted(p["name"] for p in api.get("/v1/people").json()["people"]) == [
            "jade",
            "ruby",
        ]


def test_the_password_is_never_shown(database_url: str, tmp_path: Path) -> None:
    wrong = database_url.replace(PASSWORD, "wrong-pw-123")
    with pytest.raises(DatabaseUnavailable) as refused:
        PostgresGallery(wrong, tmp_path)
    assert "wrong-pw-123" not in str(refused.value)
    assert "postgresql://***@127.0.0.1" in str(refused.value)
    nobody_there = database_url.split("@")[0] + "@127.0.0.1:1/db"
    with pytest.raises(DatabaseUnavailable) as unreachable:
        PostgresGallery(nobody_there, tmp_path)
    assert PASSWORD not in str(unreachable.value)


def _fill(gallery: Any) -> int:
    """People, faces with and without thumbnails and files, a deleted face: its id."""
    gallery.record_source("Ann", "a" * 64, "ann/1.jpg", [face(1), face(2)], None)
    gallery.record_source("Bo", "b" * 64, "bo/1.jpg", [], "no face found")
    gallery.add_person("Cy")
    (kept,) = gallery.record_source("Cy", "c" * 64, "cy/1.jpg", [face(3)], None)
    gallery.set_thumbnail(kept, b"\xff\xd8 a jpeg \xff\xd9", 41.5)
    (gone,) = gallery.record_source("Cy", "d" * 64, "cy/2.jpg", [face(4)], None)
    gallery.remove_face("Cy", gone)
    return int(gone)


def _held(gallery: Any) -> tuple[Any, ...]:
    vectors, faces = gallery.face_vectors(), gallery.faces()
    return (
        [(p.name, p.faces) for p in gallery.list_people()],
        [(f.id, f.person, f.source, f.sha256, f.box, f.created_at, f.sharpness) for f in faces],
        [(s.person, s.sha256, s.path, s.status, s.reason) for s in gallery.sources()],
        vectors.ids,
        vectors.people,
        vectors.vectors.tobytes(),
        [gallery.thumbnail(f.id) for f in faces if f.has_thumbnail],
    )


def test_db_copy_round_trip_sqlite_postgresql_sqlite_keeps_everything(
    database_url: str, tmp_path: Path
) -> None:
    """A data directory to PostgreSQL and back to a new data directory: the same people,
    faces (ids), vectors, thumbnails, records, API keys, events and pending deliveries."""
    from facelens.api.keys import KeyStore
    from facelens.events.log import EventLog
    from facelens.gallery.sqlite import SQLiteGallery
    from facelens.jobs.db_copy import copy_gallery

    one, two = tmp_path / "one", tmp_path / "two"
    original = SQLiteGallery(one / "gallery.sqlite3", "sface")
    gone = _fill(original)
    before = _held(original)
    original.close()
    keys = KeyStore(one / "gallery.sqlite3")
    _, secret = keys.create("door")
    keys.close()
    log = EventLog(one / "events.sqlite3", targets=("webhook:x",))
    log.add([_event(n) for n in range(3)])
    log.delivered("webhook:x", 1)
    events_before = log.events(limit=10), log.pending("webhook:x")
    log.close()
    there = copy_gallery(str(one), database_url)
    assert there.counts == {
        "people": 3,
        "sources": 3,
        "faces": 3,
        "face_thumbnails": 1,
        "api_keys": 1,
        "events": 3,
        "deliveries": 2,
    }
    assert PASSWORD not in there.target
    back = copy_gallery(database_url, str(two))
    assert back.checksum == there.checksum and back.counts == there.counts
    for place in (database_url, str(two)):
        url = place if place == database_url else None
        copy = (
            PostgresGallery(database_url, tmp_path, follow=False)
            if url
            else SQLiteGallery(two / "gallery.sqlite3")
        )
        keys = KeyStore(two / "gallery.sqlite3", url=url)
        log = EventLog(two / "events.sqlite3", targets=("webhook:x",), url=url)
        try:
            assert copy.profile.name == "sface"
            assert _held(copy) == before
            assert keys.check(secret) is not None  # the key works there
            assert (log.events(limit=10), log.pending("webhook:x")) == events_before
            (new,) = copy.record_source("Ann", "e" * 64, "ann/2.jpg", [face(5)], None)
            assert new > gone  # a deleted face's id is never given again
            log.add([_event(9)])  # and events go on numbering after the copied ones
            assert [seq for seq, _ in log.events(limit=10)] == [1, 2, 3, 4]
        finally:
            copy.close()
            keys.close()
            log.close()
    # A target that holds a gallery is refused, unless told to replace it.
    with pytest.raises(Conflict, match="holds events"):
        copy_gallery(str(one), database_url)
    copy_gallery(str(one), database_url, replace=True)
    replaced = PostgresGallery(database_url, tmp_path, follow=False)
    try:
        assert _held(replaced) == before
    finally:
        replaced.close()


def test_db_upgrade_and_copy_commands(database_url: str, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "FACELENS_DATABASE_URL": database_url, "FACELENS_DATA_DIR": str(tmp_path)}

    def facelens(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "facelens", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    dry = facelens("db", "upgrade", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "schema version 0 would be upgraded to 1" in dry.stdout
    with psycopg.connect(database_url) as db:  # nothing was made
        assert db.execute("SELECT to_regclass('schema_history')").fetchone() == (None,)
    done = facelens("db", "upgrade")
    assert done.returncode == 0 and "upgraded to 1" in done.stdout, done.stderr
    assert "nothing to do" in facelens("db", "upgrade").stdout
    from facelens.gallery.sqlite import SQLiteGallery

    source = SQLiteGallery(tmp_path / "box" / "gallery.sqlite3", "sface")
    _fill(source)
    source.close()
    copied = facelens("db", "copy", str(tmp_path / "box"), "FACELENS_DATABASE_URL")
    assert copied.returncode == 0, copied.stderr
    assert "Copied 3 people, 3 faces (1 thumbnails), 3 enrolment records (sface), 0 API keys" in (
        copied.stdout
    )
    assert PASSWORD not in copied.stdout + copied.stderr
    again = facelens("db", "copy", str(tmp_path / "box"), "FACELENS_DATABASE_URL")
    assert again.returncode != 0 and "not empty" in again.stderr
    assert PASSWORD not in again.stderr
    info = facelens("info", "--json")
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["gallery"].startswith("postgresql://***@127.0.0.1:")
    assert json.loads(info.stdout)["people"] == 3
    assert PASSWORD not in info.stdout + info.stderr


def test_three_servers_on_one_database_share_people_and_follow_each_other(
    database_url: str, tmp_path: Path, people_dir: Path, faces_dir: Path
) -> None:
    """Three real 'facelens serve' on one PostgreSQL, started together on an empty database:
    one upgrade; a person enrolled on A is recognised on B and C; renamed and deleted on B,
    A follows within a second; the same person created on two at once is one person."""
    import concurrent.futures

    from tests.support.server import Server

    env = {"FACELENS_DATABASE_URL": database_url, "FACELENS_ALLOW_NO_KEYS": "1"}
    with concurrent.futures.ThreadPoolExecutor(3) as starting:
        servers = list(
            starting.map(lambda name: Server(tmp_path / name, "--workers", "1", env=env), "abc")
        )
    a, b, c = servers
    try:
        with psycopg.connect(database_url) as db:
            assert db.execute("SELECT version FROM schema_history").fetchall() == [(1,)]
        photo_of_obama = sorted((people_dir / "obama").iterdir())[0].read_bytes()
        probe = (faces_dir / "probes" / "obama-1080p.jpg").read_bytes()
        assert a.client.post("/v1/people", json={"name": "obama"}).status_code == 201
        added = a.client.post("/v1/people/obama/faces", files={"images": photo_of_obama})
        assert added.status_code in (200, 201), added.text

        def names(server: Server) -> list[str]:
            answer = server.client.post("/v1/recognize", files={"image": probe})
            assert answer.status_code == 200, answer.text
            return [f["name"] for f in answer.json()["faces"]]

        # Read at once: each server reads the revision per recognition.
        assert names(b) == ["obama"] and names(c) == ["obama"]
        renamed = b.client.patch("/v1/people/obama", json={"name": "Barack"})
        assert renamed.status_code == 200, renamed.text
        assert wait_for(lambda: names(a) == ["Barack"], 5, "the rename on a") < 1.0
        assert b.client.delete("/v1/people/Barack").status_code in (200, 204)
        assert wait_for(lambda: names(a) == ["unknown"], 5, "the delete on a") < 1.0
        assert names(c) == ["unknown"]
        # The same person created on A and B at once, 100 times: one person each time.
        for i in range(100):
            body = {"name": f"Twin {i}"}
            with concurrent.futures.ThreadPoolExecutor(2) as both:
                calls = [both.submit(s.client.post, "/v1/people", json=body) for s in (a, b)]
                codes = sorted(call.result().status_code for call in calls)
            assert codes == [201, 409], (i, codes)
        assert len(c.client.get("/v1/people", params={"limit": 500}).json()["people"]) == 100
    finally:
        for server in servers:
            server.stop()


def _event(n: int) -> Any:
    from datetime import UTC, datetime

    from facelens.events.event import Event

    return Event(f"ev{n:03d}", "arrived", "door", n, "ann", 0.3, 0.9, BOX, datetime.now(UTC))


def test_two_servers_deliver_each_event_once_in_order_and_one_takes_over_from_the_other(
    database_url: str, tmp_path: Path
) -> None:
    """Two servers' couriers on one shared outbox: one at a time delivers a target (the other
    waits), so the receiver gets every event once, in order; the one delivering stops (its
    connection gone, as when killed) and the other goes on with no event missing."""
    from facelens.events.delivery import Deliveries
    from facelens.events.log import EventLog
    from tests.support.webhook import Receiver

    receiver = Receiver()
    logs, deliveries = [], []
    for name in ("a", "b"):
        sending = Deliveries(receiver.url, None, attempts=5, timeout_s=5)
        log = EventLog(tmp_path / name / "events.sqlite3", targets=sending.names, url=database_url)
        logs.append(log)
        deliveries.append(sending.start(log))
    try:
        target = deliveries[0].names[0]
        for n in range(40):  # both servers store events, both couriers are awake
            logs[n % 2].add([_event(n)])
            time.sleep(0.02)
        wait_for(lambda: len(receiver.received) >= 40, 20, "the first 40 events")
        holder = 0 if deliveries[0].couriers[0].delivered else 1
        assert deliveries[1 - holder].couriers[0].delivered == 0  # the other waited
        assert logs[holder].claim(target) and not logs[1 - holder].claim(target)
        # The one delivering goes away; events stored meanwhile go through the other.
        deliveries[holder].close(drain_s=0)
        logs[holder].close()
        assert logs[1 - holder].claim(target)  # its lock went with its connection
        logs[1 - holder].add([_event(n) for n in range(40, 80)])
        wait_for(lambda: len(receiver.received) >= 80, 20, "the other server taking over")
        ids = [event["id"] for event in receiver.received]
        assert ids == [f"ev{n:03d}" for n in range(80)]  # each once, in order
        assert deliveries[1 - holder].couriers[0].delivered == 40
    finally:
        for log, sending in zip(logs, deliveries, strict=True):
            sending.close(drain_s=0)
            log.close()
        receiver.close()


def test_events_stored_by_one_server_are_seen_live_on_another(
    database_url: str, tmp_path: Path
) -> None:
    """/v1/events and the live tail of any server show the events every server stored."""
    from facelens.events.log import EventLog

    a = EventLog(tmp_path / "a" / "events.sqlite3", url=database_url)
    b = EventLog(tmp_path / "b" / "events.sqlite3", url=database_url)
    try:
        seen: list[str] = []
        b.tail.listen(lambda batch: seen.extend(s.event["id"] for s in batch))
        a.add([_event(1), _event(2)])
        a.add([_event(1)])  # a retry of a batch stored already: not stored twice
        wait_for(lambda: seen == ["ev001", "ev002"], 5, "the other server's tail")
        assert [e["id"] for _, e in b.events()] == ["ev001", "ev002"]
    finally:
        a.close()
        b.close()


def test_events_made_while_the_database_is_out_of_reach_are_held_and_stored_after(
    postgres_server: PostgresServer, database_url: str, tmp_path: Path
) -> None:
    """A camera goes on while PostgreSQL is stopped: its events wait in the stream (in order,
    up to HeldEvents.MAX_HELD) and are stored once the database is back; none is lost."""
    from facelens.events.log import EventLog
    from facelens.video.loop import HeldEvents

    log = EventLog(tmp_path / "events.sqlite3", url=database_url)
    told: list[str] = []
    held = HeldEvents(log, lambda events: told.extend(e.id for e in events))
    held.RETRY_S = 0.0  # type: ignore[misc]  (try at every batch: the test's clock)
    try:
        held([_event(0)])
        postgres_server.stop()
        try:
            for n in range(1, 30):
                held([_event(n)])
            assert held.failure is not None and len(held.held) == 29
        finally:
            postgres_server.start()
        wait_for(lambda: (held([]), not held.held)[1], 30, "the held events to be stored")
        assert [e["id"] for _, e in log.events(limit=100)] == [f"ev{n:03d}" for n in range(30)]
        assert told == [f"ev{n:03d}" for n in range(30)]
    finally:
        log.close()


def test_a_stream_moves_to_another_server_when_its_server_is_killed(
    database_url: str, tmp_path: Path, faces_dir: Path
) -> None:
    """Two servers share a stream table: the stream runs on one (its lease); that server is
    killed (-9): the other takes the stream within 15 s and events go on, and every stored
    event reaches the webhook (the outbox's delivery moves too)."""
    import signal

    from tests.support.mjpeg import MjpegCamera
    from tests.support.server import Server
    from tests.support.webhook import Receiver

    camera = MjpegCamera(faces_dir / "video" / "short_hamilton_clip.mp4").start()
    receiver = Receiver()
    env = {"FACELENS_DATABASE_URL": database_url, "FACELENS_EVENTS_WEBHOOK": receiver.url}
    servers = [Server(tmp_path / name, "--workers", "1", env=env) for name in ("a", "b")]
    try:
        added = servers[0].client.post("/v1/streams", json={"id": "door", "source": camera.url})
        assert added.status_code == 201, added.text

        def running_on() -> Server | None:
            for server in servers:
                if server.process.poll() is not None:
                    continue
                status = server.client.get("/v1/streams/door").json()["status"]
                if status["state"] == "running" and status.get("frames_processed", 0) > 0:
                    return server
            return None

        wait_for(lambda: running_on() is not None, 180, "the stream running somewhere")
        first = running_on()
        assert first is not None
        other = servers[1] if first is servers[0] else servers[0]
        assert other.client.get("/v1/streams/door").json()["status"]["state"] == "elsewhere"
        wait_for(lambda: len(receiver.received) >= 2, 120, "events from the first server")
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(30)
        killed = time.monotonic()

        def taken() -> bool:
            owner = other.client.get("/v1/streams/door").json()["status"].get("owner")
            return owner is not None and f":{other.process.pid}:" in owner

        wait_for(taken, 20, "the other server taking the stream")
        assert time.monotonic() - killed < 15  # the lease ran out, and was taken
        before = len(receiver.received)
        wait_for(lambda: running_on() is other, 180, "the stream running on the other server")
        wait_for(lambda: len(receiver.received) > before, 120, "events from the other server")
        with psycopg.connect(database_url) as db:
            stored = {str(row[0]) for row in db.execute("SELECT id FROM events")}
        wait_for(
            lambda: stored <= {e["id"] for e in receiver.received}, 60, "every event delivered"
        )
    finally:
        for server in servers:
            if server.process.poll() is None:
                server.stop()
        camera.stop()
        receiver.close()


def test_twenty_seconds_without_the_database_under_load_fail_no_recognition_and_lose_no_event(
    postgres_server: PostgresServer, database_url: str, tmp_path: Path, faces_dir: Path
) -> None:
    """A real server recognising without pause and watching a camera; PostgreSQL stopped for
    20 s: every recognition answers (with the right name), changes answer 503
    database_unavailable with Retry-After, and once it is back writes work, the camera's events
    made meanwhile are stored, and every stored event reaches the webhook."""
    import threading
    from datetime import UTC, datetime

    import cv2

    from tests.support.mjpeg import MjpegCamera
    from tests.support.server import Server
    from tests.support.webhook import Receiver

    camera = MjpegCamera(faces_dir / "video" / "short_hamilton_clip.mp4").start()
    receiver = Receiver()
    env = {"FACELENS_DATABASE_URL": database_url, "FACELENS_EVENTS_WEBHOOK": receiver.url}
    server = Server(tmp_path / "a", "--workers", "1", env=env)
    answers: list[tuple[int, list[str]]] = []
    stop = threading.Event()
    try:
        c = server.client
        assert c.post("/v1/people", json={"name": "obama"}).status_code == 201
        photo = sorted((faces_dir / "people" / "obama").iterdir())[0].read_bytes()
        assert c.post("/v1/people/obama/faces", files={"images": photo}).status_code in (200, 201)
        assert c.post("/v1/streams", json={"id": "door", "source": camera.url}).status_code == 201
        wait_for(lambda: len(receiver.received) >= 1, 180, "the camera's first events")

        def load() -> None:
            while not stop.is_set():
                answer = c.post("/v1/recognize", files={"image": photo})
                names = [f["name"] for f in answer.json().get("faces", [])]
                answers.append((answer.status_code, names))

        loader = threading.Thread(target=load)
        loader.start()
        wait_for(lambda: len(answers) >= 5, 60, "recognitions under way")
        postgres_server.stop()
        down = datetime.now(UTC)
        try:
            time.sleep(2)
            refused = c.post("/v1/people", json={"name": "jade"})
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "database_unavailable"
            assert refused.headers["retry-after"] == "2"
            # The people leave the camera's view and come back meanwhile: events to hold.
            seen, blank = camera.frames, cv2.imencode(".jpg", np.zeros((360, 640, 3), np.uint8))
            camera.frames = [blank[1].tobytes()]
            time.sleep(9)
            camera.frames = seen
            time.sleep(9)
        finally:
            postgres_server.start()
        up = datetime.now(UTC)
        wait_for(
            lambda: c.post("/v1/people", json={"name": "jade"}).status_code == 201,
            30,
            "writes working again",
        )
        stop.set()
        loader.join(60)
        assert len(answers) > 20
        assert [a for a in answers if a != (200, ["obama"])] == []  # not one failed or wrong

        def stored_times() -> list[datetime]:
            with psycopg.connect(database_url) as db:
                rows = db.execute("SELECT time FROM events").fetchall()
            return [datetime.fromisoformat(str(row[0])) for row in rows]

        # Made while it was down, held by the stream, stored after (tried every 5 s).
        wait_for(lambda: any(down < t < up for t in stored_times()), 30, "the held events stored")
        with psycopg.connect(database_url) as db:
            stored = {str(row[0]) for row in db.execute("SELECT id FROM events")}
        wait_for(
            lambda: stored <= {e["id"] for e in receiver.received}, 120, "every event delivered"
        )
    finally:
        stop.set()
        server.stop()
        camera.stop()
        receiver.close()


def test_streams_spread_evenly_over_the_servers_and_follow_those_that_stay(
    database_url: str,
) -> None:
    """Leases on the real database, three servers' worth: six streams spread two each; one
    server leaves (its leases handed back): the other two take them, three each; a new one
    joins: two each again. Each stream is held by one server at every look."""
    from facelens.storage.postgres import PostgresDatabase
    from facelens.video import leases as leasing

    db = PostgresDatabase.open(database_url)
    db.script(leasing.TABLES)
    for n in range(6):
        db.execute(
            "INSERT INTO streams (id, source, created_at) VALUES (?, 'rtsp://x', 'now')",
            (f"s{n}",),
        )
    running: dict[str, set[str]] = {}  # by server: the streams it was told to run

    def server() -> leasing.Leases:
        lease = leasing.Leases(PostgresDatabase.open(database_url), lambda held: None, limit=10)
        lease.run_only = lambda held: running.__setitem__(lease.me, set(held))
        return lease

    def spread(*servers: leasing.Leases) -> list[int]:
        for _ in range(3):  # a few looks: each hands back beyond its share, the others take
            for lease in servers:
                lease._round()  # one look now (the thread's every 3 s)
        held = [running.get(lease.me, set()) for lease in servers]
        everyone = [stream for streams in held for stream in streams]
        assert len(everyone) == len(set(everyone)) == 6  # each stream on one server
        return sorted(len(streams) for streams in held)

    a, b, c = server(), server(), server()
    assert spread(a, b, c) == [2, 2, 2]
    c.stop()
    c.release()  # a server stopping: its leases handed back
    assert spread(a, b) == [3, 3]
    d = server()  # a server joining
    assert spread(a, b, d) == [2, 2, 2]
    for lease in (a, b, d):
        lease.release()
    db.close()
