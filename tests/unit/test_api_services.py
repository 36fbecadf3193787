"""Error → status mapping, API keys and idempotency fingerprints (no server needed)."""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
from pathlib import Path

import pytest

import facelens.api.idempotency as module
from facelens import errors
from facelens.api.errors import STATUS, status_for
from facelens.api.idempotency import IdempotencyStore, Stored, _canonical
from facelens.api.keys import ALL_SCOPES, DEFAULT_SCOPES, Caller, KeyStore, given_keys, scopes_from
from facelens.api.observability import JsonFormatter


def test_every_error_class_has_a_deliberate_status() -> None:
    classes = [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.FaceLensError)
        and cls is not errors.FaceLensError
        # Raised only by facelens.client, holding another server's status.
        and cls is not errors.APIError
    ]
    for cls in classes:
        assert status_for(cls("x")) != 500, f"{cls.__name__} would answer 500"
    assert status_for(errors.ImageTooLarge("x")) == 413  # more specific than ImageError's 400
    assert status_for(errors.BadBase64("x")) == 400
    assert status_for(errors.IdempotencyKeyReused("x")) == 422
    assert status_for(errors.FaceLensError("x")) == 500
    assert set(STATUS.values()) <= {400, 401, 403, 404, 408, 409, 413, 415, 422, 499, 503, 504}


def test_keys_given_in_the_environment_turn_keys_on_and_are_checked(tmp_path: Path) -> None:
    given = given_keys(" a-long-enough-key-1 ,second-key-of-20-chars")
    store = KeyStore(tmp_path / "g.sqlite3", given)
    assert store.enabled() and store.active_count() == 0
    assert store.check("second-key-of-20-chars") == Caller("env-2", ALL_SCOPES)
    assert store.check("a-long-enough-key-1") == Caller("env-1", ALL_SCOPES)
    assert store.check("a-long-enough-key-") is None
    assert not KeyStore(tmp_path / "g.sqlite3").enabled()
    for weak in ("short", "has a space in it ok", "tab\there-long-enough"):
        with pytest.raises(errors.InvalidValue, match="at least 16"):
            given_keys(weak)


def test_keys_are_stored_hashed_checked_and_revoked(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "g.sqlite3")
    assert not store.enabled()
    record, key = store.create("  door camera ")
    assert record.name == "door camera" and key.startswith(f"fl_{record.id}_")
    assert key.encode() not in (tmp_path / "g.sqlite3").read_bytes()
    assert store.enabled() and store.check(key) == Caller(record.id, DEFAULT_SCOPES)
    for wrong in (key + "x", key[:-1], "fl_" + record.id, "", "fl__x", f"fl_{record.id}_x"):
        assert store.check(wrong) is None
    store.revoke(record.id)
    assert store.check(key) is None
    assert store.enabled(), "revoking the last key must not open the API"
    assert store.active_count() == 0
    with pytest.raises(errors.NotFound, match="keys list"):
        store.revoke("nope")
    with pytest.raises(errors.InvalidValue):
        store.create("bad\nname")


def test_key_scopes_hold_the_lesser_ones_and_unknown_scopes_are_refused(tmp_path: Path) -> None:
    assert scopes_from(["recognize"]) == {"recognize"}
    assert scopes_from(["ENROL "]) == {"recognize", "enrol"}
    assert scopes_from(["admin"]) == ALL_SCOPES
    for wrong in (["root"], [], ["recognise"]):
        with pytest.raises(errors.InvalidValue, match="scope"):
            scopes_from(wrong)
    store = KeyStore(tmp_path / "g.sqlite3")
    reader, key = store.create("viewer", frozenset({"recognize"}))
    assert store.check(key) == Caller(reader.id, frozenset({"recognize"}))
    assert [k.scope_names for k in store.list()] == [["recognize"]]


def test_keys_made_before_scopes_keep_every_scope(tmp_path: Path) -> None:
    """A gallery whose api_keys table predates scopes: its keys could do everything."""
    import sqlite3

    path = tmp_path / "g.sqlite3"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE api_keys (id TEXT PRIMARY KEY, name TEXT NOT NULL, sha256 TEXT NOT NULL, "
        "created_at TEXT NOT NULL, revoked_at TEXT)"
    )
    key = "fl_abcd1234_secret-part-of-the-key"
    digest = hashlib.sha256(key.encode()).hexdigest()
    old.execute(
        "INSERT INTO api_keys VALUES ('abcd1234', 'old', ?, '2026-01-01T00:00:00+00:00', NULL)",
        (digest,),
    )
    old.commit()
    old.close()
    assert KeyStore(path).check(key) == Caller("abcd1234", ALL_SCOPES)


def test_json_bodies_are_compared_by_value() -> None:
    assert _canonical(b'{"name": "a", "x": 1}') == _canonical(b'{"x":1,"name":"a"}')
    assert _canonical(b'{"name": "a"}') != _canonical(b'{"name": "b"}')
    assert _canonical(b"\xff raw") == b"\xff raw"


def test_stored_answers_expire_after_a_day(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = IdempotencyStore(tmp_path / "g.sqlite3")
    store.put("", "k", Stored("f", 200, "application/json", b"{}"))
    assert store.get("", "k") == Stored("f", 200, "application/json", b"{}")
    assert store.get("other-api-key", "k") is None  # keys are scoped per API key
    real = module.time.time
    monkeypatch.setattr(module.time, "time", lambda: real() + module.TTL_S + 1)
    assert store.get("", "k") is None


def test_json_logs_are_one_object_per_line_with_the_request_fields() -> None:
    record = logging.makeLogRecord(
        {
            "name": "facelens.access",
            "levelname": "INFO",
            "msg": "POST /v1/recognize 200",
            "request_id": "abc",
            "faces": 2,
            "latency_ms": 12.5,
        }
    )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "POST /v1/recognize 200" and entry["level"] == "info"
    assert (entry["request_id"], entry["faces"], entry["latency_ms"]) == ("abc", 2, 12.5)


def test_a_lone_request_gets_every_core_and_a_busy_server_one_per_worker(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from facelens.settings import Settings
    from facelens.workers.pool import SpawnedWorkerPool

    monkeypatch.setattr("os.cpu_count", lambda: 4)
    pool = SpawnedWorkerPool(Settings(data_dir=tmp_path, workers=2))
    assert pool._threads() == 4
    pool._pending = 1  # another request in flight
    assert pool._threads() == 1


def test_unknown_facelens_variables_are_named_and_test_variables_are_not() -> None:
    from facelens.settings import unknown_variables

    environ = {
        "FACELENS_THRESHOLD": "0.5",
        "FACELENS_TRESHOLD": "0.5",  # a typo
        "FACELENS_TEST_FACES": "/x",
        "HOME": "/root",
    }
    assert unknown_variables(environ) == ["FACELENS_TRESHOLD"]


def test_two_servers_sharing_a_data_dir_replay_one_change_not_do_it_twice(
    tmp_path: Path,
) -> None:
    import asyncio

    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response

    path = tmp_path / "gallery.sqlite3"
    servers = [IdempotencyStore(path), IdempotencyStore(path)]  # each with its own locks
    done: list[int] = []

    def request() -> Request:
        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b'{"name": "ada"}', "more_body": False}

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/v1/people",
            "query_string": b"",
            "headers": [(b"idempotency-key", b"k-1")],
        }
        return Request(scope, receive)

    async def handler(n: int) -> Response:
        await asyncio.sleep(0.3)  # the change takes a while: the other server arrives meanwhile
        done.append(n)
        return JSONResponse({"name": "ada"}, status_code=201)

    async def main() -> list[Response]:
        return await asyncio.gather(
            *(s.run(request(), "", lambda n=n: handler(n)) for n, s in enumerate(servers))
        )

    first, second = asyncio.run(main())
    assert len(done) == 1  # the change was made once
    assert (first.status_code, second.status_code) == (201, 201)
    replayed = [r for r in (first, second) if r.headers.get("idempotent-replayed") == "true"]
    assert len(replayed) == 1 and bytes(replayed[0].body) == b'{"name":"ada"}'


def test_keys_can_be_switched_off_again_but_revoking_the_last_keeps_the_lock(
    tmp_path: Path,
) -> None:
    store = KeyStore(tmp_path / "g.sqlite3")
    record, _ = store.create("door")
    store.revoke(record.id)
    assert store.enabled()  # revoked: still locked
    assert store.switch_off() == 1
    assert not store.enabled()


def test_a_request_cancelled_by_the_shutdown_is_answered_in_json() -> None:
    """uvicorn cancels what still runs when its graceful shutdown times out; its own answer
    would be a text/plain 500 and a logged traceback."""
    import asyncio

    from facelens.api.observability import Metrics, ObservabilityMiddleware

    async def slow_app(scope: object, receive: object, send: object) -> None:
        raise asyncio.CancelledError

    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/v1/recognize", "headers": []}
    middleware = ObservabilityMiddleware(slow_app, Metrics(), 1000, 1.0)  # type: ignore[arg-type]
    asyncio.run(middleware(scope, receive, send))  # type: ignore[arg-type]
    start, body = sent
    assert start["status"] == 503
    assert (b"content-type", b"application/json") in start["headers"]  # type: ignore[operator]
    assert json.loads(body["body"])["error"]["code"] == "unavailable"  # type: ignore[arg-type]
