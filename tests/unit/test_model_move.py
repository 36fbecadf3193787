"""How a migration pairs a stored face with the new model's face (by box overlap), and what
it keeps of the old gallery."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facelens.gallery import NewFace, SQLiteGallery
from facelens.jobs.enrol import UPLOAD_PREFIX
from facelens.jobs.model_move import migrate_gallery, overlap
from facelens.models.base import Box
from facelens.settings import Settings


def test_box_overlap_is_intersection_over_union() -> None:
    assert overlap(Box(0, 0, 10, 10), Box(0, 0, 10, 10)) == 1.0
    assert overlap(Box(0, 0, 10, 10), Box(5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert overlap(Box(0, 0, 10, 10), Box(10, 10, 20, 20)) == 0.0


def _gallery_with(tmp_path: Path, *, left_out: bool) -> SQLiteGallery:
    """A dlib gallery with a person and, if ``left_out``, one face that cannot move: uploaded
    over HTTP with no thumbnail kept (no model is needed to find that out)."""
    gallery = SQLiteGallery(tmp_path / "gallery.sqlite3", "dlib")
    gallery.add_person("someone")
    if left_out:
        vector = np.random.default_rng(1).normal(size=128).astype(np.float32)
        vector /= np.linalg.norm(vector) * 2  # dlib's vectors are about 0.5 long
        face = NewFace(vector, Box(1, 2, 30, 40))
        gallery.record_source("uploaded", "h", f"{UPLOAD_PREFIX}a.jpg", [face], None)
    return gallery


def test_the_old_gallery_is_kept_only_while_it_holds_faces_the_new_one_lacks(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path)
    gallery = _gallery_with(tmp_path, left_out=True)
    report = migrate_gallery(gallery, settings, "sface")
    assert [f.person for f in report.left_out] == ["uploaded"]
    assert report.backup is not None and report.backup.is_file()
    assert report.backup.stat().st_mode & 0o777 == 0o600  # biometric data: the owner's only
    assert len(SQLiteGallery(report.backup).faces()) == 1  # the only copy of that face
    gallery.close()


def test_the_old_gallery_is_deleted_when_every_face_moved(tmp_path: Path) -> None:
    gallery = _gallery_with(tmp_path, left_out=False)
    report = migrate_gallery(gallery, Settings(data_dir=tmp_path), "sface")
    assert report.changed and not report.left_out and report.backup is None
    assert gallery.profile.name == "sface"
    assert not list(tmp_path.glob("*.bak"))
    gallery.close()
    kept = _gallery_with(tmp_path / "kept", left_out=False)
    report = migrate_gallery(kept, Settings(data_dir=tmp_path / "kept"), "sface", keep_backup=True)
    assert report.backup is not None and report.backup.is_file()
    kept.close()
