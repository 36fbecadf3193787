"""Idempotency-Key: fingerprints, expiry, two servers sharing one data directory."""

from __future__ import annotations

from pathlib import Path

import pytest

import facelens.api.idempotency as module
from facelens.api.idempotency import IdempotencyStore, Stored, _canonical


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
