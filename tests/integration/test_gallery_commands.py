"""``facelens gallery migrate`` and ``facelens gallery threshold`` on real photos, as processes."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from facelens.core.imaging import read_image_file
from facelens.core.pipeline import Engine
from facelens.core.recognition import analyze_file
from facelens.gallery import SQLiteGallery
from facelens.jobs.enrol import enrol_photo
from facelens.models.profiles import PROFILES
from facelens.settings import Settings
from tests.support.helpers import Probe
from tests.support.server import FACELENS

pytestmark = pytest.mark.integration


def facelens(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FACELENS, "--data-dir", str(data), *args], capture_output=True, text=True, timeout=600
    )


def face_rows(data: Path) -> dict[int, tuple[str, str | None, bytes]]:
    with sqlite3.connect(data / "gallery.sqlite3") as db:
        rows = db.execute(
            "SELECT f.id, p.name, s.path, f.embedding FROM faces f JOIN people p "
            "ON p.id = f.person_id LEFT JOIN sources s ON s.id = f.source_id"
        ).fetchall()
    return {int(i): (name, path, blob) for i, name, path, blob in rows}


@pytest.fixture
def dlib_gallery(
    tmp_path: Path, people_dir: Path, faces_dir: Path, lfw_dir: Path
) -> tuple[Path, Path]:
    """A dlib gallery: the shared people enrolled from a folder (thumbnails kept), one more
    person enrolled the way the HTTP API does (no photo kept, a thumbnail kept) and one the way
    it did before thumbnails (nothing but the embedding); then one photo deleted and one changed
    on disk."""
    folder = tmp_path / "people"
    shutil.copytree(people_dir, folder)
    data = tmp_path / "data"
    result = facelens(data, "--model", "dlib", "enroll", str(folder))
    assert result.returncode == 0, result.stderr
    settings = Settings(data_dir=data, model="dlib")
    gallery = SQLiteGallery(settings.gallery_path)
    photo = faces_dir / "probes" / "obama_small.jpg"
    gallery.add_person("uploaded only")
    outcome = enrol_photo(
        gallery,
        "uploaded only",
        "upload.jpg",
        hashlib.sha256(photo.read_bytes()).hexdigest(),
        analyze_file(Engine.load(settings), photo),
        take_largest=False,
        largest_hint="",
    )
    assert outcome.status == "enrolled"
    engine = Engine.load(settings)
    yeltsin = lfw_dir / "extra" / "Boris_Yeltsin" / "Boris_Yeltsin_0001.jpg"
    with_thumbnail = engine.analyze(
        read_image_file(yeltsin, max_pixels=settings.max_pixels), enrolment=True
    )
    assert with_thumbnail.faces[0].thumbnail is not None
    gallery.add_person("uploaded with a thumbnail")
    outcome = enrol_photo(
        gallery,
        "uploaded with a thumbnail",
        "yeltsin.jpg",
        hashlib.sha256(yeltsin.read_bytes()).hexdigest(),
        with_thumbnail,
        take_largest=False,
        largest_hint="",
    )
    assert outcome.status == "enrolled"
    gallery.close()
    (folder / "rose_leslie" / "img2.jpg").unlink()  # gone
    shutil.copyfile(folder / "biden" / "biden.jpg", folder / "obama" / "obama2.jpg")  # changed
    return data, folder


def test_migrate_reembeds_folder_faces_keeps_their_ids_and_reports_the_rest(
    dlib_gallery: tuple[Path, Path], probes: list[Probe], lfw_dir: Path
) -> None:
    data, _ = dlib_gallery
    before = face_rows(data)
    dry = facelens(data, "gallery", "migrate", "--model", "sface", "--dry-run", "--json")
    assert dry.returncode == 1, dry.stderr  # faces would be left out
    assert face_rows(data) == before, "a dry run changes nothing"

    result = facelens(data, "gallery", "migrate", "--model", "sface", "--json")
    assert result.returncode == 1, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    assert (report["from"], report["to"]) == ("dlib", "sface")
    # Faces whose photo cannot be read again come back from their thumbnails; only the face
    # enrolled before thumbnails were kept is left out.
    reasons = {(f["person"], f["reason"].split(":")[0].split(" (")[0]) for f in report["left_out"]}
    assert reasons == {("uploaded only", "uploaded over HTTP")}
    assert report["people_without_faces"] == ["uploaded only"]
    assert report["reembedded"] == len(before) - 1 == 12
    assert report == {**json.loads(dry.stdout), "dry_run": False, "backup": report["backup"]}

    after = face_rows(data)
    assert set(after) <= set(before) and len(after) == 12  # ids kept, one dropped
    for face_id, (name, path, blob) in after.items():
        assert (name, path) == before[face_id][:2]
        assert blob != before[face_id][2]  # a new embedding
    info = facelens(data, "info")
    assert info.returncode == 0 and "sface:" in info.stdout
    listing = json.loads(
        facelens(data, "recognize", "--json", *(str(p.file) for p in probes)).stdout
    )
    for probe, entry in zip(probes, listing, strict=True):
        assert sorted(f["name"] for f in entry["faces"]) == probe.expected, entry["file"]
    # The face re-embedded from its thumbnail still names its person's other photo.
    other = lfw_dir / "extra" / "Boris_Yeltsin" / "Boris_Yeltsin_0002.jpg"
    named = json.loads(facelens(data, "recognize", "--json", str(other)).stdout)
    assert [f["name"] for f in named[0]["faces"]] == ["uploaded with a thumbnail"]

    backup = Path(report["backup"])
    assert backup.parent == data and backup.name.startswith("gallery.sqlite3.dlib-")
    kept = SQLiteGallery(backup)
    assert kept.profile is PROFILES["dlib"] and len(kept.faces()) == len(before)
    kept.close()
    again = facelens(data, "gallery", "migrate", "--model", "sface")
    assert again.returncode == 0 and "already uses the sface model" in again.stdout


def named_faces(data: Path, threshold: float, photos: list[Path]) -> tuple[int, int]:
    """Faces given a name, and faces found, in ``photos`` at ``threshold``."""
    result = facelens(data, "--threshold", str(threshold), "recognize", "--json", *map(str, photos))
    faces = [face for entry in json.loads(result.stdout) for face in entry["faces"]]
    return sum(face["name"] != "unknown" for face in faces), len(faces)


def advice(data: Path, target: float) -> dict[str, Any]:
    result = facelens(data, "gallery", "threshold", "--strangers", str(target), "--json")
    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def test_threshold_advice_for_lfw_holds_on_strangers_never_enrolled(
    tmp_path: Path, lfw_dir: Path
) -> None:
    """lfw-dev's 100 people enrolled; its 12 stranger probes and the 80 photos of its 40
    'extra' people (none enrolled) are the strangers the advice must keep out."""
    from scipy.stats import binom

    data = tmp_path / "data"
    result = facelens(data, "--model", "sface", "enroll", "--largest", str(lfw_dir / "gallery"))
    assert result.returncode == 0, result.stderr
    with (lfw_dir / "probes.csv").open() as handle:
        strangers = [
            lfw_dir / "probes" / r["file"]
            for r in csv.DictReader(handle)
            if r["expected"] == "unknown"
        ]
    strangers += sorted((lfw_dir / "extra").glob("*/*.jpg"))
    proposal = advice(data, 0.01)
    assert (proposal["model"], proposal["people"]) == ("sface", 100)
    assert proposal["sure_threshold"] is None and proposal["people_needed_to_be_sure"] == 299
    assert proposal["advice"] in ("keep", "stricter")
    assert proposal["proposed_threshold"] <= proposal["model_threshold"] == 0.58
    for target in (0.01, 0.05, 0.1):
        proposal = advice(data, target)
        named, faces = named_faces(data, proposal["proposed_threshold"], strangers)
        assert faces >= 92
        # What was seen must not refute the target: at most a 5% chance of seeing as many
        # named if the true chance were the target.
        assert binom.sf(named - 1, faces, target) >= 0.05, (target, proposal, named, faces)


def test_a_home_gallery_of_six_people_is_told_to_keep_the_default(
    tmp_path: Path, people_dir: Path, lfw_dir: Path
) -> None:
    """The shared 6 people "estimated" 0% of strangers named at 0.72 and were told to use it;
    at 0.72, 10% of lfw-dev's faces (none of them enrolled) got a name."""
    data = tmp_path / "data"
    assert facelens(data, "--model", "sface", "enroll", str(people_dir)).returncode == 0
    proposal = advice(data, 0.01)
    assert (proposal["advice"], proposal["proposed_threshold"]) == ("keep", 0.58)
    named, faces = named_faces(data, proposal["proposed_threshold"], sorted(lfw_dir.rglob("*.jpg")))
    assert faces > 500 and named <= 0.02 * faces, (named, faces)
    shown = facelens(data, "gallery", "threshold", "--strangers", "0.01").stdout
    assert "Keep the sface model's threshold 0.58" in shown and "299 people" in shown
    assert "FACELENS_THRESHOLD" not in shown  # nothing to set


def test_backup_check_and_a_damaged_gallery_refused_everywhere(
    tmp_path: Path, people_dir: Path
) -> None:
    data = tmp_path / "data"
    folder = tmp_path / "people"
    for n in range(12):  # enough pages that damage lands in the faces, not the schema
        for photo in (people_dir / "obama").iterdir():
            target = folder / "obama" / f"{n}-{photo.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(photo, target)
    assert facelens(data, "enroll", str(folder)).returncode == 0
    backup = tmp_path / "backups" / "gallery.sqlite3"
    result = facelens(data, "gallery", "backup", str(backup))
    assert result.returncode == 0, result.stderr
    assert facelens(data, "gallery", "backup", str(backup)).returncode == 3  # never overwritten
    check = facelens(data, "gallery", "check")
    assert check.returncode == 0 and "sound" in check.stdout

    gallery = data / "gallery.sqlite3"
    with sqlite3.connect(gallery) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = bytearray(gallery.read_bytes())
    raw[-4096:] = b"\xa5" * 4096
    gallery.write_bytes(bytes(raw))
    listing = facelens(data, "people", "list")  # exit 12: damaged (5 is a storage failure)
    assert listing.returncode == 12 and "gallery backup" in listing.stderr
    check = facelens(data, "gallery", "check")
    assert check.returncode == 12 and "damaged" in check.stdout
    serve = facelens(data, "serve", "--port", "0")
    assert serve.returncode == 12 and "damaged" in serve.stderr

    shutil.copyfile(backup, gallery)  # restoring is copying the backup back, server stopped
    for leftover in (data / "gallery.sqlite3-wal", data / "gallery.sqlite3-shm"):
        leftover.unlink(missing_ok=True)
    assert json.loads(facelens(data, "people", "list", "--json").stdout) == [
        {"name": "obama", "faces": 24}
    ]


def test_thumbnails_are_made_for_faces_enrolled_without_them(
    tmp_path: Path, people_dir: Path, faces_dir: Path
) -> None:
    data = tmp_path / "data"
    off = {**os.environ, "FACELENS_FACE_THUMBNAILS": "false"}
    enrolled = subprocess.run(
        [FACELENS, "--data-dir", str(data), "enroll", str(people_dir)],
        capture_output=True,
        text=True,
        env=off,
        timeout=600,
    )
    assert enrolled.returncode == 0, enrolled.stderr
    refused = subprocess.run(
        [FACELENS, "--data-dir", str(data), "gallery", "thumbnails"],
        capture_output=True,
        text=True,
        env=off,
        timeout=600,
    )
    assert refused.returncode != 0 and "switched off" in refused.stderr
    settings = Settings(data_dir=data)
    gallery = SQLiteGallery(settings.gallery_path)
    photo = faces_dir / "probes" / "obama_small.jpg"
    gallery.add_person("uploaded")
    enrol_photo(
        gallery,
        "uploaded",
        "u.jpg",
        hashlib.sha256(photo.read_bytes()).hexdigest(),
        analyze_file(Engine.load(settings.with_model(gallery.profile.name)), photo),
        take_largest=False,
        largest_hint="",
    )
    assert not any(f.has_thumbnail for f in gallery.faces())
    gallery.close()

    made = facelens(data, "gallery", "thumbnails", "--json")
    assert made.returncode == 1, made.stderr  # the uploaded face cannot get one
    report = json.loads(made.stdout)
    assert (report["made"], report["had"]) == (11, 0)
    assert [(f["person"], f["reason"].split(":")[0]) for f in report["left_out"]] == [
        ("uploaded", "uploaded over HTTP")
    ]
    gallery = SQLiteGallery(settings.gallery_path)
    faces = gallery.faces()
    for face in faces:
        if face.person != "uploaded":
            assert face.has_thumbnail and face.sharpness is not None
            assert gallery.thumbnail(face.id).startswith(b"\xff\xd8")  # a JPEG
    gallery.close()
    again = json.loads(facelens(data, "gallery", "thumbnails", "--json").stdout)
    assert (again["made"], again["had"]) == (0, 11)
