"""``facelens gallery thumbnails``: give faces enrolled before thumbnails were kept one, from
the photo each came from (folder enrolment recorded its path and SHA-256).

The model finds the faces of each photo again; the one that best overlaps the stored box gets
its thumbnail and sharpness. The embedding is not touched. Uploaded faces never had a photo
kept, so they keep none (the web console shows their initials).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from facelens.core.pipeline import Analysis
from facelens.errors import InvalidValue
from facelens.gallery import FaceRecord, StoredGallery
from facelens.jobs.batch import FileResult, analyze_files
from facelens.jobs.enrol import engine_for
from facelens.jobs.model_move import LeftOut, found_again, reason_not_on_disk
from facelens.settings import Settings


@dataclass(slots=True)
class ThumbnailReport:
    made: int = 0
    had: int = 0  # faces that had one already
    left_out: list[LeftOut] = field(default_factory=list)


def backfill_thumbnails(
    gallery: StoredGallery,
    settings: Settings,
    *,
    on_start: Callable[[int], None] | None = None,
    on_file: Callable[[FileResult[Analysis]], None] | None = None,
) -> ThumbnailReport:
    """Make the missing thumbnails that the photos on disk allow; see the module docstring."""
    if not settings.face_thumbnails:
        raise InvalidValue(
            "Face thumbnails are switched off (FACELENS_FACE_THUMBNAILS=false); switch them on "
            "to make them."
        )
    report = ThumbnailReport()
    by_file: dict[Path, list[FaceRecord]] = defaultdict(list)
    for face in gallery.faces():
        if face.has_thumbnail:
            report.had += 1
            continue
        reason = reason_not_on_disk(face)
        if reason is None:
            by_file[Path(str(face.source))].append(face)
        else:
            report.left_out.append(LeftOut(face.id, face.person, face.source, reason))
    if on_start is not None:
        on_start(len(by_file))
    if by_file:
        engine = engine_for(gallery, settings)
        for result in analyze_files(list(by_file), engine.settings, engine, enrolment=True):
            for face in by_file[result.path]:
                why = _thumbnail_for(gallery, face, result)
                if why is None:
                    report.made += 1
                else:
                    report.left_out.append(LeftOut(face.id, face.person, face.source, why))
            if on_file is not None:
                on_file(result)
    report.left_out.sort(key=lambda f: (f.person, f.face_id))
    return report


def _thumbnail_for(
    gallery: StoredGallery, face: FaceRecord, result: FileResult[Analysis]
) -> str | None:
    """Store the thumbnail of ``face`` from its analysed photo; why not, if it cannot be."""
    if result.value is None:
        return f"cannot be analysed: {result.error}"
    if result.sha256 != face.sha256:
        return "the file changed since it was enrolled"
    found = found_again(face, result.value)
    if found is None or found.thumbnail is None:
        return "the face is not found again where it was"
    gallery.set_thumbnail(face.id, found.thumbnail, found.sharpness)
    return None
