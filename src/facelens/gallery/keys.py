"""The API keys' table, kept beside the gallery (in its file, or in the shared database): its
shape, for the store that uses it (``api/keys.KeyStore``) and for ``facelens db copy``."""

from __future__ import annotations

KEYS_TABLE = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    scopes TEXT NOT NULL DEFAULT 'recognize enrol admin'
)
"""
KEY_COLUMNS = "id, name, sha256, created_at, revoked_at, scopes"
