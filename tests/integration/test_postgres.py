"""The shared gallery on a real PostgreSQL 15 (started by the test session): several servers'
galleries on one database at once — one identity per name across processes, one schema
upgrade of several started together, changes followed within a second, an outage that stops
no recognition and half-writes nothing."""

from __future__ import annotations

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
