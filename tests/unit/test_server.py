"""``facelens serve``'s checks before it starts anything (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from facelens.api.server import refuse_open_without_keys
from facelens.errors import UnsafeSettings
from facelens.settings import Settings


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "facelens.lan"])
def test_an_address_beyond_loopback_without_keys_is_refused(tmp_path: Path, host: str) -> None:
    settings = Settings(data_dir=tmp_path, host=host)
    with pytest.raises(UnsafeSettings, match="FACELENS_SERVER_API_KEYS") as refused:
        refuse_open_without_keys(settings, keyed=False)
    assert "keys create NAME" in refused.value.message
    assert "FACELENS_ALLOW_NO_KEYS=true" in refused.value.message


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_needs_no_key(tmp_path: Path, host: str) -> None:
    refuse_open_without_keys(Settings(data_dir=tmp_path, host=host), keyed=False)


def test_a_key_or_the_explicit_permission_lets_it_listen_anywhere(tmp_path: Path) -> None:
    refuse_open_without_keys(Settings(data_dir=tmp_path, host="0.0.0.0"), keyed=True)
    allowed = Settings(data_dir=tmp_path, host="0.0.0.0", allow_no_keys=True)
    refuse_open_without_keys(allowed, keyed=False)


def test_the_write_lock_serves_every_event_loop_in_turn() -> None:
    """The server's write lock waited on in one event loop, then in another (each in-process
    app of the tests runs its own): a module-level asyncio.Lock failed there ("bound to a
    different event loop", a 500 on an enrolment)."""
    import asyncio

    from facelens.api.enrolment import write_lock

    async def contend() -> list[int]:
        order: list[int] = []

        async def hold(n: int) -> None:
            async with write_lock:
                order.append(n)
                await asyncio.sleep(0.01)

        await asyncio.gather(hold(1), hold(2), hold(3))
        return order

    assert asyncio.run(contend()) == [1, 2, 3]
    assert asyncio.run(contend()) == [1, 2, 3]  # another loop
