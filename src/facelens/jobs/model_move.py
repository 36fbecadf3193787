"""``facelens gallery migrate``: move a gallery to another model by re-embedding its photos.

Embeddings of two models cannot be compared, so a gallery moves as a whole. Faces enrolled
from a folder are re-embedded from their files (path and SHA-256 were recorded): the new
model's face that best overlaps the stored box takes the old face's place and keeps its id.
Photos uploaded over HTTP were never kept: those faces, and those whose file is gone, changed
or no longer shows them, are re-embedded from the small thumbnail kept of each face where there
is one; the others cannot move and are listed, with the people left with no face at all. All
analysis happens first; then a backup of the file is written and the gallery switches model in
one transaction, so an interruption leaves the old gallery as it was.

The backup holds biometric data (every face's embedding and thumbnail as they were, of people
removed later too), so it is kept only where it holds something the migrated gallery lacks: the
faces that could not be moved (or when asked to keep it). When every face moved, the old model's
gallery can be had again by migrating back, and the backup is deleted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from facelens.core.pipeline import Analysis, Engine, Face
from facelens.core.recognition import analyze_bytes
from facelens.errors import FaceLensError
from facelens.gallery import FaceRecord, NewFace, SQLiteGallery
from facelens.jobs.batch import FileResult, analyze_files
from facelens.jobs.enrol import UPLOAD_PREFIX
from facelens.models.base import Box
from facelens.models.profiles import profile_named
from facelens.settings import ModelName, Settings

MIN_OVERLAP = 0.3  # intersection over union of the stored box and the new model's box


@dataclass(frozen=True, slots=True)
class LeftOut:
    """A stored face that could not be re-embedded, and why."""

    face_id: int
    person: str
    source: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "face_id": self.face_id,
            "person": self.person,
            "source": self.source,
            "reason": self.reason,
        }


@dataclass(slots=True)
class MigrationReport:
    gallery: Path
    source_model: str
    target_model: str
    dry_run: bool
    reembedded: int = 0
    left_out: list[LeftOut] = field(default_factory=list)
    retry_on_next_enrol: int = 0  # files the old model skipped (no face, several faces)
    people_without_faces: list[str] = field(default_factory=list)
    backup: Path | None = None

    @property
    def changed(self) -> bool:
        return self.source_model != self.target_model and not self.dry_run

    def as_dict(self) -> dict[str, Any]:
        return {
            "gallery": str(self.gallery),
            "from": self.source_model,
            "to": self.target_model,
            "dry_run": self.dry_run,
            "reembedded": self.reembedded,
            "left_out": [f.as_dict() for f in self.left_out],
            "people_without_faces": self.people_without_faces,
            "retry_on_next_enrol": self.retry_on_next_enrol,
            "backup": None if self.backup is None else str(self.backup),
        }


def overlap(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when they do not touch)."""
    inter = Box(
        max(a.left, b.left), max(a.top, b.top), min(a.right, b.right), min(a.bottom, b.bottom)
    )
    if inter.width <= 0 or inter.height <= 0:
        return 0.0
    union = a.area + b.area - inter.area
    return inter.area / union if union else 0.0


def reason_not_on_disk(face: FaceRecord) -> str | None:
    """Why the photo of ``face`` cannot be read again, None if it can be tried."""
    if face.source is None or face.source.startswith(UPLOAD_PREFIX):
        return "uploaded over HTTP: only its embedding was kept, not the photo"
    if not Path(face.source).is_file():
        return "the file is gone"
    return None


def _from_thumbnail(face: FaceRecord, thumbnail: bytes, engine: Engine) -> NewFace | str:
    """The new model's face in place of ``face``, found again in its thumbnail (which holds
    that face with a margin around it), or why there is none. The box stays the stored one:
    it is where the face was in the original photo."""
    try:
        found = analyze_bytes(engine, thumbnail, f"thumbnail of face {face.id}")
    except FaceLensError as exc:
        return f"its thumbnail cannot be analysed: {exc}"
    if not found.faces:
        return "the new model finds no face in its thumbnail"
    return NewFace(found.largest().embedding, face.box, face.sharpness)


def found_again(face: FaceRecord, analysis: Analysis) -> Face | None:
    """The face of ``analysis`` (of the photo ``face`` came from) where ``face`` was: the one
    that best overlaps its stored box, if it overlaps enough."""
    scored = [(overlap(face.box, f.box), f) for f in analysis.faces]
    best = max(scored, key=lambda pair: pair[0], default=None)
    return None if best is None or best[0] < MIN_OVERLAP else best[1]


def _match(face: FaceRecord, analysis: Analysis, sha256: str | None) -> NewFace | str:
    """The new model's face in place of ``face``, or why there is none."""
    if sha256 != face.sha256:
        return "the file changed since it was enrolled ('facelens enroll' will take it again)"
    found = found_again(face, analysis)
    return "the new model finds no face where this one was" if found is None else NewFace.of(found)


def migrate_gallery(
    gallery: SQLiteGallery,
    settings: Settings,
    target: ModelName,
    *,
    dry_run: bool = False,
    keep_backup: bool = False,
    on_start: Callable[[int], None] | None = None,
    on_file: Callable[[FileResult[Analysis]], None] | None = None,
) -> MigrationReport:
    """Re-embed ``gallery`` with the ``target`` model; see the module docstring."""
    profile = profile_named(target)
    report = MigrationReport(gallery.path, gallery.profile.name, profile.name, dry_run)
    if profile.id == gallery.profile.id:
        return report
    faces = gallery.faces()
    by_file: dict[Path, list[FaceRecord]] = defaultdict(list)
    elsewise: list[tuple[FaceRecord, str]] = []  # not from its file: why, then its thumbnail
    for face in faces:
        reason = reason_not_on_disk(face)
        if reason is None:
            by_file[Path(str(face.source))].append(face)
        else:
            elsewise.append((face, reason))

    kept: dict[int, NewFace] = {}
    if on_start is not None:
        on_start(len(by_file))
    needed = by_file or any(face.has_thumbnail for face, _ in elsewise)
    engine = Engine.load(settings.with_model(profile.name)) if needed else None
    if engine is not None and by_file:
        for result in analyze_files(list(by_file), engine.settings, engine, enrolment=True):
            for face in by_file[result.path]:
                outcome = (
                    _match(face, result.value, result.sha256)
                    if result.value is not None
                    else f"cannot be analysed: {result.error}"
                )
                if isinstance(outcome, NewFace):
                    kept[face.id] = outcome
                else:
                    elsewise.append((face, outcome))
            if on_file is not None:
                on_file(result)
    for face, reason in elsewise:
        if engine is None or not face.has_thumbnail:
            report.left_out.append(LeftOut(face.id, face.person, face.source, reason))
            continue
        outcome = _from_thumbnail(face, gallery.thumbnail(face.id), engine)
        if isinstance(outcome, NewFace):
            kept[face.id] = outcome
        else:
            why = f"{reason}; {outcome}"
            report.left_out.append(LeftOut(face.id, face.person, face.source, why))
    report.reembedded = len(kept)
    report.left_out.sort(key=lambda f: (f.person, f.face_id))
    had_faces = {f.person for f in faces}
    still = {f.person for f in faces if f.id in kept}
    report.people_without_faces = sorted(had_faces - still)
    report.retry_on_next_enrol = sum(1 for s in gallery.sources() if s.status == "skipped")
    if dry_run:
        return report
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report.backup = gallery.path.with_name(
        f"{gallery.path.name}.{gallery.profile.name}-{stamp}.bak"
    )
    gallery.backup(report.backup)
    try:
        gallery.switch_model(profile, kept, [f.id for f in faces])
    except BaseException:
        report.backup.unlink()  # the gallery is as it was: the copy holds nothing more
        raise
    if not (report.left_out or keep_backup):
        report.backup.unlink()
        report.backup = None
    return report
