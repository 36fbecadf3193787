"""Enrolment from folders: ``root/<person name>/<photos>``, the folder name is the person.

Every input path is checked before any model is loaded; unchanged files (same content hash at
the same path) are not redone; each file's outcome is committed on its own, so an interrupted
run keeps everything finished before the interruption.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from facelens.core.imaging import IMAGE_SUFFIXES
from facelens.core.pipeline import Analysis, Engine, Face
from facelens.errors import InputPathError, InvalidValue, ModelError, NotFound
from facelens.gallery import Gallery, NewFace, SourceRecord
from facelens.gallery.base import name_keys, normalize_name
from facelens.jobs.batch import FileResult, analyze_files
from facelens.models.base import Box
from facelens.settings import Settings

UPLOAD_PREFIX = "upload:"  # how a photo enrolled over HTTP (never kept) is named as a source


@dataclass(frozen=True, slots=True)
class PlannedFile:
    person: str
    path: Path


@dataclass(frozen=True, slots=True)
class Skipped:
    path: Path
    reason: str


@dataclass(frozen=True, slots=True)
class EnrolmentPlan:
    """What a folder holds: the photos to consider per person, and what was passed over."""

    root: Path
    people: tuple[str, ...]
    files: tuple[PlannedFile, ...]
    ignored: tuple[Skipped, ...]


@dataclass(slots=True)
class PersonReport:
    folder: str | None = None  # the folder enrolled into this person, when its name differs
    enrolled: int = 0
    faces: int = 0
    unchanged: int = 0
    pruned: int = 0
    skipped: list[Skipped] = field(default_factory=list)


@dataclass(slots=True)
class EnrolmentReport:
    root: Path
    people: dict[str, PersonReport] = field(default_factory=dict)
    ignored: list[Skipped] = field(default_factory=list)

    def person(self, name: str) -> PersonReport:
        return self.people.setdefault(name, PersonReport())

    @property
    def skipped_count(self) -> int:
        return sum(len(p.skipped) for p in self.people.values())


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def plan_enrolment(root: Path) -> EnrolmentPlan:
    """Check ``root`` and list its photos per person, before any long work starts."""
    if not root.exists():
        raise InputPathError(
            f"{root}: no such folder. Give a folder holding one folder per person."
        )
    if not root.is_dir():
        raise InputPathError(f"{root}: is a file. Give a folder holding one folder per person.")
    try:
        entries = sorted(filter(_visible, root.iterdir()))
    except OSError as exc:
        raise InputPathError(f"{root}: cannot be read ({exc.strerror or exc}).") from None
    people, files, ignored = [], [], []
    folders: dict[str, Path] = {}  # each of a name's keys (name_keys) → the folder that took it
    for entry in entries:
        if not entry.is_dir():
            ignored.append(Skipped(entry, "not inside a person's folder"))
            continue
        try:
            name = normalize_name(entry.name)
        except InvalidValue as exc:
            ignored.append(Skipped(entry, f"folder name is not a usable person name: {exc}"))
            continue
        keys = name_keys(name)
        twin = next((folders[key] for key in keys if key in folders), None)
        if twin is not None:
            raise InputPathError(
                f"{root}: the folders {twin.name!r} and {entry.name!r} name the same person "
                "(they differ only in case, spacing, width, Unicode form, as folders copied "
                "from macOS can, characters that show nothing, such as joiners, or letters of "
                "another alphabet shaped like Latin ones); merge them or rename one. Nothing "
                "was enrolled."
            )
        folders.update(dict.fromkeys(keys, entry))
        people.append(name)
        for path in sorted(filter(_visible, entry.iterdir())):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                files.append(PlannedFile(name, path.resolve()))
            else:
                ignored.append(Skipped(path, "not an image file (by its name)"))
    if not people:
        raise InputPathError(
            f"{root}: holds no person folders. Lay photos out as {root}/<person name>/<photo>.jpg."
        )
    if not files:
        raise InputPathError(
            f"{root}: the person folders hold no photos (JPEG, PNG, WebP, BMP, GIF or TIFF)."
        )
    return EnrolmentPlan(root.resolve(), tuple(people), tuple(files), tuple(ignored))


NO_FACE = "no face found"


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None  # reported when the file is analysed


def _faces_to_store(
    faces: tuple[Face, ...], take_largest: bool, largest_hint: str = "use --largest"
) -> tuple[list[Face], str | None]:
    if not faces:
        return [], NO_FACE
    if len(faces) > 1 and not take_largest:
        return [], f"{len(faces)} faces found; {largest_hint} to enrol the largest one"
    return [max(faces, key=lambda f: f.box.area)], None


@dataclass(frozen=True, slots=True)
class PhotoOutcome:
    """What enrolling one uploaded photo did."""

    status: Literal["enrolled", "already_enrolled", "skipped"]
    face_ids: list[int]
    box: Box | None
    reason: str | None


def enrolled_before(gallery: Gallery, person: str, sha256: str) -> PhotoOutcome | None:
    """The outcome to report if this exact photo is already enrolled for ``person``."""
    same = [f for f in gallery.faces(person) if f.sha256 == sha256]
    if not same:
        return None
    return PhotoOutcome("already_enrolled", [f.id for f in same], same[0].box, None)


# Who an upload may create: nobody (the person must exist), the person if missing (DeepStack's
# register), or a new person only (one who exists is a conflict). Whoever is created is
# created with the photo's face, in one transaction: never empty.
Create = Literal["never", "if_missing", "new"]


def enrol_photo(
    gallery: Gallery,
    person: str,
    label: str,
    sha256: str,
    analysis: Analysis,
    *,
    take_largest: bool,
    largest_hint: str,
    create: Create = "never",
) -> PhotoOutcome:
    """Store the face of one analysed photo for ``person``; never the same twice.

    The embedding, box and a small thumbnail are kept, never the photo; skipped photos leave
    no record. ``create`` says whether the person may be created with the face; with
    ``never``, :class:`NotFound` if they do not exist.
    """
    previous = None
    if create != "new":
        try:
            previous = enrolled_before(gallery, person, sha256)  # also: does the person exist
        except NotFound:
            if create == "never":
                raise
    if previous is not None:
        return previous
    faces, reason = _faces_to_store(analysis.faces, take_largest, largest_hint)
    if not faces:
        return PhotoOutcome("skipped", [], None, reason)
    ids = gallery.record_source(
        person,
        sha256,
        f"{UPLOAD_PREFIX}{label}#{sha256[:12]}",
        [NewFace.of(f) for f in faces],
        None,
        new_person=create == "new",
    )
    return PhotoOutcome("enrolled", ids, faces[0].box, None)


def engine_for(gallery: Gallery, settings: Settings, engine: Engine | None = None) -> Engine:
    """An engine of the gallery's model: ``engine`` checked, or one loaded."""
    if engine is None:
        return Engine.load(settings.with_model(gallery.profile.name))
    if engine.model_id != gallery.profile.id:
        raise ModelError(
            f"The gallery holds {gallery.profile.name} embeddings; the engine runs "
            f"{engine.profile.name}. Load the gallery's model to enrol into it."
        )
    return engine


def renamed_folders(holders: Mapping[str, set[str]]) -> dict[str, str]:
    """Folders whose photos the gallery holds under one other name only (the person was
    renamed, or merged into another, after an earlier enrolment): folder name → that person,
    who the folder's photos go to. ``holders``: per folder, who holds any of its photos."""
    return {
        folder: next(iter(names))
        for folder, names in holders.items()
        if len(names) == 1 and folder not in names
    }


def _renamed_folders(plan: EnrolmentPlan, sources: list[SourceRecord]) -> dict[str, str]:
    """:func:`renamed_folders`, by the paths the gallery recorded at earlier enrolments."""
    holders: dict[str, set[str]] = {}
    by_path = {s.path: s.person for s in sources}
    for planned in plan.files:
        holder = by_path.get(str(planned.path))
        if holder is not None:
            holders.setdefault(planned.person, set()).add(holder)
    return renamed_folders(holders)


def enrol_folder(
    plan: EnrolmentPlan,
    gallery: Gallery,
    settings: Settings,
    *,
    take_largest: bool = False,
    prune: bool = False,
    engine: Engine | None = None,
    on_start: Callable[[int], None] | None = None,
    on_file: Callable[[FileResult[Analysis]], None] | None = None,
) -> EnrolmentReport:
    """Enrol new or changed photos of ``plan`` into ``gallery``; report per person."""
    engine = engine_for(gallery, settings, engine)
    report = EnrolmentReport(plan.root, ignored=list(plan.ignored))
    sources = gallery.sources()
    renamed = _renamed_folders(plan, sources)
    for name in plan.people:
        person = renamed.get(name, name)
        report.person(person).folder = name if person != name else None
        gallery.ensure_person(person)
    known = {(s.person, s.path): s for s in sources}
    person_of: dict[Path, str] = {}
    todo: list[Path] = []
    for planned in plan.files:
        person = renamed.get(planned.person, planned.person)
        previous = known.get((person, str(planned.path)))
        if previous is not None and previous.sha256 == _sha256(planned.path):
            person_report = report.person(person)
            person_report.unchanged += 1
            if previous.status == "skipped":
                person_report.skipped.append(
                    Skipped(planned.path, f"unchanged; skipped before: {previous.reason}")
                )
            continue
        person_of[planned.path] = person
        todo.append(planned.path)

    if on_start is not None:
        on_start(len(todo))
    for result in analyze_files(todo, settings, engine, enrolment=True):
        person = person_of[result.path]
        person_report = report.person(person)
        reason: str | None
        if result.value is None:
            reason = str(result.error)
            faces: list[Face] = []
        else:
            faces, reason = _faces_to_store(result.value.faces, take_largest)
        if result.sha256 is not None:
            gallery.record_source(
                person,
                result.sha256,
                str(result.path),
                [NewFace.of(f) for f in faces],
                reason,
            )
        if faces:
            person_report.enrolled += 1
            person_report.faces += len(faces)
        else:
            person_report.skipped.append(Skipped(result.path, reason or "not enrolled"))
        if on_file is not None:
            on_file(result)

    if prune:
        for source in gallery.sources():
            path = Path(source.path)
            if path.is_relative_to(plan.root) and not path.exists():
                gallery.remove_sources(source.person, [source.path])
                report.person(source.person).pruned += 1
    return report
