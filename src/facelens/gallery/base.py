"""The Gallery interface: people, their stored face embeddings, and where each came from.

``SQLiteGallery`` is the embedded default; enrolment depends only on the Protocol.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from facelens.core.matching import UNKNOWN
from facelens.errors import InvalidValue
from facelens.gallery.homoglyphs import latin_skeleton, mixed_script_word
from facelens.models.base import Box, Embeddings
from facelens.models.profiles import ModelProfile

if TYPE_CHECKING:
    from facelens.core.pipeline import Face

MAX_NAME_LENGTH = 200


# Format characters that belong inside names: zero-width non-joiner and joiner (Persian, Indic
# scripts, emoji sequences). Other format characters (bidi overrides) can disguise a name.
_JOINERS = frozenset("\u200c\u200d")
# Characters that show nothing besides the format characters (category Cf): Unicode's other
# default-ignorable code points (grapheme joiner, Hangul fillers, Khmer inherent vowels,
# Mongolian and other variation selectors).
_INVISIBLE = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f\u3164\uffa0"
    + "".join(map(chr, range(0xFE00, 0xFE10)))
    + "".join(map(chr, range(0xE0100, 0xE01F0)))
)


def _shows_nothing(c: str) -> bool:
    return c in _INVISIBLE or unicodedata.category(c) == "Cf"


def normalize_name(name: str) -> str:
    """A person's name as stored: NFC, trimmed. Refuses empty names (or names of invisible
    characters only), control characters, '/' (names are path segments of the HTTP API) and
    'unknown' in any case, width or form (the name of nobody). A name given to someone is
    checked further (:func:`check_new_name`); this is also how a stored name is looked up."""
    cleaned = unicodedata.normalize("NFC", name).strip()
    if not cleaned:
        raise InvalidValue("A person's name cannot be empty.")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise InvalidValue(f"A person's name can have at most {MAX_NAME_LENGTH} characters.")
    if any(
        unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") and c not in _JOINERS for c in cleaned
    ):
        raise InvalidValue(f"The name {cleaned!r} contains control characters; use plain text.")
    if "/" in cleaned:
        raise InvalidValue(
            f"The name {cleaned!r} contains '/', which cannot be part of a name (it separates "
            "the parts of an API address); use another character."
        )
    key = name_key(cleaned)
    if not key:
        raise InvalidValue(f"The name {cleaned!r} shows nothing; choose a visible name.")
    if key == name_key(UNKNOWN):
        raise InvalidValue(
            f"{cleaned!r} is what facelens calls a face nobody matches; choose a name."
        )
    return cleaned


def name_key(name: str) -> str:
    """One name in any spelling of the same letters: compatibility forms are unified (NFKC:
    full width), case is folded (also 'ß' as 'ss'), characters that show nothing are dropped
    (joiners, variation selectors) and runs of spaces are one. So 'Obama', 'obama',
    'oba<ZWJ>ma' and the same letters in full width have one key. See :func:`name_keys`."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    shown = unicodedata.normalize("NFC", "".join(c for c in folded if not _shows_nothing(c)))
    return " ".join(shown.split())


@functools.lru_cache(maxsize=8192)
def name_keys(name: str) -> frozenset[str]:
    """What makes two names one person (a second spelling is refused, never merged): two names
    sharing a key look alike. Besides :func:`name_key`, the keys of the name's Latin skeleton
    (letters of Cyrillic, Greek, Armenian or Cherokee that look like Latin ones read as those,
    see ``homoglyphs``) as written, in capitals and in small letters: case never tells people
    apart, so OBAMA in Greek capitals is 'OBAMA' is 'obama', and 'obama' with a Cyrillic
    small o is 'obama' too. A name wholly in another script keeps its own keys ('Владимир')."""
    skeletons = (latin_skeleton(shown) for shown in (name, name.upper(), name.lower()))
    return frozenset({name_key(name), *map(name_key, skeletons)})


def looks_alike(name: str, other: str) -> bool:
    """Whether two names are one person's (see :func:`name_keys`)."""
    return not name_keys(name).isdisjoint(name_keys(other))


def check_new_name(name: str) -> None:
    """Refuse, for a name a person is given (created, or renamed to), what a lookup still
    finds in names stored before the rule: a look-alike of 'unknown' (with a Cyrillic o, say),
    and a word mixing Latin, Cyrillic, Greek, Armenian or Cherokee letters
    (UTS #39's mixed-script restriction; 'Иван Smith' is two words and fine). ``name`` is
    normalized (:func:`normalize_name`). Check for look-alikes of stored people first: that
    message names who the name looks like."""
    if looks_alike(name, UNKNOWN):
        raise InvalidValue(
            f"{name!r} looks like {UNKNOWN!r}, what facelens calls a face nobody matches; "
            "choose a name."
        )
    mixed = mixed_script_word(name)
    if mixed is not None:
        word, scripts = mixed
        raise InvalidValue(
            f"The name {name!r} mixes {' and '.join(scripts)} letters in one word ({word!r}), "
            "as names made to look like another do; write each word in one alphabet."
        )


def spelling_key(name: str) -> str:
    """What a lookup by name ignores (clients that lower-case names, or send NFD or full
    width): only case, width and Unicode form. Narrower than :func:`name_key`, so a lookup
    never takes a look-alike ('Strauß' for 'Strauss', a name with a joiner) for someone else."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).lower())


@dataclass(frozen=True, slots=True)
class PersonSummary:
    name: str
    faces: int
    thumbnail_face_id: int | None = None  # their first face with a thumbnail (in lists)


@dataclass(frozen=True, slots=True)
class Merged:
    """What merging ``source`` into ``name`` did: ``faces`` is what ``name`` has now."""

    name: str
    faces: int
    source: str
    moved: int  # faces of ``source`` that ``name`` holds now
    dropped: int  # faces of photos ``name`` held already (the same file twice)


@dataclass(frozen=True, slots=True)
class Holder:
    """A person holding faces of the photo whose file has the SHA-256 ``sha256``."""

    sha256: str
    person: str
    face_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class FaceRecord:
    """One stored face of a person: its id, the file it came from, its box there."""

    id: int
    person: str
    source: str | None
    sha256: str | None
    box: Box
    created_at: datetime
    sharpness: float | None = None  # None: enrolled before facelens measured it
    has_thumbnail: bool = False


@dataclass(frozen=True, slots=True)
class NewFace:
    """A face to store: its embedding and box in the source image; its sharpness and a small
    JPEG of it when they were made (see ``Engine.analyze(enrolment=True)``)."""

    embedding: Embeddings
    box: Box
    sharpness: float | None = None
    thumbnail: bytes | None = None

    @classmethod
    def of(cls, face: Face) -> NewFace:
        return cls(face.embedding, face.box, face.sharpness, face.thumbnail)


@dataclass(frozen=True, slots=True)
class FaceVectors:
    """Stored faces side by side: ``ids[i]`` of ``people[i]`` has the embedding ``vectors[i]``."""

    ids: tuple[int, ...]
    people: tuple[str, ...]
    vectors: Embeddings


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """A file enrolment has seen: what came of it, so an unchanged file is not redone."""

    person: str
    sha256: str
    path: str
    status: str  # "enrolled" or "skipped"
    reason: str | None
    created_at: datetime


class Gallery(Protocol):
    """What enrolment needs of a gallery (``jobs/enrol.py``), written from its calls: a
    second backend (the PostgreSQL gallery of issue 22) provides these to enrol into it."""

    @property
    def profile(self) -> ModelProfile:
        """The model profile the gallery is bound to: its vectors are that model's."""
        ...

    def ensure_person(self, name: str) -> PersonSummary:
        """The person ``name``, created if missing (a look-alike of a stored name refused)."""
        ...

    def faces(self, person: str | None = None) -> list[FaceRecord]:
        """The stored faces of ``person`` (:class:`NotFound` if no such person), or of everyone."""
        ...

    def sources(self, person: str | None = None) -> list[SourceRecord]:
        """The files enrolment has seen (of ``person``, or of everyone)."""
        ...

    def record_source(
        self,
        person: str,
        sha256: str,
        path: str,
        faces: Sequence[NewFace],
        reason: str | None,
        *,
        new_person: bool = False,
    ) -> list[int]:
        """Atomically store one file's outcome: its faces (none if skipped, with ``reason``),
        creating ``person`` if need be (with ``new_person``, one who exists is a conflict:
        they are created with this face or not at all).

        A previous record of the same person and path with other content is replaced.
        Returns the ids of the faces stored.
        """
        ...

    def remove_sources(self, person: str, paths: Sequence[str]) -> int:
        """Forget these files of ``person`` and their faces; returns the faces removed."""
        ...
