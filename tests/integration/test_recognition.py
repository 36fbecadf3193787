"""The engine on real photos, with every model profile: every probe named as probes.csv says,
verification, landmarks and alignment, the optional detectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facelens.enroll import enroll_folder, plan_enrolment
from facelens.gallery import SQLiteGallery
from facelens.matching import GalleryIndex
from facelens.models.profiles import PROFILES
from facelens.pipeline import Engine, match_faces
from facelens.recognition import analyze_file
from facelens.settings import Settings
from tests.helpers import Probe

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=sorted(PROFILES))
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    settings = Settings(data_dir=tmp_path_factory.mktemp("engine"), model=request.param)
    return Engine.load(settings)


@pytest.fixture(scope="module")
def index(
    engine: Engine, people_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> GalleryIndex:
    path = tmp_path_factory.mktemp("gallery") / "gallery.sqlite3"
    gallery = SQLiteGallery(path, engine.profile.name)
    report = enroll_folder(plan_enrolment(people_dir), gallery, engine.settings, engine=engine)
    assert report.skipped_count == 0, report
    return gallery.index()


def test_enrolment_stores_one_face_per_photo(index: GalleryIndex, people_dir: Path) -> None:
    photos = [p for p in people_dir.glob("*/*") if p.is_file()]
    assert len(index) == len(photos)
    assert sorted(index.names) == sorted(p.name for p in people_dir.iterdir())


def test_every_probe_is_recognised_with_exactly_the_expected_names(
    engine: Engine, index: GalleryIndex, probes: list[Probe]
) -> None:
    wrong = {}
    for probe in probes:
        faces = match_faces(analyze_file(engine, probe.file), index, engine.scoring)
        names = sorted(f.match.name for f in faces)
        if names != probe.expected:
            wrong[probe.file.name] = (names, probe.expected)
    assert not wrong, f"wrong names (got, expected): {wrong}"
    assert len(probes) == 15


def test_group_photo_names_each_person_once_with_boxes_inside_the_image(
    engine: Engine, index: GalleryIndex, faces_dir: Path
) -> None:
    analysis = analyze_file(engine, faces_dir / "probes" / "obama_and_biden.jpg")
    faces = match_faces(analysis, index, engine.scoring)
    for face in faces:
        assert 0 <= face.box.left < face.box.right <= analysis.width
        assert 0 <= face.box.top < face.box.bottom <= analysis.height
    known = [f for f in faces if f.match.name != "unknown"]
    assert len({f.match.name for f in known}) == len(known) == 2
    for face in known:
        assert face.match.distance is not None
        assert face.match.distance < engine.scoring.threshold
        assert face.match.confidence > 0.5 and face.match.margin is not None


def test_large_photo_boxes_are_in_original_pixels(engine: Engine, faces_dir: Path) -> None:
    # 1434x2333 is detected on a small copy; the box and landmarks must come back at full scale.
    analysis = analyze_file(engine, faces_dir / "probes" / "obama3.jpg")
    (face,) = analysis.faces
    assert face.box.width > 200
    inside = (face.landmarks[:, 0] > face.box.left) & (face.landmarks[:, 0] < face.box.right)
    assert inside.all()


def test_verify_same_person_true_and_different_people_false(
    engine: Engine, faces_dir: Path
) -> None:
    people = faces_dir / "people"
    threshold = engine.profile.threshold
    obama_a = analyze_file(engine, people / "obama" / "obama.jpg")
    obama_b = analyze_file(engine, faces_dir / "probes" / "obama1.jpg")
    biden = analyze_file(engine, people / "biden" / "biden.jpg")
    same = engine.verify(obama_a, obama_b)
    assert same.same_person and same.distance < threshold and same.threshold == threshold
    different = engine.verify(obama_a, biden)
    assert not different.same_person and different.distance > threshold


def test_verify_uses_the_largest_face_and_says_so(engine: Engine, faces_dir: Path) -> None:
    group = analyze_file(engine, faces_dir / "probes" / "two_people.jpg")
    biden = analyze_file(engine, faces_dir / "people" / "biden" / "biden.jpg")
    result = engine.verify(group, biden)  # biden's is the larger face in two_people.jpg
    assert result.same_person
    assert result.as_dict()["notes"] == ["image 1 has 2 faces; the largest was used"]


def test_embeddings_have_the_profile_size_and_sface_ones_unit_length(
    engine: Engine, faces_dir: Path
) -> None:
    (face,) = analyze_file(engine, faces_dir / "probes" / "obama-240p.jpg").faces
    assert face.embedding.shape == (engine.profile.dim,)
    if engine.profile.metric == "cosine":
        assert np.linalg.norm(face.embedding) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("detector", ["haar", "cnn"])
def test_dlib_optional_detectors_find_the_face(
    detector: str, faces_dir: Path, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path, model="dlib", detector=detector)  # type: ignore[arg-type]
    engine = Engine.load(settings)
    analysis = analyze_file(engine, faces_dir / "probes" / "obama-240p.jpg")
    assert len(analysis.faces) == 1
    assert analysis.faces[0].embedding.shape == (engine.profile.dim,)
