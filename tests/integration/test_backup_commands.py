"""``facelens backup`` and ``facelens restore`` as processes, on a data directory filled without
a model (real SQLite files): every row comes back byte for byte; hostile or damaged archives,
a data directory in use, or one holding data without --force are refused with nothing changed."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sqlite3
import stat
import subprocess
import sys
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from facelens.api.keys import KeyStore
from facelens.backup.write import write_backup
from facelens.errors import StorageError
from facelens.events.event import Event
from facelens.events.log import EventLog
from facelens.gallery import SQLiteGallery
from facelens.gallery.schema import LATEST
from facelens.models.base import Box
from facelens.settings import Settings
from facelens.storage.sqlite import Table
from facelens.video.streams import _TABLE as STREAMS_TABLE
from tests.support.backups import (
    contents,
    entry,
    facelens,
    files,
    manifest_of,
    members,
    raw_archive,
    tables,
    write_archive,
)
from tests.unit.test_gallery import face, v1_gallery

pytestmark = pytest.mark.integration  # starts processes (see docs/development.md's tiers)


def filled(data: Path, *, events: bool = True) -> str:
    """A data directory with two people (one face with a thumbnail), an API key, and (with
    ``events``) three events with face crops owed to a webhook and a stream with a password in
    its URL. Returns the key."""
    gallery = SQLiteGallery(data / "gallery.sqlite3")
    with_thumbnail = dataclasses.replace(face(1), sharpness=9.5, thumbnail=b"\xff\xd8zoe-jpeg")
    gallery.record_source("Zoë", "h1", "/p/zoe.jpg", [with_thumbnail, face(2)], None)
    gallery.record_source("张伟", "h2", "/p/wei.jpg", [face(3)], None)
    gallery.close()
    store = KeyStore(data / "gallery.sqlite3")
    _, key = store.create("door")
    store.close()
    if events:
        log = EventLog(data / "events.sqlite3", targets=("webhook",))
        log.add(
            Event(
                f"ev-{n}",
                "arrived",
                "door",
                n,
                "Zoë",
                0.3,
                0.8,
                Box(1, 2, 30, 40),
                datetime(2026, 1, 1, 12, n, tzinfo=UTC),
                crop=b"\xff\xd8crop-%d" % n,
            )
            for n in range(3)
        )
        log.close()
        streams = Table(data / "events.sqlite3", STREAMS_TABLE)
        streams.close()
        with sqlite3.connect(data / "events.sqlite3") as db:
            db.execute(
                "INSERT INTO streams VALUES ('door', 'rtsp://user:secret@cam/live', 5.0, ?)",
                (datetime.now(UTC).isoformat(),),
            )
        db.close()
    return key


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def archive(tmp_path: Path, data: Path) -> Path:
    """A backup of a filled data directory."""
    filled(data)
    target = tmp_path / "backups" / "facelens.tar.gz"
    done = facelens(data, "backup", str(target))
    assert done.returncode == 0, done.stderr
    return target


def test_backup_then_restore_gives_back_every_row_byte_for_byte(tmp_path: Path, data: Path) -> None:
    key = filled(data)
    before = contents(data)
    target = tmp_path / "backups" / "facelens.tar.gz"
    done = facelens(data, "backup", str(target))
    assert done.returncode == 0, done.stderr
    assert "2 people, 3 faces" in done.stdout and "1 API keys, 3 events, 1 streams" in done.stdout
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # biometric data: its owner's only
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]  # no leftovers
    found = members(target)
    assert [m.name for m, _ in found] == ["manifest.json", "gallery.sqlite3", "events.sqlite3"]
    manifest = manifest_of(target)
    assert manifest["format"] == "facelens-backup" and manifest["facelens_version"]
    gallery = manifest["gallery"]
    assert (gallery["schema_version"], gallery["model"]) == (LATEST, "sface")
    assert (gallery["people"], gallery["faces"], gallery["thumbnails"]) == (2, 3, 1)
    assert (gallery["api_keys"], gallery["active_api_keys"]) == (1, 1)
    assert manifest["events"] == {"events": 3, "streams": 1, "undelivered": 3}
    for member, blob in found[1:]:
        assert blob is not None
        assert manifest["files"][member.name]["size"] == len(blob)
        assert manifest["files"][member.name]["sha256"] == hashlib.sha256(blob).hexdigest()

    shutil.rmtree(data)
    done = facelens(data, "restore", str(target))
    assert done.returncode == 0, done.stderr
    assert "2 people, 3 faces" in done.stdout
    assert sorted(p.name for p in data.iterdir()) == ["events.sqlite3", "gallery.sqlite3"]
    assert contents(data) == before  # vectors, thumbnails, keys, events, outbox, streams
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in ("gallery.sqlite3", "events.sqlite3"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600
    store = KeyStore(data / "gallery.sqlite3")
    assert store.check(key) is not None  # the key given out before works again
    store.close()
    listed = facelens(data, "people", "list", "--json")
    assert json.loads(listed.stdout) == [{"name": "Zoë", "faces": 2}, {"name": "张伟", "faces": 1}]


def test_a_backup_never_overwrites_and_needs_a_gallery(tmp_path: Path, data: Path) -> None:
    target = tmp_path / "out" / "b.tar.gz"
    nothing = facelens(data, "backup", str(target))
    assert nothing.returncode == 5 and "nothing to back up" in nothing.stderr
    filled(data)
    target.parent.mkdir()
    target.write_bytes(b"keep me")
    taken = facelens(data, "backup", str(target))
    assert taken.returncode == 3 and "already exists" in taken.stderr
    assert target.read_bytes() == b"keep me"
    assert sorted(p.name for p in target.parent.iterdir()) == ["b.tar.gz"]


def damage(data: Path) -> None:
    """Fill the gallery with enough pages that damage lands in the faces, then damage it."""
    gallery = SQLiteGallery(data / "gallery.sqlite3")
    for n in range(40):
        thumb = dataclasses.replace(face(n), thumbnail=bytes([n]) * 3000)
        gallery.record_source("Zoë", f"x{n}", f"/p/{n}.jpg", [thumb], None)
    gallery.close()
    path = data / "gallery.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    raw = bytearray(path.read_bytes())
    raw[-4096:] = b"\xa5" * 4096
    path.write_bytes(bytes(raw))


def test_a_damaged_gallery_is_not_backed_up(tmp_path: Path, data: Path) -> None:
    filled(data, events=False)
    damage(data)
    target = tmp_path / "out" / "b.tar.gz"
    done = facelens(data, "backup", str(target))
    assert done.returncode == 12, done.stderr
    assert "damaged" in done.stderr and "No backup was written" in done.stderr
    assert list(target.parent.iterdir()) == []


def test_an_event_log_that_cannot_be_opened_is_named_as_the_event_log(
    tmp_path: Path, data: Path
) -> None:
    filled(data)
    (data / "events.sqlite3-wal").mkdir()  # SQLite cannot open the log's side file
    with pytest.raises(StorageError) as caught:
        write_backup(Settings(data_dir=data), tmp_path / "out" / "b.tar.gz")
    # Before: "Gallery .../events.sqlite3: ...", the file named for what it does not hold.
    assert caught.value.message.startswith(f"Event log {data / 'events.sqlite3'}: ")
    assert list((tmp_path / "out").iterdir()) == []


def _good(archive: Path) -> tuple[dict[str, object], bytes, bytes]:
    found = {m.name: blob for m, blob in members(archive)}
    gallery, events = found["gallery.sqlite3"], found["events.sqlite3"]
    assert gallery is not None and events is not None
    return manifest_of(archive), gallery, events


def _manifest_entry(manifest: dict[str, object]) -> tuple[tarfile.TarInfo, bytes]:
    return entry("manifest.json", json.dumps(manifest).encode())


def hostile(kind: str, good: Path, folder: Path) -> Path:
    """An archive made from the good one, with one thing wrong."""
    manifest, gallery, events = _good(good)
    path = folder / f"{kind}.tar.gz"
    head = [_manifest_entry(manifest), entry("gallery.sqlite3", gallery)]
    if kind == "traversal":
        return write_archive(path, [*head, entry("../x", b"owned")])
    if kind == "traversal-first":
        return write_archive(path, [entry("../../x", b"owned"), *head])
    if kind == "absolute":
        return write_archive(path, [*head, entry(str(folder / "evil"), b"owned")])
    if kind == "symlink":
        link = entry("events.sqlite3", type=tarfile.SYMTYPE, linkname="/etc/passwd")
        return write_archive(path, [*head, link])
    if kind == "hardlink":
        link = entry("events.sqlite3", type=tarfile.LNKTYPE, linkname="gallery.sqlite3")
        return write_archive(path, [*head, link])
    if kind == "checksum":
        changed = bytearray(gallery)
        changed[len(changed) // 2] ^= 0xFF
        parts = [head[0], entry("gallery.sqlite3", bytes(changed)), entry("events.sqlite3", events)]
        return write_archive(path, parts)
    if kind == "truncated":
        whole = good.read_bytes()
        path.write_bytes(whole[: len(whole) // 2])
        return path
    if kind == "foreign":
        path.write_bytes(b"PK\x03\x04 a zip file, or anything else" * 100)
        return path
    if kind == "no-manifest":
        return write_archive(path, [entry("gallery.sqlite3", gallery)])
    if kind == "extra":
        return write_archive(path, [*head, entry("events.sqlite3", events), entry("x.txt", b"1")])
    if kind == "newer-format":
        newer = {**manifest, "format_version": 99}
        return write_archive(path, [_manifest_entry(newer), *head[1:]])
    if kind == "huge-member":  # declared by the manifest too: no disk has room for it
        huge = {**manifest, "files": {"gallery.sqlite3": {"size": 1 << 42, "sha256": "0" * 64}}}
        member = entry("gallery.sqlite3", size=1 << 42)
        return raw_archive(path, [_manifest_entry(huge), (member[0], gallery[:4096])])
    if kind == "size-differs":  # a header claiming more than the manifest says
        info, _ = _manifest_entry(manifest)
        text = json.dumps(manifest).encode()
        info.size = len(text)
        member = entry("gallery.sqlite3", size=1 << 42)
        return raw_archive(path, [(info, text), (member[0], gallery[:4096])])
    if kind == "huge-header":  # a 3 MB PAX header before the manifest
        bloated = entry("manifest.json", json.dumps(manifest).encode())
        bloated[0].pax_headers = {"comment": "x" * (3 << 20)}
        return write_archive(path, [bloated, *head[1:]])
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "code", "said"),
    [
        ("traversal", 3, "leads out of the folder"),
        ("traversal-first", 3, "leads out of the folder"),
        ("absolute", 3, "absolute path"),
        ("symlink", 3, "is a link"),
        ("hardlink", 3, "is a link"),
        ("checksum", 3, "SHA-256"),
        ("truncated", 3, "a damaged or truncated one"),
        ("foreign", 3, "it is no archive"),
        ("no-manifest", 3, "does not begin with manifest.json"),
        ("extra", 3, "'x.txt' is not in its manifest"),
        ("newer-format", 3, "newer facelens"),
        ("huge-member", 5, "needs 4,398,046,511,104 bytes"),
        ("size-differs", 3, "where its manifest says"),
        ("huge-header", 3, "holds more than its manifest declares"),
    ],
)
def test_a_hostile_or_damaged_archive_is_refused_with_nothing_changed(
    tmp_path: Path, data: Path, archive: Path, kind: str, code: int, said: str
) -> None:
    bad = hostile(kind, archive, archive.parent)
    kept = files(data)
    outside = files(tmp_path)
    done = facelens(data, "restore", "--force", str(bad))
    assert done.returncode == code, (done.stdout, done.stderr)
    assert said in done.stderr and "Nothing was changed" in done.stderr
    assert "Traceback" not in done.stderr
    assert files(data) == kept
    assert files(tmp_path) == outside  # nothing written beside it either (../x, /abs/evil)
    assert not (tmp_path / "x").exists() and not (tmp_path / "backups" / "evil").exists()


def test_restore_refuses_while_another_process_has_the_data_open(
    tmp_path: Path, data: Path, archive: Path
) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            f"db = sqlite3.connect({str(data / 'events.sqlite3')!r})\n"
            "db.execute('SELECT COUNT(*) FROM events').fetchall()\n"
            "print('open', flush=True)\n"
            "time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        kept = files(data)
        done = facelens(data, "restore", "--force", str(archive))
        assert done.returncode == 5, done.stderr
        assert "events.sqlite3 is in use by another process" in done.stderr
        assert "stop it first" in done.stderr
        assert files(data) == kept
    finally:
        holder.kill()
        holder.wait()
    done = facelens(data, "restore", "--force", str(archive))
    assert done.returncode == 0, done.stderr


def test_restore_over_data_needs_force_and_keeps_what_it_replaced(
    data: Path, archive: Path
) -> None:
    saved = contents(data)
    gallery = SQLiteGallery(data / "gallery.sqlite3")
    gallery.record_source("Ann", "h9", "/p/ann.jpg", [face(9)], None)
    gallery.close()
    changed = contents(data)
    kept = files(data)
    refused = facelens(data, "restore", str(archive))
    assert refused.returncode == 8 and "--force" in refused.stderr
    assert files(data) == kept

    done = facelens(data, "restore", "--force", str(archive))
    assert done.returncode == 0, done.stderr
    assert contents(data) == saved
    (before,) = data.glob("before-restore-*")
    assert stat.S_IMODE(before.stat().st_mode) == 0o700
    assert str(before) in done.stderr
    assert contents(before) == changed  # Ann is in the files it replaced


def test_a_backup_without_events_leaves_no_events_behind_when_restored(
    tmp_path: Path, data: Path
) -> None:
    other = tmp_path / "other"
    filled(other, events=False)
    target = tmp_path / "gallery-only.tar.gz"
    assert facelens(other, "backup", str(target)).returncode == 0
    assert [m.name for m, _ in members(target)] == ["manifest.json", "gallery.sqlite3"]
    filled(data)
    done = facelens(data, "restore", "--force", str(target))
    assert done.returncode == 0, done.stderr
    assert not (data / "events.sqlite3").exists()  # the data directory as it was backed up
    (before,) = data.glob("before-restore-*")
    assert tables(before / "events.sqlite3")["streams"]


def test_a_gallery_of_an_older_schema_is_upgraded_when_restored(tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    v1_gallery(old / "gallery.sqlite3", model_id=None, faces=2)
    faces = tables(old / "gallery.sqlite3")["faces"]
    target = tmp_path / "old.tar.gz"
    done = facelens(old, "backup", str(target))
    assert done.returncode == 0, done.stderr
    assert manifest_of(target)["gallery"]["schema_version"] == 1
    assert tables(old / "gallery.sqlite3")["meta"][0] == ("schema_version", "1")  # read only

    data = tmp_path / "data"
    done = facelens(data, "restore", str(target))
    assert done.returncode == 0, done.stderr
    assert "upgraded from schema version 1" in done.stdout
    meta = dict(tables(data / "gallery.sqlite3")["meta"])
    assert (meta["schema_version"], meta["model"]) == (str(LATEST), "dlib")
    assert [row[:4] for row in tables(data / "gallery.sqlite3")["faces"]] == [
        row[:4] for row in faces
    ]
    assert len(list(data.glob("gallery.sqlite3.schema-v1-*.bak"))) == 1  # as on any upgrade


def test_a_gallery_from_a_newer_facelens_is_refused(tmp_path: Path, data: Path) -> None:
    filled(data, events=False)
    with sqlite3.connect(data / "gallery.sqlite3") as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.close()
    target = tmp_path / "newer.tar.gz"
    assert facelens(data, "backup", str(target)).returncode == 0
    fresh = tmp_path / "fresh"
    done = facelens(fresh, "restore", str(target))
    assert done.returncode == 6 and "newer facelens" in done.stderr
    assert not fresh.exists()  # made for the restore, and gone with it


def test_a_wal_left_by_a_killed_process_goes_with_the_file_it_belongs_to(
    data: Path, archive: Path
) -> None:
    """A process killed with changes still in the -wal: restored files must not be read with
    that -wal (SQLite would apply it to them), and the files kept must keep their changes."""
    saved = contents(data)
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, time\n"
            f"db = sqlite3.connect({str(data / 'gallery.sqlite3')!r}, isolation_level=None)\n"
            "db.execute('PRAGMA wal_autocheckpoint = 0')\n"
            "db.execute(\"INSERT INTO people (name, created_at) VALUES ('Ann', 'now')\")\n"
            "print('written', flush=True)\n"
            "time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None and writer.stdout.readline() == "written\n"
    writer.kill()  # no checkpoint: 'Ann' is only in the -wal
    writer.wait()
    assert (data / "gallery.sqlite3-wal").stat().st_size > 0
    done = facelens(data, "restore", "--force", str(archive))
    assert done.returncode == 0, done.stderr
    assert contents(data) == saved
    (before,) = data.glob("before-restore-*")
    assert {p.name for p in before.iterdir()} >= {"gallery.sqlite3", "gallery.sqlite3-wal"}
    names = [row[1] for row in tables(before / "gallery.sqlite3")["people"]]
    assert "Ann" in names  # the files replaced are whole, their -wal with them


def test_a_damaged_gallery_is_replaced_by_a_backup(data: Path, archive: Path) -> None:
    saved = contents(data)
    damage(data)
    assert facelens(data, "people", "list").returncode == 12  # what sends one to a backup
    done = facelens(data, "restore", "--force", str(archive))
    assert done.returncode == 0, done.stderr
    assert contents(data) == saved
    assert facelens(data, "gallery", "check").returncode == 0
