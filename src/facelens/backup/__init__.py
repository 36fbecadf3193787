"""Backups: everything of a data directory that matters, in one archive, and back.

A data directory holds two SQLite files that matter: ``gallery.sqlite3`` (people, faces, their
thumbnails, the photo records, API keys, idempotency records) and ``events.sqlite3`` (events with
their face crops, the delivery outbox, the server's streams). Nothing else is kept: ``streams/``
holds only what running streams write of themselves (status, snapshot, lock), and ``.bak`` files
and ``before-restore-*`` folders are copies already.

The archive is a gzipped tar: ``manifest.json`` first, then each database as SQLite's online
backup copies it, consistent on its own also while the server writes (the two files are not one
transaction). The manifest holds the facelens version, the gallery's schema version and model,
counts, and each member's size and SHA-256, which ``facelens restore`` checks before it changes
anything. The archive is written beside its name and renamed into place, readable by its owner
only: it holds biometric data, API key hashes and stream URLs with their credentials.

``write.py`` writes an archive; ``unpack.py`` checks one as it unpacks it; ``restore.py`` puts
the unpacked files in place.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from facelens.settings import EVENTS_FILE, GALLERY_FILE
from facelens.storage.errors import storage_error
from facelens.storage.sqlite import connect_read_only

MANIFEST = "manifest.json"
DATABASES = (GALLERY_FILE, EVENTS_FILE)  # in the order they are archived
FORMAT = "facelens-backup"
FORMAT_VERSION = 1


def _count(db: sqlite3.Connection, table: str, where: str = "") -> int | None:
    """Rows of ``table`` (None when the file has no such table)."""
    found = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).fetchone()
    if not found:
        return None
    return int(db.execute(f"SELECT COUNT(*) FROM {table} {where}").fetchone()[0])


def holding(name: str) -> str:
    """What the database ``name`` of the data directory holds, as its errors say it."""
    return "Gallery" if name == GALLERY_FILE else "Event log"


def describe(name: str, path: Path) -> dict[str, Any]:
    """What a database of the data directory holds, as the manifest and restore tell it."""
    what = holding(name)
    db = connect_read_only(path, what)
    try:
        if name == GALLERY_FILE:
            meta: dict[str, str] = {}
            if _count(db, "meta") is not None:
                meta = {str(k): str(v) for k, v in db.execute("SELECT key, value FROM meta")}
            return {
                "schema_version": int(meta.get("schema_version", "1")),
                "model": meta.get("model"),
                "model_id": meta.get("model_id"),
                "people": _count(db, "people") or 0,
                "faces": _count(db, "faces") or 0,
                "thumbnails": _count(db, "face_thumbnails") or 0,
                "api_keys": _count(db, "api_keys") or 0,
                "active_api_keys": _count(db, "api_keys", "WHERE revoked_at IS NULL") or 0,
            }
        return {
            "events": _count(db, "events") or 0,
            "streams": _count(db, "streams") or 0,
            "undelivered": _count(db, "deliveries") or 0,
        }
    except sqlite3.Error as exc:
        raise storage_error(path, exc, what) from None
    finally:
        db.close()
