"""The ``facelens`` command run as a real process, as a user would, on the shared photos."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from facelens.models.profiles import DEFAULT_MODEL, PROFILES
from tests.support.helpers import Probe, png_header_only

pytestmark = pytest.mark.integration

FACELENS = str(Path(sys.executable).with_name("facelens"))


def run(
    data_dir: Path, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **(env or {}), "FACELENS_DATA_DIR": str(data_dir)}
    result = subprocess.run([FACELENS, *args], env=env, capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def run_json(data_dir: Path, *args: str) -> Any:
    return json.loads(run(data_dir, *args, "--json").stdout)


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory: pytest.TempPathFactory, people_dir: Path) -> Path:
    data = tmp_path_factory.mktemp("data")
    run(data, "enroll", str(people_dir))
    return data


def gallery_rows(data_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(data_dir / "gallery.sqlite3") as db:
        return db.execute(sql).fetchall()


def test_enroll_reports_every_person_and_a_rerun_does_nothing(
    tmp_path: Path, people_dir: Path
) -> None:
    first = run_json(tmp_path, "enroll", str(people_dir))
    by_name = {p["name"]: p for p in first["people"]}
    assert set(by_name) == {p.name for p in people_dir.iterdir()}
    assert sum(p["enrolled"] for p in first["people"]) == 11
    assert all(p["skipped"] == [] for p in first["people"])
    again = run_json(tmp_path, "enroll", str(people_dir))
    assert sum(p["enrolled"] for p in again["people"]) == 0
    assert sum(p["unchanged"] for p in again["people"]) == 11


def test_recognize_json_names_every_probe(enrolled: Path, probes: list[Probe]) -> None:
    listing = run_json(enrolled, "recognize", *(str(p.file) for p in probes))
    assert [entry["file"] for entry in listing] == [str(p.file) for p in probes]
    for probe, entry in zip(probes, listing, strict=True):
        assert sorted(f["name"] for f in entry["faces"]) == probe.expected, entry["file"]
        with Image.open(probe.file) as image:
            assert (entry["width"], entry["height"]) == image.size
        for face in entry["faces"]:
            assert set(face) >= {"name", "distance", "confidence", "box"}
            assert set(face["box"]) == {"left", "top", "right", "bottom"}
            assert 0.0 <= face["confidence"] <= 1.0


def test_annotate_writes_the_photo_with_boxes_at_full_size(
    enrolled: Path, faces_dir: Path, tmp_path: Path
) -> None:
    probe = faces_dir / "probes" / "two_people.jpg"
    out = tmp_path / "new" / "out"  # does not exist yet: created before the work
    (entry,) = run_json(enrolled, "recognize", str(probe), "--annotate", str(out))
    written = out / "two_people.jpg"
    assert entry["annotated"] == str(written)
    with Image.open(written) as annotated, Image.open(probe) as original:
        assert annotated.size == original.size
        box = entry["faces"][0]["box"]
        r, g, _ = annotated.convert("RGB").getpixel(
            (box["left"] + 1, (box["top"] + box["bottom"]) // 2)
        )
        assert g > 150 and r < 120  # the green outline of a known face


def test_batch_with_a_bad_file_does_the_others_and_exits_nonzero(
    enrolled: Path, faces_dir: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo")
    good = faces_dir / "probes" / "obama1.jpg"
    result = run(enrolled, "recognize", str(bad), str(good), "--json", check=False)
    assert result.returncode == 1
    bad_entry, good_entry = json.loads(result.stdout)
    assert "faces" not in bad_entry and "notes.jpg" in bad_entry["error"]
    assert [f["name"] for f in good_entry["faces"]] == ["obama"]


def test_verify_json(enrolled: Path, faces_dir: Path) -> None:
    people = faces_dir / "people"
    same = run_json(
        enrolled,
        "verify",
        str(people / "obama" / "obama.jpg"),
        str(faces_dir / "probes" / "obama-720p.jpg"),
    )
    threshold = PROFILES[DEFAULT_MODEL].threshold  # the gallery's model: the default one
    assert same["same_person"] is True and same["threshold"] == threshold
    assert 0 <= same["distance"] < threshold
    other = run_json(
        enrolled,
        "verify",
        str(people / "obama" / "obama.jpg"),
        str(people / "rose_leslie" / "img1.jpg"),
    )
    assert other["same_person"] is False and other["distance"] > threshold


def test_verify_follows_the_model_of_the_data_dir_and_model_overrides_it(
    tmp_path: Path, faces_dir: Path
) -> None:
    pair = (
        str(faces_dir / "people" / "obama" / "obama.jpg"),
        str(faces_dir / "probes" / "obama1.jpg"),
    )
    run(tmp_path, "--model", "dlib", "people", "list")  # a new gallery, made for dlib
    dlib = run_json(tmp_path, "verify", *pair)
    assert dlib["threshold"] == PROFILES["dlib"].threshold
    sface = run_json(tmp_path / "elsewhere", "--model", "sface", "verify", *pair)
    assert sface["threshold"] == PROFILES["sface"].threshold
    assert sface["distance"] != dlib["distance"] and sface["same_person"] and dlib["same_person"]


def test_people_list_rename_remove(tmp_path: Path, people_dir: Path, faces_dir: Path) -> None:
    shutil.copytree(people_dir / "biden", tmp_path / "in" / "biden")
    run(tmp_path / "data", "enroll", str(tmp_path / "in"))
    assert run_json(tmp_path / "data", "people", "list") == [{"name": "biden", "faces": 2}]
    run(tmp_path / "data", "people", "rename", "biden", "约瑟夫·拜登")
    assert run_json(tmp_path / "data", "people", "list") == [{"name": "约瑟夫·拜登", "faces": 2}]
    (entry,) = run_json(
        tmp_path / "data", "recognize", str(faces_dir / "probes" / "two_people.jpg")
    )
    assert sorted(f["name"] for f in entry["faces"]) == ["unknown", "约瑟夫·拜登"]
    run(tmp_path / "data", "people", "remove", "约瑟夫·拜登")
    assert run_json(tmp_path / "data", "people", "list") == []
    assert gallery_rows(tmp_path / "data", "SELECT COUNT(*) FROM faces") == [(0,)]
    (entry,) = run_json(
        tmp_path / "data", "recognize", str(faces_dir / "probes" / "two_people.jpg")
    )
    assert [f["name"] for f in entry["faces"]] == ["unknown", "unknown"]
    missing = run(tmp_path / "data", "people", "remove", "nobody", check=False)
    assert missing.returncode == 7 and "nobody" in missing.stderr


def test_incremental_enrol_changed_new_and_pruned_files(tmp_path: Path, people_dir: Path) -> None:
    folder = tmp_path / "in"
    shutil.copytree(people_dir / "obama", folder / "obama")
    data = tmp_path / "data"
    run(data, "enroll", str(folder))
    # A new photo, a photo replaced by another, one deleted.
    shutil.copy(people_dir / "biden" / "biden.jpg", folder / "obama" / "extra.jpg")
    shutil.copy(people_dir / "obama" / "obama2.jpg", folder / "obama" / "obama.jpg")
    (folder / "obama" / "obama2.jpg").unlink()
    report = run_json(data, "enroll", str(folder), "--prune")
    (person,) = report["people"]
    assert (person["enrolled"], person["unchanged"], person["pruned"]) == (2, 0, 1)
    paths = sorted(Path(p).name for (p,) in gallery_rows(data, "SELECT path FROM sources"))
    assert paths == ["extra.jpg", "obama.jpg"]
    assert gallery_rows(data, "SELECT COUNT(*) FROM faces") == [(2,)]


def test_group_photo_is_skipped_unless_largest_is_asked(tmp_path: Path, faces_dir: Path) -> None:
    folder = tmp_path / "in" / "someone"
    folder.mkdir(parents=True)
    shutil.copy(faces_dir / "probes" / "two_people.jpg", folder)
    skipped = run_json(tmp_path / "data", "enroll", str(tmp_path / "in"))
    (reason,) = [s["reason"] for s in skipped["people"][0]["skipped"]]
    assert "2 faces" in reason and "--largest" in reason
    taken = run_json(tmp_path / "data2", "enroll", str(tmp_path / "in"), "--largest")
    assert taken["people"][0]["faces"] == 1


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("missing", "no such folder"),
        ("empty", "holds no person folders"),
        ("no-photos", "hold no photos"),
        ("a-file", "is a file"),
    ],
)
def test_bad_enrol_folders_fail_before_any_work(tmp_path: Path, layout: str, message: str) -> None:
    folder = tmp_path / "in"
    if layout == "empty":
        folder.mkdir()
    elif layout == "no-photos":
        (folder / "alice").mkdir(parents=True)
        (folder / "alice" / "readme.txt").write_text("hi")
    elif layout == "a-file":
        folder.write_text("x")
    result = run(tmp_path / "data", "enroll", str(folder), check=False)
    assert result.returncode == 3
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()  # nothing written half-way


def test_corrupt_and_fake_photos_are_reported_per_file(tmp_path: Path, people_dir: Path) -> None:
    folder = tmp_path / "in" / "obama"
    shutil.copytree(people_dir / "obama", folder)
    original = (people_dir / "obama" / "obama.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(original[: len(original) // 3])
    (folder / "text.jpg").write_text("I am a text file")
    report = run_json(tmp_path / "data", "enroll", str(tmp_path / "in"))
    (person,) = report["people"]
    reasons = {Path(s["file"]).name: s["reason"] for s in person["skipped"]}
    assert person["enrolled"] == 2
    assert "corrupt or truncated" in reasons["truncated.jpg"]
    assert "not an image" in reasons["text.jpg"]


def test_huge_dimension_png_is_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header_only(60_000, 60_000))
    result = run(tmp_path / "data", "recognize", str(bomb), check=False)
    assert result.returncode == 4
    assert "over the limit" in result.stdout + result.stderr


def test_unwritable_data_dir_is_a_clear_error(tmp_path: Path, people_dir: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the data folder should go")
    result = run(blocker / "data", "enroll", str(people_dir), check=False)
    assert result.returncode == 5
    assert "another --data-dir" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder other users can reach (pytest's own is its user's only)."""
    folder = Path(tempfile.mkdtemp(prefix="facelens-owners-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def as_user(uid: int, gid: int) -> list[str]:
    """The command prefix that runs a command as ``uid``:``gid`` with no other group, as a
    container runs it. It keeps only CAP_DAC_READ_SEARCH, so that it can run this test's
    Python (under root's home here); that capability reads, it never grants writing."""
    if os.geteuid() != 0:
        raise AssertionError("this test changes users: run the tests as root (CI does)")
    return [
        "setpriv",
        f"--reuid={uid}",
        f"--regid={gid}",
        "--clear-groups",
        "--inh-caps=+dac_read_search",
        "--ambient-caps=+dac_read_search",
    ]


def test_a_data_dir_of_another_user_says_whose_it_is_and_the_chown(shared_tmp: Path) -> None:
    """A root-owned folder bind-mounted as a container's /data, the server running as 10001."""
    data = shared_tmp / "data"
    data.mkdir(mode=0o755)  # root's
    served = subprocess.run(
        [*as_user(10001, 10001), FACELENS, "--data-dir", str(data), "serve"],
        env={**os.environ, "FACELENS_SERVER_API_KEYS": "a-key-of-sixteen-chars-or-more"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert served.returncode == 5, served.stderr
    said = " ".join(served.stderr.split())
    assert f"{data} belongs to uid 0 and gid 0 (mode 755)" in said, said
    assert "this process runs as uid 10001, gid 10001" in said
    assert f"'chown -R 10001 {data}'" in said and "another --data-dir" in said
    assert "Traceback" not in said and "starting" not in said
    # A data folder to be made inside one it may not write says the same of that folder.
    listed = subprocess.run(
        [*as_user(10001, 10001), FACELENS, "--data-dir", str(data / "sub"), "people", "list"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 5 and f"'chown -R 10001 {data}'" in listed.stderr, listed.stderr
    # A folder anyone may write, holding a gallery made by root: the file is the culprit.
    run(data, "keys", "create", "made-by-root")
    data.chmod(0o777)
    made = subprocess.run(
        [*as_user(10001, 10001), FACELENS, "--data-dir", str(data), "keys", "create", "door"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    said = " ".join(made.stderr.split())
    assert made.returncode == 5 and f"{data / 'gallery.sqlite3'} belongs to uid 0" in said, said
    assert f"'chown -R 10001 {data}'" in said


def test_any_uid_in_group_0_works_on_group_writable_data(shared_tmp: Path) -> None:
    """The image's /data (uid 10001, group 0, mode 0770) used by an arbitrary uid in group 0,
    as OpenShift runs containers: facelens needs no ownership, only the group's rights."""
    data = shared_tmp / "data"
    data.mkdir()
    os.chown(data, 10001, 0)
    data.chmod(0o770)
    arbitrary = as_user(1000650000, 0)
    made = subprocess.run(
        [*arbitrary, FACELENS, "--data-dir", str(data), "keys", "create", "door"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    assert (data / "gallery.sqlite3").stat().st_uid == 1000650000
    listed = subprocess.run(
        [*arbitrary, FACELENS, "--data-dir", str(data), "keys", "list"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0 and "door" in listed.stdout, listed.stderr


def test_unwritable_annotate_folder_fails_before_work(tmp_path: Path, faces_dir: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run(
        tmp_path / "data",
        "recognize",
        str(faces_dir / "probes" / "obama1.jpg"),
        "--annotate",
        str(blocker / "out"),
        check=False,
    )
    assert result.returncode == 3 and "--annotate" in result.stderr


def test_a_gallery_built_with_a_model_facelens_does_not_know_is_refused(
    tmp_path: Path, people_dir: Path
) -> None:
    run(tmp_path, "people", "list")
    with sqlite3.connect(tmp_path / "gallery.sqlite3") as db:
        db.execute("UPDATE meta SET value = 'some-other-model' WHERE key = 'model_id'")
    result = run(tmp_path, "enroll", str(people_dir), check=False)
    assert result.returncode == 6 and "some-other-model" in result.stderr


def test_asking_a_gallery_for_another_model_is_refused_with_the_way_out(
    tmp_path: Path, people_dir: Path
) -> None:
    run(tmp_path, "--model", "dlib", "enroll", str(people_dir))
    photos = str(people_dir / "obama")  # a folder: recognised are its photos
    for command in (["info"], ["enroll", str(people_dir)], ["recognize", photos]):
        result = run(tmp_path, "--model", "sface", *command, check=False)
        assert result.returncode == 6, command
        assert "built with the dlib model" in result.stderr
        assert "facelens gallery migrate --model sface" in result.stderr
    # Left unset, the gallery's own model is used, with its threshold.
    info = run(tmp_path, "info").stdout
    assert "dlib:" in info and str(PROFILES["dlib"].threshold) in info


def test_version_is_the_packages() -> None:
    shown = subprocess.run([FACELENS, "--version"], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == f"facelens {importlib.metadata.version('facelens')}"


def test_info_shows_the_platform_cores_memory_and_the_settings_in_force(tmp_path: Path) -> None:
    key = "a-secret-key-of-the-server-0123"
    env = {"FACELENS_WORKERS": "3", "FACELENS_SERVER_API_KEYS": key}
    shown = json.loads(run(tmp_path, "info", "--json", env=env).stdout)
    assert shown["version"] == importlib.metadata.version("facelens")
    machine = shown["platform"]
    assert machine["machine"] == platform.machine()
    assert machine["python"].endswith(platform.python_version())
    assert machine["cores"] == os.cpu_count()
    assert 0 < machine["usable_cores"] <= machine["cores"]
    mem_total = next(
        int(line.split()[1]) * 1024
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    assert machine["memory_bytes"] == mem_total
    settings = shown["settings"]
    assert settings["FACELENS_WORKERS"] == {"value": 3, "set": True}
    assert settings["FACELENS_PORT"] == {"value": 5000, "set": False}
    assert settings["FACELENS_DATA_DIR"] == {"value": str(tmp_path), "set": True}
    assert settings["FACELENS_SERVER_API_KEYS"] == {"value": "(set, hidden)", "set": True}
    assert shown["workers"] == 3 and shown["server_memory_mb"] == 100 + 3 * 270
    text = run(tmp_path, "info", env=env)
    assert platform.machine() in text.stdout and "* FACELENS_WORKERS" in text.stdout
    assert key not in text.stdout + text.stderr
    # More workers than the memory holds: said before 'serve' finds out.
    greedy = run(tmp_path, "info", env={"FACELENS_WORKERS": "100000"})
    assert "lower FACELENS_WORKERS" in " ".join(greedy.stderr.split())


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_enrolment_keeps_what_was_committed(
    tmp_path: Path, people_dir: Path, sig: signal.Signals
) -> None:
    folder = tmp_path / "in"
    for n in range(8):  # 88 photos: long enough to interrupt half-way
        for person in people_dir.iterdir():
            for photo in person.iterdir():
                target = folder / person.name / f"{n}-{photo.name}"
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(photo, target)
    data = tmp_path / "data"
    env = {**os.environ, "FACELENS_DATA_DIR": str(data)}
    process = subprocess.Popen(
        [FACELENS, "enroll", str(folder)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # Ctrl-C as at a terminal, however the tests were started: a shell starts background
        # jobs with SIGINT ignored, and a process inherits that (CI run with '&' saw exit 0).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if gallery_rows(data, "SELECT COUNT(*) FROM sources")[0][0] >= 3:
                break
        except sqlite3.Error:
            pass
        time.sleep(0.05)
    if sig == signal.SIGKILL:
        os.killpg(process.pid, sig)  # the workers die with the parent, as with 'kill -9' on a group
    else:
        process.send_signal(sig)
    _, stderr = process.communicate(timeout=120)
    if sig == signal.SIGINT:
        assert process.returncode == 130 and "interrupted" in stderr
    assert gallery_rows(data, "PRAGMA integrity_check") == [("ok",)]
    committed = gallery_rows(data, "SELECT COUNT(*) FROM sources")[0][0]
    assert 3 <= committed < 88
    # Every committed file has its face; no face without its file.
    assert gallery_rows(
        data,
        "SELECT COUNT(*) FROM sources s WHERE s.status = 'enrolled' AND "
        "NOT EXISTS (SELECT 1 FROM faces f WHERE f.source_id = s.id)",
    ) == [(0,)]
    resumed = run_json(data, "enroll", str(folder))
    assert sum(p["unchanged"] for p in resumed["people"]) == committed
    assert sum(p["enrolled"] for p in resumed["people"]) == 88 - committed


def test_brackets_in_names_and_paths_are_printed_literally(
    tmp_path: Path, people_dir: Path
) -> None:
    # rich would read "[bold]" as markup; user text must come out as typed.
    shutil.copytree(people_dir / "biden", tmp_path / "in" / "[bold]Joe")
    bad = tmp_path / "photo[1].jpg"
    bad.write_text("not a photo")
    data = tmp_path / "data"
    run(data, "enroll", str(tmp_path / "in"))
    assert "[bold]Joe" in run(data, "people", "list").stdout
    result = run(data, "recognize", str(bad), check=False)
    assert "photo[1].jpg" in result.stdout


def test_a_renamed_person_keeps_their_folder_on_the_next_enrolment(
    tmp_path: Path, people_dir: Path
) -> None:
    folder = tmp_path / "in"
    shutil.copytree(people_dir / "biden", folder / "biden")
    run(tmp_path / "data", "enroll", str(folder))
    run(tmp_path / "data", "people", "rename", "biden", "Joe Biden")
    again = run_json(tmp_path / "data", "enroll", str(folder))
    assert [(p["name"], p["folder"], p["unchanged"], p["enrolled"]) for p in again["people"]] == [
        ("Joe Biden", "biden", 2, 0)
    ]
    shutil.copy(people_dir / "obama" / "obama.jpg", folder / "biden" / "new.jpg")
    text = run(tmp_path / "data", "enroll", str(folder)).stdout
    assert "was enrolled before as 'Joe Biden'" in text
    assert run_json(tmp_path / "data", "people", "list") == [{"name": "Joe Biden", "faces": 3}]


def test_folders_that_name_one_person_two_ways_are_refused_not_merged(
    tmp_path: Path, people_dir: Path
) -> None:
    folder = tmp_path / "in"
    shutil.copytree(people_dir / "obama", folder / "Zo\u00eb")  # composed (NFC)
    shutil.copytree(people_dir / "biden", folder / "Zoe\u0308")  # decomposed, as macOS writes
    result = run(tmp_path / "data", "enroll", str(folder), check=False)
    assert result.returncode == 3 and "name the same person" in result.stderr
    assert not (tmp_path / "data" / "gallery.sqlite3").exists()


def test_a_folder_spelling_an_existing_person_another_way_is_a_conflict(
    tmp_path: Path, people_dir: Path
) -> None:
    run(tmp_path / "data", "enroll", str(people_dir))  # obama, as a folder name
    other = tmp_path / "in"
    shutil.copytree(people_dir / "obama", other / "OBAMA")
    result = run(tmp_path / "data", "enroll", str(other), check=False)
    assert result.returncode == 8 and "same name as 'obama'" in result.stderr
    assert [p["name"] for p in run_json(tmp_path / "data", "people", "list")].count("obama") == 1


def children_of(pid: int) -> list[int]:
    found = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat_file.parent.name))
    return found


def test_killing_enroll_outright_takes_its_workers_with_it(
    tmp_path: Path, people_dir: Path
) -> None:
    folder = tmp_path / "in"
    for n in range(8):
        for photo in people_dir.glob("*/*"):
            target = folder / photo.parent.name / f"{n}-{photo.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(photo, target)
    data = tmp_path / "data"
    process = subprocess.Popen(
        [FACELENS, "--workers", "2", "enroll", str(folder)],
        env={**os.environ, "FACELENS_DATA_DIR": str(data)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while len(workers) < 2:
        assert time.monotonic() < deadline and process.poll() is None, "no workers seen"
        workers = children_of(process.pid)
        time.sleep(0.02)
    process.kill()  # the parent only, as 'kill -9 PID' does
    process.wait()
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in workers):
        assert time.monotonic() < deadline, f"orphaned workers: {workers}"
        time.sleep(0.05)


def test_a_pipe_or_device_given_as_a_photo_is_refused_without_reading_it(tmp_path: Path) -> None:
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)  # reading it would wait forever
    result = run(tmp_path / "data", "recognize", str(fifo), "/dev/zero", check=False)
    assert result.returncode == 3
    assert result.stdout.count("is not a regular file") == 2


def test_recognize_a_folder_does_its_images_and_notes_what_it_left_out(
    enrolled: Path, faces_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    (folder / "older").mkdir(parents=True)
    for name in ("obama1.jpg", "kit_with_rose.jpg"):
        shutil.copy(faces_dir / "probes" / name, folder / name)
    shutil.copy(faces_dir / "probes" / "obama3.jpg", folder / "older" / "obama3.jpg")
    (folder / "notes.txt").write_text("not a photo")
    (folder / ".hidden.jpg").write_text("what FOLDER/* leaves out too")
    os.mkfifo(folder / "camera.jpg")  # an image by its name; reading it would wait forever
    result = run(enrolled, "recognize", str(folder), "--json", check=False)
    assert result.returncode == 1, result.stderr  # one file of the batch failed (was 3)
    listing = {Path(e["file"]).name: e for e in json.loads(result.stdout)}
    assert list(listing) == ["camera.jpg", "kit_with_rose.jpg", "obama1.jpg"]  # by name
    assert "is not a regular file" in listing["camera.jpg"]["error"]
    assert sorted(f["name"] for f in listing["kit_with_rose.jpg"]["faces"]) == [
        "kit_harington",
        "rose_leslie",
    ]
    assert [f["name"] for f in listing["obama1.jpg"]["faces"]] == ["obama"]
    assert f"{folder}: left out notes.txt, older/ (not images by their names" in result.stderr
    nothing = run(enrolled, "recognize", str(folder), str(tmp_path), check=False)  # no image
    assert nothing.returncode == 3 and f"{tmp_path}: holds no images" in nothing.stderr
    assert nothing.stdout == ""  # refused before any photo was done


def test_a_file_name_cannot_drive_the_terminal(tmp_path: Path) -> None:
    hostile = tmp_path / "\x1b[2J\x1b]0;pwned\x07photo.jpg"  # clear screen, set the title
    hostile.write_bytes(b"not an image")
    result = run(tmp_path / "data", "recognize", str(hostile), check=False)
    assert result.returncode == 4
    printed = result.stdout + result.stderr
    assert "\x1b" not in printed and "\x07" not in printed
    assert "\\x1b[2J" in printed  # shown, not obeyed
