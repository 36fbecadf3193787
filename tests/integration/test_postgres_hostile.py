"""The shared gallery under attack, on a real PostgreSQL 15: passwords the messages must not
show, data someone else wrote into the database, connections dropped and a database down for
long, locks held by another session, and `facelens db copy` given the wrong places."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from fastapi.testclient import TestClient

from facelens.errors import DatabaseUnavailable, InvalidValue, StorageError
from facelens.gallery.postgres import PostgresGallery
from facelens.storage.postgres import BACKOFF_CAP_S, CONNECT_TIMEOUT_S, WRITE_LOCK
from tests.contract.conftest import served
from tests.integration.test_postgres import LEFT, RED, _fill, wait_for
from tests.support.fake_model import photo
from tests.support.postgres import PASSWORD, USER, PostgresServer

pytestmark = pytest.mark.integration

BLUE = (30, 30, 200)


def _facelens(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "facelens", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=180,
    )


def _names(api: TestClient, colour: tuple[int, int, int] = RED) -> list[str]:
    seen = api.post("/v1/recognize", files={"image": photo((colour, LEFT))})
    assert seen.status_code == 200, seen.text
    return [f["name"] for f in seen.json()["faces"]]


@pytest.fixture
def ruby(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    """A server on ``database_url`` knowing ruby (red), its workers too."""
    with served(tmp_path, database_url=database_url) as api:
        assert api.post("/v1/people", json={"name": "ruby"}).status_code == 201
        enrolled = api.post("/v1/people/ruby/faces", files={"images": photo((RED, LEFT))})
        assert enrolled.status_code in (200, 201), enrolled.text
        wait_for(lambda: _names(api) == ["ruby"], 10, "the workers to know ruby")
        yield api


# -- secrets ----------------------------------------------------------------------------------


def test_a_password_with_quotes_is_never_shown(
    postgres_server: PostgresServer, database_url: str, tmp_path: Path
) -> None:
    """A quote is a valid character of a URL's password (libpq takes it as it is); the masking
    of URLs in messages stopped at it and showed the password whole."""
    secret = "it's\"QUOTED-pw"
    with postgres_server.admin() as db:
        db.execute(f"ALTER ROLE {USER} PASSWORD '{secret.replace(chr(39), chr(39) * 2)}'")
    try:
        url = database_url.replace(PASSWORD, secret)
        with served(tmp_path, database_url=url) as api:
            ready = api.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["database"]["url"].startswith("postgresql://***@127.0.0.1:")
            assert "QUOTED" not in ready.text
        with pytest.raises(DatabaseUnavailable) as refused:
            PostgresGallery(url + "_gone", tmp_path)
        assert "does not exist" in str(refused.value)
        assert "QUOTED" not in str(refused.value)
        # In the query too.
        in_query = database_url.replace(f":{PASSWORD}@", "@") + f"?password={secret}_gone"
        with pytest.raises(DatabaseUnavailable) as refused:
            PostgresGallery(in_query, tmp_path)
        assert "QUOTED" not in str(refused.value)
    finally:
        with postgres_server.admin() as db:
            db.execute(f"ALTER ROLE {USER} PASSWORD '{PASSWORD}'")


@pytest.mark.parametrize("secret", ["my pass PHRASE", "PHRASE%zz"])
def test_a_url_libpq_cannot_read_is_refused_without_its_password(
    database_url: str, tmp_path: Path, secret: str
) -> None:
    """libpq's own words for a URL it cannot read quote the password it found there (a
    space or a '%' not percent-encoded); they were shown at start and by every command."""
    url = database_url.replace(PASSWORD, secret)
    with pytest.raises(InvalidValue) as refused:
        PostgresGallery(url, tmp_path)
    assert "PHRASE" not in str(refused.value)
    assert "percent-encode" in str(refused.value)
    done = _facelens("db", "upgrade", FACELENS_DATABASE_URL=url, FACELENS_DATA_DIR=str(tmp_path))
    assert done.returncode == 9, done.stderr
    assert "PHRASE" not in done.stdout + done.stderr
    # Percent-encoded, the same password is fine (the role has another: refused by the server).
    encoded = database_url.replace(PASSWORD, quote(secret, safe=""))
    with pytest.raises(DatabaseUnavailable, match="password authentication failed") as refused:
        PostgresGallery(encoded, tmp_path)
    assert "PHRASE" not in str(refused.value)


# -- data someone else wrote into the database -------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE meta SET value = 'not a number' WHERE key = 'revision'",
        "DELETE FROM meta WHERE key = 'revision'",
    ],
)
def test_a_revision_that_is_not_a_number_stops_no_recognition(
    ruby: TestClient, database_url: str, sql: str
) -> None:
    """Every recognition answered 500 (the revision read with int()), and a write 500 when
    the row was gone; now recognition goes on from memory and writes are refused, saying why."""
    with psycopg.connect(database_url, autocommit=True) as db:
        db.execute(sql)
    for _ in range(3):
        assert _names(ruby) == ["ruby"]
    refused = ruby.post("/v1/people", json={"name": "jade"})
    assert refused.status_code == 503, refused.text
    assert "revision" in refused.json()["error"]["message"]
    listed = ruby.get("/v1/people")
    assert [p["name"] for p in listed.json()["people"]] == ["ruby"]


def test_a_stored_vector_of_a_broken_length_is_left_out(
    ruby: TestClient, database_url: str
) -> None:
    """A vector whose bytes are no whole number of floats made every recognition answer 500
    (numpy refused the buffer): now that face is left out, as other unusable vectors are."""
    assert ruby.post("/v1/people", json={"name": "jade"}).status_code == 201
    enrolled = ruby.post("/v1/people/jade/faces", files={"images": photo((BLUE, LEFT))})
    assert enrolled.status_code in (200, 201), enrolled.text
    with psycopg.connect(database_url, autocommit=True) as db:
        db.execute(
            "UPDATE faces SET embedding = '\\x01020304050607'::bytea WHERE person_id = "
            "(SELECT id FROM people WHERE name = 'jade')"
        )
        db.execute("UPDATE meta SET value = CAST(value AS BIGINT) + 1 WHERE key = 'revision'")
    assert _names(ruby) == ["ruby"]
    assert _names(ruby, BLUE) == ["unknown"]


def test_a_file_name_with_a_nul_byte_is_enrolled(ruby: TestClient) -> None:
    """PostgreSQL's text holds no NUL: a multipart file name with one (any client can send
    it) answered 503 storage_error, a server fault, where SQLite stores it; the name is a
    label, its NUL shown as U+FFFD as undecodable bytes already are."""
    part = (
        b'--B\r\nContent-Disposition: form-data; name="images"; filename="a\x00b.png"\r\n'
        b"Content-Type: image/png\r\n\r\n" + photo((BLUE, LEFT)) + b"\r\n--B--\r\n"
    )
    added = ruby.post(
        "/v1/people/ruby/faces",
        content=part,
        headers={"content-type": "multipart/form-data; boundary=B"},
    )
    assert added.status_code == 200, added.text
    assert added.json()["results"][0]["image"] == "a\ufffdb.png"
    assert added.json()["enrolled"] == 1


# -- connections dropped, a database down for long ----------------------------------------------


def _terminate(server: PostgresServer, url: str) -> int:
    """Kill every connection to the test's own database (others' tests may hold some to
    theirs); how many there were."""
    with server.admin() as db:
        found = db.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE usename = %s AND datname = %s",
            (USER, url.rsplit("/", 1)[1]),
        ).fetchone()
    return int(found[0]) if found else 0


def test_connections_dropped_by_the_server_are_replaced_at_once(
    postgres_server: PostgresServer, database_url: str, tmp_path: Path
) -> None:
    """After a restart or a failover every pooled connection is dead: psycopg's pool found
    them one at a time, sleeping 1, 2, then 4 s between them, so the next statement waited
    its whole 5 s and failed with database_unavailable while the database was up (a
    recognition checking a key stalled 5 s; half the writes of a test killing connections
    were refused)."""
    gallery = PostgresGallery(database_url, tmp_path, "sface", follow=False)
    try:
        gallery.add_person("Ann")
        with concurrent.futures.ThreadPoolExecutor(4) as readers:  # four pooled connections
            barrier = threading.Barrier(4)

            def read(_: int) -> int:
                with gallery.file.db.reading() as db:
                    barrier.wait(10)
                    return int(db.execute("SELECT COUNT(*) FROM people").fetchone()[0])

            assert list(readers.map(read, range(4))) == [1, 1, 1, 1]
        assert _terminate(postgres_server, database_url) == 4
        assert gallery.count_people() == 1
        gallery.add_person("Bo")
    finally:
        gallery.close()


def test_a_dropped_connection_is_not_taken_for_the_database_out_of_reach(
    postgres_server: PostgresServer, database_url: str, tmp_path: Path
) -> None:
    """The follower's connection killed (a pg_terminate_backend, a proxy restarting) marked
    the database out of reach until it had connected again: every write meanwhile was
    refused at once with database_unavailable and /readyz said the database could not be
    reached, while it could (killing connections every 0.7 s, 57% of writes were refused)."""
    gallery = PostgresGallery(database_url, tmp_path, "sface")
    try:
        gallery.add_person("Ann")
        (pooled,) = gallery.file.read("SELECT pg_backend_pid()")[0]  # the pool's one
        problems, refused = set(), 0
        wait_for(lambda: _others(postgres_server, int(pooled)) == 1, 10, "the follower")
        for round_ in range(5):
            assert _others(postgres_server, int(pooled), kill=True) == 1  # the follower's
            for i in range(25):  # half a second or more: until the follower is back
                problems.add(gallery.unreachable)
                try:
                    gallery.add_person(f"P{round_}-{i}")
                except DatabaseUnavailable:
                    refused += 1
                threading.Event().wait(0.02)
            wait_for(lambda: _others(postgres_server, int(pooled)) == 1, 10, "the follower")
        assert (problems, refused) == ({None}, 0)
        assert gallery.count_people() == 1 + 5 * 25
    finally:
        gallery.close()


def _others(server: PostgresServer, pooled: int, *, kill: bool = False) -> int:
    """How many connections of ``facelens`` to the database of ``pooled`` there are but
    ``pooled`` (killed if ``kill``)."""
    what = "pg_terminate_backend(pid)" if kill else "*"
    with server.admin() as db:
        found = db.execute(
            f"SELECT count({what}) FROM pg_stat_activity WHERE usename = %s AND pid <> %s "
            "AND datname = (SELECT datname FROM pg_stat_activity WHERE pid = %s)",
            (USER, pooled, pooled),
        ).fetchone()
    return int(found[0]) if found else 0


def test_a_statement_waiting_for_a_connection_gives_up_when_the_database_goes(
    postgres_server: PostgresServer, database_url: str, tmp_path: Path
) -> None:
    """A statement waiting for a connection (none idle: the database had just gone, or all
    four busy) waited its whole 5 s though the database was found out of reach meanwhile
    and every statement after it failed at once: a recognition arriving as PostgreSQL
    stopped stalled 5 s on its key check. Now it gives up once the database is found gone."""
    gallery = PostgresGallery(database_url, tmp_path, "sface")
    release, held = threading.Event(), threading.Barrier(5)

    def hold(_: int) -> None:
        with gallery.file.db.reading():  # the pool's four connections, kept
            held.wait(10)
            release.wait(30)

    holders = concurrent.futures.ThreadPoolExecutor(4)
    waiter = concurrent.futures.ThreadPoolExecutor(1)
    try:
        busy = [holders.submit(hold, i) for i in range(4)]
        held.wait(10)
        waiting = waiter.submit(gallery.count_people)  # waits up to 5 s for a connection
        postgres_server.stop()  # the follower finds it gone
        try:
            with pytest.raises(DatabaseUnavailable):
                waiting.result(timeout=3)
        finally:
            release.set()
            for each in busy:
                each.result(timeout=30)
            postgres_server.start()
    finally:
        release.set()
        holders.shutdown(wait=True)
        waiter.shutdown(wait=True)
        gallery.close()


def test_writes_come_back_soon_after_a_long_outage(
    postgres_server: PostgresServer, database_url: str, tmp_path: Path
) -> None:
    """psycopg's pool tries to connect again after 1, 2, 4, 8, 16, 32 ... s, uncapped, and,
    with requests coming in all along (key checks, recognitions), starts no fresh attempt:
    after a 35 s outage writes stayed refused 28 s after the database was back (the
    follower, capped at 5 s, said it was reachable meanwhile); after a minute's, a minute."""
    gallery = PostgresGallery(database_url, tmp_path, "sface")
    stop = threading.Event()

    def requests() -> None:
        while not stop.wait(0.05):
            with contextlib.suppress(DatabaseUnavailable):
                gallery.count_people()

    reader = threading.Thread(target=requests)
    try:
        gallery.add_person("Ann")
        reader.start()
        postgres_server.stop()
        try:
            with pytest.raises(DatabaseUnavailable):
                gallery.add_person("Bo")
            # 35 s down: the pool's attempts at about 1, 3, 7, 15 and 31 s fail; its next
            # would be at about 63 s.
            stop.wait(35)
            with pytest.raises(DatabaseUnavailable):
                gallery.add_person("Bo")
        finally:
            postgres_server.start()
        wait_for(lambda: gallery.unreachable is None, 15, "the follower to reach it again")

        def written() -> bool:
            try:
                gallery.add_person("Bo")
            except DatabaseUnavailable:
                return False
            return True

        wait_for(written, BACKOFF_CAP_S + CONNECT_TIMEOUT_S, "a write to work again")
        assert [p.name for p in gallery.list_people()] == ["Ann", "Bo"]
    finally:
        stop.set()
        if reader.is_alive():
            reader.join(30)
        gallery.close()


# -- locks held by another session ----------------------------------------------------------


def test_a_locked_meta_table_stalls_no_recognition(ruby: TestClient, database_url: str) -> None:
    """A worker reads the gallery's revision before each recognition; with the meta table
    locked by another session (VACUUM FULL, an ALTER TABLE, a LOCK TABLE left open) that
    read waited for as long as the lock was held, and every recognition with it."""
    with psycopg.connect(database_url) as db:
        db.execute("LOCK TABLE meta IN ACCESS EXCLUSIVE MODE")
        with concurrent.futures.ThreadPoolExecutor(1) as one:
            recognised = one.submit(_names, ruby)
            try:
                assert recognised.result(timeout=30) == ["ruby"]
            finally:
                db.rollback()


@pytest.mark.xfail(
    strict=True,
    reason="not fixed: a write waits without bound for the gallery's advisory lock, and four "
    "such waits take every pooled connection (reads then fail as if the database were down)",
)
def test_writes_waiting_for_another_servers_write_do_not_take_every_connection(
    database_url: str, tmp_path: Path
) -> None:
    """Another server's long write (a 'db copy --replace' into the shared database, a
    migration, a session holding the lock) holds the gallery's write lock: this server's
    writes wait for it, each holding one of the pool's four connections, with no bound; a
    fifth statement, a read, waited 5 s and failed with database_unavailable (and so marked
    the database out of reach for everything else)."""
    gallery = PostgresGallery(database_url, tmp_path, "sface", follow=False)
    writers = concurrent.futures.ThreadPoolExecutor(4)
    try:
        with psycopg.connect(database_url, autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", (WRITE_LOCK,))
            writes = [writers.submit(gallery.add_person, f"p{i}") for i in range(4)]
            wait_for(lambda: _waiting_for_lock(holder) == 4, 15, "the writes to wait")
            try:
                assert gallery.count_people() == 0
            finally:
                holder.execute("SELECT pg_advisory_unlock(%s)", (WRITE_LOCK,))
            for write in writes:
                write.result(timeout=30)
    finally:
        writers.shutdown(wait=True)
        gallery.close()


def _waiting_for_lock(db: psycopg.Connection[Any]) -> int:
    found = db.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    ).fetchone()
    return int(found[0]) if found else 0


# -- facelens db copy given the wrong places ----------------------------------------------------


def _people(url: str) -> int:
    with psycopg.connect(url) as db:
        found = db.execute("SELECT count(*) FROM people").fetchone()
    return int(found[0]) if found else 0


def _tables(path: Path) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return sorted(r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'"))
    finally:
        db.close()


def test_db_copy_from_a_place_with_no_gallery_is_refused(
    postgres_server: PostgresServer, database_url: str, tmp_path: Path
) -> None:
    """A folder without a gallery (a wrong data directory), another SQLite database or an
    empty PostgreSQL database was taken for an empty gallery: one was made there (the
    source written to) and copied, so 'db copy WRONG_FOLDER FACELENS_DATABASE_URL
    --replace' emptied the shared gallery ('Copied 0 people')."""
    from facelens.gallery.sqlite import SQLiteGallery
    from facelens.jobs.db_copy import copy_gallery

    source = SQLiteGallery(tmp_path / "box" / "gallery.sqlite3", "sface")
    _fill(source)
    source.close()
    copy_gallery(str(tmp_path / "box"), database_url)
    assert _people(database_url) == 3
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    with pytest.raises(StorageError, match="no gallery"):
        copy_gallery(str(wrong), database_url, replace=True)
    assert list(wrong.iterdir()) == []
    other = tmp_path / "other.sqlite3"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE notes (x)")
    db.commit()
    db.close()
    with pytest.raises(StorageError, match="not a facelens gallery"):
        copy_gallery(str(other), database_url, replace=True)
    assert _tables(other) == ["notes"]
    empty = postgres_server.database()
    with pytest.raises(StorageError, match="no gallery"):
        copy_gallery(empty, database_url, replace=True)
    with psycopg.connect(empty) as db:
        assert db.execute("SELECT to_regclass('people')").fetchone() == (None,)
    assert _people(database_url) == 3


def test_db_copy_into_another_sqlite_database_is_refused(database_url: str, tmp_path: Path) -> None:
    """A target file that is another SQLite database (the event log, say) had the gallery's
    tables written into it beside its own."""
    from facelens.gallery.sqlite import SQLiteGallery
    from facelens.jobs.db_copy import copy_gallery

    source = SQLiteGallery(tmp_path / "box" / "gallery.sqlite3", "sface")
    _fill(source)
    source.close()
    events = tmp_path / "events.sqlite3"
    db = sqlite3.connect(events)
    db.execute("CREATE TABLE events (x)")
    db.commit()
    db.close()
    with pytest.raises(StorageError, match="not a facelens gallery"):
        copy_gallery(str(tmp_path / "box"), str(events))
    assert _tables(events) == ["events"]
    # A new file, in a folder yet to be made, is fine.
    made = copy_gallery(str(tmp_path / "box"), str(tmp_path / "new" / "dir" / "g.sqlite3"))
    assert made.counts["people"] == 3


def test_info_names_the_database_the_gallery_is_in(database_url: str, tmp_path: Path) -> None:
    """'facelens info' named gallery.sqlite3 in the data directory as the gallery when it was
    in PostgreSQL."""
    import json

    done = _facelens(
        "info", "--json", FACELENS_DATABASE_URL=database_url, FACELENS_DATA_DIR=str(tmp_path)
    )
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)["gallery"]
    assert shown.startswith("postgresql://***@127.0.0.1:"), shown
    assert PASSWORD not in done.stdout
