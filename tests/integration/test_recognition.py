"""The engine on real photos, with every model profile: every probe named as probes.csv says,
verification, landmarks and alignment, the optional detectors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facelens.core.imaging import decode_image
from facelens.core.matching import GalleryIndex
from facelens.core.pipeline import Analysis, Engine, match_faces
from facelens.core.recognition import analyze_bytes, analyze_file, recognize_bytes
from facelens.gallery import SQLiteGallery
from facelens.jobs.enrol import enrol_folder, plan_enrolment
from facelens.models.base import Box
from facelens.models.profiles import PROFILES
from facelens.settings import Settings
from tests.support.helpers import Probe

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
    report = enrol_folder(plan_enrolment(people_dir), gallery, engine.settings, engine=engine)
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
        faces = match_faces(analyze_file(engine, probe.file).faces, index, engine.scoring)
        names = sorted(f.match.name for f in faces)
        if names != probe.expected:
            wrong[probe.file.name] = (names, probe.expected)
    assert not wrong, f"wrong names (got, expected): {wrong}"
    assert len(probes) == 15


def test_group_photo_names_each_person_once_with_boxes_inside_the_image(
    engine: Engine, index: GalleryIndex, faces_dir: Path
) -> None:
    analysis = analyze_file(engine, faces_dir / "probes" / "obama_and_biden.jpg")
    faces = match_faces(analysis.faces, index, engine.scoring)
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


def _whole_and_reduced(engine: Engine, data: bytes) -> tuple[Analysis, Analysis]:
    """``data`` analysed decoded whole (as before reduced decoding) and as the server does."""
    whole = engine.analyze(decode_image(data, source="whole", max_pixels=10**8))
    return whole, analyze_bytes(engine, data, "reduced")


def _near(a: Box, b: Box, tolerance: float) -> bool:
    edges = zip((a.left, a.top, a.right, a.bottom), (b.left, b.top, b.right, b.bottom), strict=True)
    return all(abs(x - y) <= tolerance * a.width for x, y in edges)


def test_a_12_mp_photo_decoded_reduced_gives_the_same_faces_and_names(
    engine: Engine, index: GalleryIndex, faces_dir: Path, tmp_path: Path
) -> None:
    photo = tmp_path / "obama-12mp.jpg"
    with Image.open(faces_dir / "probes" / "obama-1080p.jpg") as hd:
        hd.resize((4618, 2598), Image.Resampling.LANCZOS).save(photo, quality=90)
    data = photo.read_bytes()
    decoded = decode_image(data, source="x", max_pixels=10**8, reduce_to=engine.decode_side)
    assert decoded.reduction is not None and decoded.pixels.shape[1] < 4618 // 2 + 1
    whole, reduced = _whole_and_reduced(engine, data)
    assert "decode_full" not in reduced.timings_ms  # the face was cut from the reduced pixels
    assert (reduced.width, reduced.height) == (whole.width, whole.height) == (4618, 2598)
    named = [match_faces(a.faces, index, engine.scoring) for a in (whole, reduced)]
    assert [f.match.name for f in named[0]] == [f.match.name for f in named[1]] == ["obama"]
    assert _near(whole.faces[0].box, reduced.faces[0].box, 0.03)
    assert np.abs(whole.faces[0].landmarks - reduced.faces[0].landmarks).max() < 0.03 * 600
    distances = [faces[0].match.distance for faces in named]
    assert distances[0] is not None and distances[1] is not None
    assert abs(distances[0] - distances[1]) < 0.1 * engine.scoring.threshold
    drawn = recognize_bytes(engine, data, "drawn", index, annotate="jpeg")  # decoded whole
    assert drawn.annotated is not None and [f.match.name for f in drawn.faces] == ["obama"]
    with Image.open(io.BytesIO(drawn.annotated)) as annotated:
        assert annotated.size == (4618, 2598)


def test_a_face_too_small_in_the_reduced_pixels_is_cut_from_the_full_image(
    engine: Engine, index: GalleryIndex, faces_dir: Path, tmp_path: Path
) -> None:
    # obama1.jpg's face (box 363 px wide) made 1.6 chips wide, on a canvas decoded at 1/2:
    # 0.8 chips in the reduced pixels, too few to cut the chip from without enlarging it.
    chip = engine.aligner.chip_size
    scale = 1.6 * chip / 363
    canvas = Image.new("RGB", (2 * engine.decode_side + 200, engine.decode_side), (128, 128, 128))
    with Image.open(faces_dir / "probes" / "obama1.jpg") as source:
        small = source.resize((round(source.width * scale), round(source.height * scale)))
    canvas.paste(small, (900, 300))
    photo = tmp_path / "small-face.jpg"
    canvas.save(photo, quality=95)
    whole, reduced = _whole_and_reduced(engine, photo.read_bytes())
    assert "decode_full" in reduced.timings_ms
    named = [match_faces(a.faces, index, engine.scoring) for a in (whole, reduced)]
    assert [f.match.name for f in named[0]] == [f.match.name for f in named[1]] == ["obama"]
    box = reduced.faces[0].box  # in the canvas's pixels, inside the pasted photo
    assert 900 < box.left < box.right < 900 + small.width
    assert 300 < box.top < box.bottom < 300 + small.height
    assert _near(whole.faces[0].box, box, 0.05)


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
