"""``Idempotency-Key``: a retried change returns the first answer instead of doing it twice.

Edge links drop and clients retry; a retried enrolment must not enrol the photo again. The first
successful (2xx) answer to a key is stored in the gallery's SQLite file for a day; a retry with the
same key and the same request gets it back (with ``Idempotent-Replayed: true``); the same key
with a different request is refused (422). Failed requests are not stored: they changed nothing,
so running them again is safe. Concurrent retries of one key wait for the first to finish.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from facelens.errors import IdempotencyKeyReused, InvalidValue, Unavailable
from facelens.storage.sqlite import Table

HEADER = "Idempotency-Key"
TTL_S = 24 * 3600
MAX_KEY_LENGTH = 255
# A key being handled is claimed in the database (status 0), so a second server on the same
# data directory waits for the first answer and replays it instead of doing the change again.
PENDING = 0
PENDING_WAIT_S = 60.0  # a claim older than this is from a process that died: taken over
POLL_S = 0.05

_SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    media_type TEXT NOT NULL,
    body BLOB NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (scope, key)
)
"""


@dataclass(frozen=True, slots=True)
class Stored:
    fingerprint: str
    status: int
    media_type: str
    body: bytes


def _canonical(body: bytes) -> bytes:
    """JSON by value (key order and spacing do not matter); other bodies as they are."""
    try:
        return json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return body


class IdempotencyStore(Table):
    """Stored first answers, by (API key id or '', Idempotency-Key)."""

    def __init__(
        self, path: Path, writable: Callable[[], None] = lambda: None, url: str | None = None
    ) -> None:
        super().__init__(path, _SCHEMA, url=url)
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        # Raises when the file may not be written (the gallery's, sharing it: damaged).
        self.writable = writable

    def get(self, scope: str, key: str) -> Stored | None:
        self._run("DELETE FROM idempotency WHERE created_at < ?", (time.time() - TTL_S,))
        rows = self._read(
            "SELECT fingerprint, status, media_type, body FROM idempotency "
            "WHERE scope = ? AND key = ?",
            (scope, key),
        )
        if not rows:
            return None
        fingerprint, status, media_type, body = rows[0]
        assert isinstance(body, bytes)
        return Stored(str(fingerprint), int(str(status)), str(media_type), body)

    def claim(self, scope: str, key: str, fingerprint: str) -> Stored | None:
        """Claim ``key`` for this request (None), or what is stored under it: a finished
        answer, or another request's claim (status ``PENDING``) still being handled."""
        now = time.time()
        self._run(
            "DELETE FROM idempotency WHERE status = ? AND created_at < ?",
            (PENDING, now - PENDING_WAIT_S),
        )
        inserted = self._run(
            "INSERT INTO idempotency VALUES (?, ?, ?, ?, '', ?, ?) ON CONFLICT DO NOTHING "
            "RETURNING key",
            (scope, key, fingerprint, PENDING, b"", now),
        )
        return None if inserted else self.get(scope, key)

    def release(self, scope: str, key: str) -> None:
        """Give up a claim (the change failed): a retry may do it."""
        self._run(
            "DELETE FROM idempotency WHERE scope = ? AND key = ? AND status = ?",
            (scope, key, PENDING),
        )

    def put(self, scope: str, key: str, stored: Stored) -> None:
        self._run(
            "INSERT INTO idempotency VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (scope, key) DO "
            "UPDATE SET fingerprint = excluded.fingerprint, status = excluded.status, "
            "media_type = excluded.media_type, body = excluded.body, "
            "created_at = excluded.created_at",
            (
                scope,
                key,
                stored.fingerprint,
                stored.status,
                stored.media_type,
                stored.body,
                time.time(),
            ),
        )

    async def run(
        self,
        request: Request,
        scope: str,
        handler: Callable[[], Awaitable[Response]],
        content: bytes | None = None,
    ) -> Response:
        """Answer ``request`` with ``handler``, once per Idempotency-Key.

        ``content`` is what makes two requests "the same" beyond method, path and query; by
        default the body (JSON compared by value). Multipart callers pass the images' hashes:
        a client's retry picks a new multipart boundary, so its bytes differ.
        """
        key = request.headers.get(HEADER)
        if key is None:
            return await handler()
        if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
            raise InvalidValue(
                f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable characters (a UUID is ideal)."
            )
        await run_in_threadpool(self.writable)  # nothing claimed in a damaged file
        if content is None:
            content = _canonical(await request.body())
        digest = hashlib.sha256()
        for part in (request.method, request.url.path, request.url.query):
            digest.update(part.encode() + b"\0")
        digest.update(content)
        fingerprint = digest.hexdigest()
        lock = self._locks.setdefault((scope, key), asyncio.Lock())
        try:
            async with lock:
                stored = await self._claim(scope, key, fingerprint)
                if stored is not None:
                    if stored.fingerprint != fingerprint:
                        raise IdempotencyKeyReused(
                            f"The {HEADER} {key!r} was already used for a different request; "
                            "use a new key for each distinct change."
                        )
                    return Response(
                        stored.body,
                        stored.status,
                        media_type=stored.media_type,
                        headers={"Idempotent-Replayed": "true"},
                    )
                try:
                    response = await handler()
                except BaseException:
                    await run_in_threadpool(self.release, scope, key)
                    raise
                if 200 <= response.status_code < 300:
                    stored = Stored(
                        fingerprint,
                        response.status_code,
                        response.media_type or "application/json",
                        bytes(response.body),
                    )
                    await run_in_threadpool(self.put, scope, key, stored)
                else:
                    await run_in_threadpool(self.release, scope, key)
                return response
        finally:
            if not lock.locked():
                self._locks.pop((scope, key), None)

    async def _claim(self, scope: str, key: str, fingerprint: str) -> Stored | None:
        """None once this request holds the key; else the finished answer stored under it,
        waiting while another process (sharing the data directory) is still handling it."""
        deadline = time.monotonic() + PENDING_WAIT_S
        while True:
            stored = await run_in_threadpool(self.claim, scope, key, fingerprint)
            if stored is None or stored.status != PENDING:
                return stored
            if time.monotonic() > deadline:
                raise Unavailable(
                    f"Another request with the {HEADER} {key!r} is still being handled; "
                    "retry in a moment to get its answer."
                )
            await asyncio.sleep(POLL_S)
