"""Storage of people and their face embeddings."""

from __future__ import annotations

from facelens.gallery.base import FaceRecord, Gallery, NewFace, PersonSummary, SourceRecord
from facelens.gallery.sqlite import SQLiteGallery
from facelens.settings import Settings


def open_gallery(settings: Settings) -> Gallery:
    """The gallery configured by ``settings`` (created on first use)."""
    return SQLiteGallery(settings.gallery_path)


__all__ = [
    "FaceRecord",
    "Gallery",
    "NewFace",
    "PersonSummary",
    "SQLiteGallery",
    "SourceRecord",
    "open_gallery",
]
