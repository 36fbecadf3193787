"""``facelens backup`` and ``facelens restore`` with real enrolment, a real API key, events, a
stream, and a real ``facelens serve`` writing while backups are taken."""

from __future__ import annotations

import json
import shutil
import threading
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from facelens.api.keys import KeyStore
from facelens.events.event import Event
from facelens.events.log import EventLog
from facelens.gallery import SQLiteGallery
from facelens.models.base import Box
from facelens.settings import Settings
from facelens.video.streams import StreamManager
from tests.integration.test_stream_manager import idle_stream
from tests.support.backups import contents, facelens, manifest_of
from tests.support.server import Server

pytestmark = pytest.mark.integration


def test_everything_of_a_data_directory_comes_back_after_a_wipe(
    tmp_path: Path, people_dir: Path, faces_dir: Path
) -> None:
    data = tmp_path / "data"
    enrolled = facelens(data, "enroll", str(people_dir))
    assert enrolled.returncode == 0, enrolled.stderr
    made = facelens(data, "keys", "create", "door", "--scope", "admin")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    gallery = SQLiteGallery(data / "gallery.sqlite3")
    crop = gallery.thumbnail(gallery.faces("obama")[0].id)
    gallery.close()
    assert crop  # a real face crop, as events carry with FACELENS_EVENT_CROPS
    log = EventLog(data / "events.sqlite3", targets=("webhook",))
    log.add(
        Event(
            f"ev-{n}",
            "arrived",
            "door",
            n,
            "obama",
            0.31,
            0.9,
            Box(1, 2, 30, 40),
            datetime.now(UTC),
            crop=crop,
        )
        for n in range(5)
    )
    log.close()
    settings = Settings(data_dir=data)
    streams = StreamManager(settings, target=idle_stream)
    try:
        streams.create("door", "rtsp://user:secret@127.0.0.1:9/live", 5.0)
    finally:
        streams.close()
    probe = faces_dir / "probes" / "obama1.jpg"
    named = facelens(data, "recognize", str(probe), "--json")
    assert named.returncode == 0, named.stderr
    before = contents(data)
    assert before["gallery.sqlite3"]["faces"] and before["events.sqlite3"]["streams"]

    archive = tmp_path / "backups" / "all.tar.gz"
    done = facelens(data, "backup", str(archive))
    assert done.returncode == 0, done.stderr
    manifest = manifest_of(archive)
    assert manifest["gallery"]["faces"] == len(before["gallery.sqlite3"]["faces"])
    assert manifest["events"] == {"events": 5, "streams": 1, "undelivered": 5}

    shutil.rmtree(data)
    done = facelens(data, "restore", str(archive))
    assert done.returncode == 0, done.stderr
    after = contents(data)
    assert after == before  # people, faces (vectors byte for byte), keys, events, streams
    store = KeyStore(data / "gallery.sqlite3")
    assert store.check(key) is not None
    store.close()
    streams = StreamManager(Settings(data_dir=data), target=idle_stream)
    try:
        assert [(s.id, s.source, s.fps) for s in streams.list()] == [
            ("door", "rtsp://user:secret@127.0.0.1:9/live", 5.0)
        ]
    finally:
        streams.close()
    again = facelens(data, "recognize", str(probe), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == json.loads(named.stdout)


def _enrol_until(
    server: Server,
    photos: list[Path],
    started: threading.Event,
    stop: threading.Event,
    done: list[str],
) -> None:
    """Enrol one new person per photo, over HTTP, until ``stop`` (or the photos run out);
    ``started`` once three are in."""
    with httpx.Client(base_url=server.url, timeout=120) as client:
        for n, photo in enumerate(photos):
            if stop.is_set():
                break
            name = f"person {n:03d}"
            answer = client.post(
                "/v1/people", data={"name": name}, files={"images": photo.read_bytes()}
            )
            if answer.status_code == 201:
                done.append(name)
            if len(done) >= 3:
                started.set()
    started.set()


def test_backups_taken_while_the_server_enrols_are_each_consistent(
    tmp_path: Path, lfw_dir: Path
) -> None:
    data = tmp_path / "data"
    photos = sorted(p for p in (lfw_dir / "gallery").glob("*/*.jpg"))[:60]
    server = Server(data)
    archives: list[Path] = []
    try:
        started, stop = threading.Event(), threading.Event()
        enrolled: list[str] = []
        writer = threading.Thread(
            target=_enrol_until, args=(server, photos, started, stop, enrolled)
        )
        writer.start()
        try:
            assert started.wait(300), "the server enrolled nobody"
            for n in range(3):  # while the writer goes on enrolling
                archive = tmp_path / "backups" / f"{n}.tar.gz"
                done = facelens(data, "backup", str(archive))
                assert done.returncode == 0, done.stderr
                archives.append(archive)
        finally:
            stop.set()
            writer.join(300)
        assert len(enrolled) >= 3

        # Not under a running server: refused, nothing changed.
        kept, names = contents(data), sorted(p.name for p in data.iterdir())
        refused = facelens(data, "restore", "--force", str(archives[-1]))
        assert refused.returncode == 5 and "are in use by another process" in refused.stderr
        assert "stop it first" in refused.stderr
        assert contents(data) == kept and sorted(p.name for p in data.iterdir()) == names
    finally:
        stopped = server.stop()
    assert stopped == 0, server.log()

    counts = []
    for archive in archives:
        restored = tmp_path / f"restored-{archive.stem}"
        done = facelens(restored, "restore", str(archive))
        assert done.returncode == 0, done.stderr
        check = facelens(restored, "gallery", "check")
        assert check.returncode == 0 and "sound" in check.stdout, check.stdout
        people = json.loads(facelens(restored, "people", "list", "--json").stdout)
        # One consistent state: each person came with their face in one transaction.
        assert people and all(p["faces"] == 1 for p in people), people
        assert len(people) == manifest_of(archive)["gallery"]["people"]
        assert {p["name"] for p in people} <= set(enrolled)
        counts.append(len(people))
    assert counts == sorted(counts)  # later backups hold as many people or more

    # Stopped, the data directory is replaced by the last backup.
    done = facelens(data, "restore", "--force", str(archives[-1]))
    assert done.returncode == 0, done.stderr
    people = json.loads(facelens(data, "people", "list", "--json").stdout)
    assert len(people) == counts[-1]
    (before,) = data.glob("before-restore-*")
    replaced = json.loads(facelens(before, "people", "list", "--json").stdout)
    assert len(replaced) == len(enrolled)  # the files it replaced, as the server left them
