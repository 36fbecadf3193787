"""Storage of people and their face embeddings."""

from __future__ import annotations

from facelens.gallery.base import FaceRecord, Gallery, NewFace, PersonSummary, SourceRecord
from facelens.gallery.sqlite import SQLiteGallery
from facelens.gallery.stored import StoredGallery
from facelens.settings import Settings


def shared_url(settings: Settings) -> str | None:
    """The shared database's URL (``FACELENS_DATABASE_URL``), None for the data directory's
    files: where the gallery, API keys, idempotency records and events are kept."""
    url = settings.database_url
    return None if url is None else url.get_secret_value()


def open_gallery(
    settings: Settings, *, read_only: bool = False, follow: bool = False
) -> StoredGallery:
    """The gallery of ``settings`` (created on first use), bound to its model profile: the one
    it was built with, which must be ``settings.model`` if that is set: the SQLite file in the
    data directory, or the PostgreSQL database of ``settings.database_url``. ``read_only``: for
    commands that only read, which then work on a full disk or a read-only filesystem (a
    file's). ``follow``: a server's, which follows the changes other servers make to a shared
    database (a file's own changes are seen at once)."""
    url = shared_url(settings)
    if url is not None:
        from facelens.gallery.postgres import PostgresGallery  # psycopg only when asked for

        return PostgresGallery(url, settings.data_dir, settings.model, follow=follow)
    return SQLiteGallery(settings.gallery_path, settings.model, read_only=read_only)


__all__ = [
    "FaceRecord",
    "Gallery",
    "NewFace",
    "PersonSummary",
    "SQLiteGallery",
    "SourceRecord",
    "StoredGallery",
    "open_gallery",
    "shared_url",
]
