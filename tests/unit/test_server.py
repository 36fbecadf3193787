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
