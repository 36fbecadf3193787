"""The gallery's health with real files and processes: a file damaged under a running server, and
commands on a real full disk and a real read-only filesystem (a small tmpfs in a mount namespace
of the test's own, so nothing outside it sees the mount)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.helpers import Probe
from tests.support.server import FACELENS, Server, enrolled

pytestmark = pytest.mark.integration

PAGE = 4096


@pytest.fixture(scope="module")
def gallery_dir(tmp_path_factory: pytest.TempPathFactory, people_dir: Path) -> Path:
    """A data directory with the shared people enrolled (closed: its WAL is in the file)."""
    return enrolled(tmp_path_factory.mktemp("enrolled") / "data", people_dir)


def a_probe_of(probes: list[Probe], name: str) -> Path:
    return next(p.file for p in probes if p.expected == [name])


def people_in(path: Path) -> set[str]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return {str(row[0]) for row in db.execute("SELECT name FROM people")}


def test_a_gallery_damaged_under_a_running_server_stops_writes_at_once(
    tmp_path: Path, gallery_dir: Path, probes: list[Probe]
) -> None:
    data = tmp_path / "data"
    shutil.copytree(gallery_dir, data)
    path = data / "gallery.sqlite3"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        query = "SELECT rootpage FROM sqlite_master WHERE name = 'faces'"
        (faces_page,) = db.execute(query).fetchone()
    obama = a_probe_of(probes, "obama").read_bytes()
    server = Server(data)
    try:
        named = server.client.post("/v1/recognize", files={"image": obama})
        assert [f["name"] for f in named.json()["faces"]] == ["obama"], named.text
        with path.open("r+b") as handle:  # a page the next write does not touch, as a bad disk
            handle.seek((faces_page - 1) * PAGE)
            handle.write(b"\xa5" * PAGE)

        refused = server.client.post("/v1/people", json={"name": "after"})
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "gallery_damaged"
        assert "damaged" in refused.json()["error"]["message"]
        assert "retry-after" not in refused.headers  # retrying does not help
        ready = server.client.get("/readyz")  # at once, not a minute later
        assert ready.status_code == 503
        problems = " ".join(ready.json()["problems"])
        assert "damaged" in problems and "Recognition goes on" in problems
        again = server.client.post("/v1/people", json={"name": "later"})
        assert (again.status_code, again.json()["error"]["code"]) == (503, "gallery_damaged")
        # Changes with an Idempotency-Key write nothing either (their claim went into the
        # damaged file, and its write-ahead log grew with every retry).
        files = [path, path.with_name(path.name + "-wal")]
        before = [f.read_bytes() if f.exists() else b"" for f in files]
        for n in range(20):
            keyed = server.client.post(
                "/v1/people", json={"name": f"keyed{n}"}, headers={"Idempotency-Key": f"k{n}"}
            )
            assert (keyed.status_code, keyed.json()["error"]["code"]) == (503, "gallery_damaged")
        assert [f.read_bytes() if f.exists() else b"" for f in files] == before
        # Recognition goes on from what the workers hold in memory.
        named = server.client.post("/v1/recognize", files={"image": obama})
        assert [f["name"] for f in named.json()["faces"]] == ["obama"], named.text
        assert "is damaged" in server.log()
    finally:
        assert server.stop() == 0, server.log()
    assert not people_in(path) & {"after", "later"}  # nothing was written


# -- a full disk and a read-only filesystem, for real ---------------------------------------

# Run inside a mount namespace of its own (unshare): mounts a small tmpfs, copies the gallery
# in, fills the tmpfs or remounts it read only, runs the commands and prints their outcomes.
_ON_SMALL_DISK = r"""
import errno, json, os, shutil, subprocess, sys
mount, source, state, commands = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "facelens-test", mount], check=True)
for name in os.listdir(source):
    shutil.copy(os.path.join(source, name), mount)
if state == "read-only":
    subprocess.run(["mount", "-o", "remount,ro", mount], check=True)
else:
    filler = os.open(os.path.join(mount, "filler"), os.O_WRONLY | os.O_CREAT)
    for chunk in (65536, 4096, 1):
        try:
            while True:
                os.write(filler, b"\0" * chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    os.close(filler)
done = [subprocess.run(c, capture_output=True, text=True, timeout=600) for c in commands]
print(json.dumps([[d.returncode, d.stdout, d.stderr] for d in done]))
"""
# As root a mount namespace is enough; others map themselves to root in a user namespace.
_UNSHARE = ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "-r", "--mount"]


def on_small_disk(
    source: Path, state: str, tmp_path: Path, *commands: list[str]
) -> list[tuple[int, str, str]]:
    """Each of ``commands`` run with ``--data-dir`` on a tmpfs holding the files of ``source``,
    left ``full`` or ``read-only``: (exit code, stdout, stderr) of each."""
    mount = tmp_path / "mnt"
    mount.mkdir()
    given = json.dumps([[FACELENS, "--data-dir", str(mount), *c] for c in commands])
    done = subprocess.run(
        [*_UNSHARE, sys.executable, "-c", _ON_SMALL_DISK, str(mount), str(source), state, given],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr
    return [tuple(outcome) for outcome in json.loads(done.stdout)]  # type: ignore[misc]


def no_advice_to_discard(text: str) -> bool:
    return "is damaged" not in text and "move it away" not in text


@pytest.mark.parametrize("state", ["full", "read-only"])
def test_commands_that_only_read_work_on_a_full_or_read_only_disk(
    tmp_path: Path, gallery_dir: Path, people_dir: Path, probes: list[Probe], state: str
) -> None:
    assert not (gallery_dir / "gallery.sqlite3-wal").exists()  # closed cleanly
    listing, check, recognised, enrol = on_small_disk(
        gallery_dir,
        state,
        tmp_path,
        ["people", "list", "--json"],
        ["gallery", "check"],
        ["recognize", "--json", str(a_probe_of(probes, "obama"))],
        ["enroll", str(people_dir)],
    )
    assert listing[0] == 0, listing[2]
    assert {p["name"] for p in json.loads(listing[1])} == {p.name for p in people_dir.iterdir()}
    assert check[0] == 0 and "sound" in check[1], check
    assert recognised[0] == 0, recognised[2]
    assert [f["name"] for f in json.loads(recognised[1])[0]["faces"]] == ["obama"]
    # A write fails as a storage error that says what is wrong, never as damage.
    assert enrol[0] == 5 and no_advice_to_discard(enrol[2]), enrol[2]
    assert ("disk is full" if state == "full" else "read only") in enrol[2], enrol[2]


def test_a_gallery_that_cannot_be_read_on_a_full_disk_is_not_called_damaged(
    tmp_path: Path, gallery_dir: Path
) -> None:
    """A -wal file holds changes (the gallery was in use) but SQLite cannot make its -shm file
    on the full disk: the gallery cannot be read, which says nothing about damage."""
    source = tmp_path / "in-use"
    shutil.copytree(gallery_dir, source)
    path = source / "gallery.sqlite3"
    writer = sqlite3.connect(path)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute("INSERT INTO people (name, created_at) VALUES ('newcomer', '2026-01-01')")
    writer.commit()
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("gallery.sqlite3", "gallery.sqlite3-wal"):  # as left by a crash
        shutil.copy(source / name, copy / name)
    writer.close()
    (check,) = on_small_disk(copy, "full", tmp_path, ["gallery", "check"])
    assert check[0] == 5, check
    assert "keep the file" in check[2] and no_advice_to_discard(check[1] + check[2]), check
