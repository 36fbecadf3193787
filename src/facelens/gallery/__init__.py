"""Storage of people and their face embeddings."""

from __future__ import annotations

from facelens.gallery.base import FaceRecord, Gallery, NewFace, PersonSummary, SourceRecord
from facelens.gallery.sqlite import SQLiteGallery
from facelens.settings import Settings


def open_gallery(settings: Settings) -> SQLiteGallery:
    """The gallery of ``settings`` (created on first use), bound to its model profile: the one
    it was built with, which must be ``settings.model`` if that is set."""
    return SQLiteGallery(settings.gallery_path, settings.model)


__all__ = [
    "FaceRecord",
    "Gallery",
    "NewFace",
    "PersonSummary",
    "SQLiteGallery",
    "SourceRecord",
    "open_gallery",
]
