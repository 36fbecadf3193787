"""Storage of people and their face embeddings."""

from __future__ import annotations

from facelens.gallery.base import FaceRecord, Gallery, NewFace, PersonSummary, SourceRecord
from facelens.gallery.sqlite import SQLiteGallery
from facelens.settings import Settings


def open_gallery(settings: Settings, *, read_only: bool = False) -> SQLiteGallery:
    """The gallery of ``settings`` (created on first use), bound to its model profile: the one
    it was built with, which must be ``settings.model`` if that is set. ``read_only``: for
    commands that only read, which then work on a full disk or a read-only filesystem."""
    return SQLiteGallery(settings.gallery_path, settings.model, read_only=read_only)


__all__ = [
    "FaceRecord",
    "Gallery",
    "NewFace",
    "PersonSummary",
    "SQLiteGallery",
    "SourceRecord",
    "open_gallery",
]
