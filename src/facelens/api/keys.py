"""API keys for the HTTP service, stored hashed beside the gallery.

A key is ``fl_<id>_<secret>``: the id finds the record, the SHA-256 of the whole key is what is
stored. The secret is 32 random bytes, so a plain SHA-256 is enough (slow password hashes are for
low-entropy passwords); the key itself is shown once, when created, and never stored.

Each key holds scopes: ``recognize`` (ask who is in a photo, read people, events and streams),
``enrol`` (also change people and their faces) and ``admin`` (also add, change and delete
streams: a stream makes the server read a source). Keys made before scopes existed, and keys
given in ``FACELENS_SERVER_API_KEYS``, hold every scope, as they could do everything before.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

from facelens.errors import DatabaseUnavailable, InvalidValue, NotFound
from facelens.gallery.keys import KEYS_TABLE
from facelens.storage.sqlite import Table

_SCHEMA = KEYS_TABLE
PREFIX = "fl_"
Scope = Literal["recognize", "enrol", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
DEFAULT_SCOPES: frozenset[Scope] = frozenset({"recognize", "enrol"})
ALL_SCOPES: frozenset[Scope] = frozenset(SCOPES)


def scopes_from(names: Iterable[str]) -> frozenset[Scope]:
    """Scope names checked, each with the scopes it holds (``enrol`` holds ``recognize``,
    ``admin`` every scope); unknown names are refused."""
    found: set[Scope] = set()
    for name in names:
        name = name.strip().lower()
        if name not in SCOPES:
            raise InvalidValue(
                f"{name!r} is not a key scope: use {', '.join(SCOPES)} (admin holds the others)."
            )
        found.add(name)
    if not found:
        raise InvalidValue(f"A key needs at least one scope: {', '.join(SCOPES)}.")
    if "admin" in found:
        return ALL_SCOPES
    return frozenset(found | {"recognize"}) if "enrol" in found else frozenset(found)


def _scopes_text(scopes: frozenset[Scope]) -> str:
    return " ".join(s for s in SCOPES if s in scopes)


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None
    scopes: frozenset[Scope] = ALL_SCOPES

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def scope_names(self) -> list[str]:
        return [s for s in SCOPES if s in self.scopes]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who an API request comes from: the key's id ('' with keys off) and what it may do."""

    key_id: str
    scopes: frozenset[Scope]


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


class KeyStore(Table):
    """Create, list, revoke and check API keys; safe to share across threads.

    ``given`` are keys the operator passes in the environment (a container's env file or a
    Kubernetes Secret): accepted beside the stored ones, as ids ``env-1``, ``env-2``, ...
    """

    def __init__(self, path: Path, given: tuple[str, ...] = (), url: str | None = None) -> None:
        super().__init__(path, _SCHEMA, url=url)
        self.given = given
        # The stored keys as last read: a shared database out of reach leaves the keys known
        # then in force (recognition goes on; changes to keys wait for the database).
        self._known: Sequence[tuple[Any, ...]] = ()
        if url is not None:
            try:
                self._stored()  # read now: the database must be reachable to start
            except BaseException:
                self.close()
                raise
            return
        try:
            columns = {str(row[1]) for row in self._read("PRAGMA table_info(api_keys)")}
            if "scopes" not in columns:  # a table of before scopes: its keys could do everything
                self._run(
                    "ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL "
                    "DEFAULT 'recognize enrol admin'"
                )
        except BaseException:
            self.close()  # not left open: the file's connections live as long as a handle
            raise

    def create(self, name: str, scopes: frozenset[Scope] = DEFAULT_SCOPES) -> tuple[ApiKey, str]:
        """A new key named ``name``: its record and the key itself (shown once, never stored)."""
        name = name.strip()
        if not name or len(name) > 100 or not name.isprintable():
            raise InvalidValue("A key's name must be 1 to 100 printable characters.")
        scopes = scopes_from(scopes)
        key_id = secrets.token_hex(4)
        key = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        created = _now()
        self._run(
            "INSERT INTO api_keys (id, name, sha256, created_at, scopes) VALUES (?, ?, ?, ?, ?)",
            (key_id, name, _digest(key), created, _scopes_text(scopes)),
        )
        return ApiKey(key_id, name, datetime.fromisoformat(created), None, scopes), key

    @staticmethod
    def _record(row: tuple[object, ...]) -> ApiKey:
        i, n, c, r, s = row
        return ApiKey(
            str(i),
            str(n),
            datetime.fromisoformat(str(c)),
            None if r is None else datetime.fromisoformat(str(r)),
            scopes_from(str(s).split()),
        )

    def list(self) -> list[ApiKey]:
        rows = self._read(
            "SELECT id, name, created_at, revoked_at, scopes FROM api_keys ORDER BY created_at"
        )
        return [self._record(row) for row in rows]

    def revoke(self, key_id: str) -> ApiKey:
        rows = self._run(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ? "
            "RETURNING id, name, created_at, revoked_at, scopes",
            (_now(), key_id),
        )
        if not rows:
            raise NotFound(f"No API key with id {key_id!r}; 'facelens keys list' shows the ids.")
        return self._record(rows[0])

    def switch_off(self) -> int:
        """Forget every key, so the API is open again (deliberately: revoking the last key
        locks it). Returns the keys forgotten."""
        return len(self._run("DELETE FROM api_keys RETURNING id"))

    def enabled(self) -> bool:
        """Whether keys are in use: once one was created, every API call needs an active one.

        Revoked keys count: revoking the last key must lock the API, not open it.
        """
        return bool(self.given) or bool(self._stored())

    def active_count(self) -> int:
        return int(str(self._read("SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL")[0][0]))

    def check(self, key: str) -> Caller | None:
        """Who holds the active key ``key`` and what it may do, or None if it is not one."""
        found = None
        for number, given in enumerate(self.given, 1):  # every one compared: constant time
            if hmac.compare_digest(given.encode(), key.encode()):
                found = Caller(f"env-{number}", ALL_SCOPES)
        if found is not None:
            return found
        if not key.startswith(PREFIX) or key.count("_") < 2:
            return None
        key_id = key[len(PREFIX) :].split("_", 1)[0]
        rows = [row for row in self._stored() if row[0] == key_id and row[3] is None]
        if rows and hmac.compare_digest(str(rows[0][1]), _digest(key)):
            return Caller(key_id, scopes_from(str(rows[0][2]).split()))
        return None

    def _stored(self) -> Sequence[tuple[Any, ...]]:
        """Every stored key (id, sha256, scopes, revoked_at): a handful, read on each check;
        the ones last read while a shared database cannot be reached."""
        with contextlib.suppress(DatabaseUnavailable):
            self._known = self._read("SELECT id, sha256, scopes, revoked_at FROM api_keys")
        return self._known
