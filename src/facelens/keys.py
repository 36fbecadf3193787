"""API keys for the HTTP service, stored hashed beside the gallery.

A key is ``fl_<id>_<secret>``: the id finds the record, the SHA-256 of the whole key is what is
stored. The secret is 32 random bytes, so a plain SHA-256 is enough (slow password hashes are for
low-entropy passwords); the key itself is shown once, when created, and never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from facelens.errors import InvalidValue, NotFound
from facelens.gallery.db import SQLiteStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
)
"""
PREFIX = "fl_"


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


MIN_GIVEN_KEY_LENGTH = 16


def given_keys(text: str) -> tuple[str, ...]:
    """Keys an operator gives in a setting (comma-separated), checked for length."""
    keys = tuple(k.strip() for k in text.split(",") if k.strip())
    for key in keys:
        if len(key) < MIN_GIVEN_KEY_LENGTH or not key.isprintable() or " " in key:
            raise InvalidValue(
                f"Each key in FACELENS_SERVER_API_KEYS must be at least {MIN_GIVEN_KEY_LENGTH} "
                "printable characters without spaces (e.g. from 'openssl rand -hex 24')."
            )
    return keys


class KeyStore(SQLiteStore):
    """Create, list, revoke and check API keys; safe to share across threads.

    ``given`` are keys the operator passes in the environment (a container's env file or a
    Kubernetes Secret): accepted beside the stored ones, as ids ``env-1``, ``env-2``, ...
    """

    def __init__(self, path: Path, given: tuple[str, ...] = ()) -> None:
        super().__init__(path, _SCHEMA)
        self.given = given

    def create(self, name: str) -> tuple[ApiKey, str]:
        """A new key named ``name``: its record and the key itself (shown once, never stored)."""
        name = name.strip()
        if not name or len(name) > 100 or not name.isprintable():
            raise InvalidValue("A key's name must be 1 to 100 printable characters.")
        key_id = secrets.token_hex(4)
        key = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        created = _now()
        self._run(
            "INSERT INTO api_keys (id, name, sha256, created_at) VALUES (?, ?, ?, ?)",
            (key_id, name, _digest(key), created),
        )
        return ApiKey(key_id, name, datetime.fromisoformat(created), None), key

    def list(self) -> list[ApiKey]:
        rows = self._run(
            "SELECT id, name, created_at, revoked_at FROM api_keys ORDER BY created_at"
        )
        return [
            ApiKey(
                str(i),
                str(n),
                datetime.fromisoformat(str(c)),
                None if r is None else datetime.fromisoformat(str(r)),
            )
            for i, n, c, r in rows
        ]

    def revoke(self, key_id: str) -> ApiKey:
        rows = self._run(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ? "
            "RETURNING id, name, created_at, revoked_at",
            (_now(), key_id),
        )
        if not rows:
            raise NotFound(f"No API key with id {key_id!r}; 'facelens keys list' shows the ids.")
        i, n, c, r = rows[0]
        return ApiKey(
            str(i), str(n), datetime.fromisoformat(str(c)), datetime.fromisoformat(str(r))
        )

    def switch_off(self) -> int:
        """Forget every key, so the API is open again (deliberately: revoking the last key
        locks it). Returns the keys forgotten."""
        return len(self._run("DELETE FROM api_keys RETURNING id"))

    def enabled(self) -> bool:
        """Whether keys are in use: once one was created, every API call needs an active one.

        Revoked keys count: revoking the last key must lock the API, not open it.
        """
        return bool(self.given) or bool(self._run("SELECT 1 FROM api_keys LIMIT 1"))

    def active_count(self) -> int:
        return int(str(self._run("SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL")[0][0]))

    def check(self, key: str) -> str | None:
        """The id of the active key ``key``, or None if it is not one."""
        found = None
        for number, given in enumerate(self.given, 1):  # every one compared: constant time
            if hmac.compare_digest(given.encode(), key.encode()):
                found = f"env-{number}"
        if found is not None:
            return found
        if not key.startswith(PREFIX) or key.count("_") < 2:
            return None
        key_id = key[len(PREFIX) :].split("_", 1)[0]
        rows = self._run(
            "SELECT sha256 FROM api_keys WHERE id = ? AND revoked_at IS NULL", (key_id,)
        )
        if rows and hmac.compare_digest(str(rows[0][0]), _digest(key)):
            return key_id
        return None
