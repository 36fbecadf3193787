"""facelens.client's retry rules, with scripted answers (httpx.MockTransport); the client
against a real server is in tests/integration/test_client.py."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from facelens.client import AsyncClient, Client, RetryPolicy, image_bytes
from facelens.errors import APIError, InputPathError, InvalidValue, ServerUnreachable

FAST = RetryPolicy(attempts=5, deadline=10, backoff=0.01, max_wait=0.05)
HEALTHY = {"status": "ok"}


def scripted(
    *answers: httpx.Response | Exception,
) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport giving ``answers`` in turn (the last one again and again)."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers[min(len(seen), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handle), seen


def error(status: int, code: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status, json={"error": {"code": code, "message": f"{code}!"}}, headers=headers
    )


def test_retries_503_honouring_retry_after_then_answers() -> None:
    transport, seen = scripted(
        error(503, "unavailable", {"Retry-After": "1"}), httpx.Response(200, json=HEALTHY)
    )
    started = time.monotonic()
    with Client("http://fl", retry=FAST, transport=transport) as client:
        assert client.health() == HEALTHY
    assert len(seen) == 2
    assert time.monotonic() - started >= 1.0  # waited as told, not the 0.05 s back-off


def test_retries_connection_errors_and_timeouts() -> None:
    transport, seen = scripted(
        httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.Response(200, json=HEALTHY)
    )
    with Client("http://fl", retry=FAST, transport=transport) as client:
        assert client.health() == HEALTHY
    assert len(seen) == 3


def test_never_retries_other_4xx_and_carries_the_servers_code() -> None:
    for status, code in ((400, "bad_image"), (404, "not_found"), (422, "invalid_value")):
        transport, seen = scripted(error(status, code))
        with (
            Client("http://fl", retry=FAST, transport=transport) as client,
            pytest.raises(APIError) as caught,
        ):
            client.recognize(b"\xff\xd8\xff")
        assert len(seen) == 1
        assert (caught.value.status, caught.value.code) == (status, code)
        assert caught.value.message.startswith(f"{code}! (HTTP {status} from /v1/recognize)")


def test_gives_up_after_the_attempts_with_the_last_error() -> None:
    transport, seen = scripted(
        error(500, "internal"), error(502, "http_502"), error(429, "slow_down")
    )
    with (
        Client("http://fl", retry=RetryPolicy(attempts=3, backoff=0.01), transport=transport) as c,
        pytest.raises(APIError) as caught,
    ):
        c.health()
    assert len(seen) == 3 and caught.value.code == "slow_down"


def test_keeps_the_deadline() -> None:
    transport, seen = scripted(error(503, "unavailable", {"Retry-After": "0.4"}))
    policy = RetryPolicy(attempts=100, deadline=1.5, backoff=0.01)
    started = time.monotonic()
    with Client("http://fl", retry=policy, transport=transport) as client, pytest.raises(APIError):
        client.health()
    elapsed = time.monotonic() - started
    # No wait that would end past the deadline is started: 1.5 s holds at most 4 tries.
    assert elapsed < 1.5 and 2 <= len(seen) <= 4


def test_unreachable_server_says_so() -> None:
    transport, _ = scripted(httpx.ConnectError("Connection refused"))
    with (
        Client("http://fl:1", retry=FAST, transport=transport) as client,
        pytest.raises(ServerUnreachable, match="Connection refused"),
    ):
        client.health()


def test_changes_send_one_idempotency_key_across_their_tries() -> None:
    person = {"name": "ada", "face_count": 0}
    transport, seen = scripted(httpx.ReadError("lost"), httpx.Response(201, json=person))
    with Client("http://fl", retry=FAST, transport=transport) as client:
        assert client.create_person("ada").name == "ada"
        client_keys = {r.headers["Idempotency-Key"] for r in seen}
        assert len(seen) == 2 and len(client_keys) == 1
        client.create_person("bob")
    # A new call, a new key.
    assert seen[-1].headers["Idempotency-Key"] not in client_keys
    # Reads carry none.
    transport, seen = scripted(httpx.Response(200, json=HEALTHY))
    with Client("http://fl", transport=transport) as client:
        client.health()
    assert "Idempotency-Key" not in seen[0].headers


def test_async_client_retries_the_same_way() -> None:
    seen: list[httpx.Request] = []
    answers = [error(503, "unavailable"), httpx.Response(200, json=HEALTHY)]

    async def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[len(seen) - 1]

    async def main() -> dict[str, object]:
        async with AsyncClient(
            "http://fl", api_key="k", retry=FAST, transport=httpx.MockTransport(handle)
        ) as client:
            return await client.health()

    assert asyncio.run(main()) == HEALTHY
    assert len(seen) == 2 and seen[0].headers["X-API-Key"] == "k"


def test_images_from_paths_bytes_pil_and_numpy(tmp_path: Path) -> None:
    pixels = np.zeros((20, 30, 3), dtype=np.uint8)
    pixels[:, :, 0] = 200
    name, data = image_bytes(pixels)
    decoded = Image.open(io.BytesIO(data))
    assert (name, decoded.format, decoded.size) == ("image.jpg", "JPEG", (30, 20))
    assert abs(int(np.asarray(decoded)[10, 15, 0]) - 200) < 5  # RGB order kept
    rgba = Image.new("RGBA", (8, 8), (0, 0, 255, 128))
    assert Image.open(io.BytesIO(image_bytes(rgba)[1])).mode == "RGB"
    assert image_bytes(b"raw") == ("image", b"raw")
    (tmp_path / "a.png").write_bytes(b"png")
    assert image_bytes(tmp_path / "a.png") == ("a.png", b"png")
    with pytest.raises(InputPathError, match=r"missing\.jpg"):
        image_bytes(str(tmp_path / "missing.jpg"))
    with pytest.raises(InvalidValue, match="uint8"):
        image_bytes(np.zeros((4, 4), dtype=np.float32))
    with pytest.raises(InvalidValue, match="not int"):
        image_bytes(5)  # type: ignore[arg-type]
