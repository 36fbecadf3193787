"""API keys: stored hashed, given in the environment, scopes, switched off (no server needed)."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from facelens import errors
from facelens.api.keys import ALL_SCOPES, DEFAULT_SCOPES, Caller, KeyStore, given_keys, scopes_from
from facelens.errors import StorageError


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


def test_keys_can_be_switched_off_again_but_revoking_the_last_keeps_the_lock(
    tmp_path: Path,
) -> None:
    store = KeyStore(tmp_path / "g.sqlite3")
    record, _ = store.create("door")
    store.revoke(record.id)
    assert store.enabled()  # revoked: still locked
    assert store.switch_off() == 1
    assert not store.enabled()


def test_a_key_table_that_cannot_be_upgraded_leaves_nothing_open(tmp_path: Path) -> None:
    from facelens.storage.sqlite import Database
    from tests.unit.test_storage import open_files

    path = tmp_path / "gallery.sqlite3"
    db = sqlite3.connect(path)  # a table of before scopes
    db.execute(
        "CREATE TABLE api_keys (id TEXT PRIMARY KEY, name TEXT NOT NULL, sha256 TEXT NOT NULL, "
        "created_at TEXT NOT NULL, revoked_at TEXT)"
    )
    db.commit()
    db.close()
    held = Database.open(path)  # another store of the process, making its writes fail
    held.execute("PRAGMA query_only = ON")
    try:
        with pytest.raises(StorageError):
            KeyStore(path)
    finally:
        held.close()
    assert open_files(path) == 0  # the key store's handle was given up with its failure
