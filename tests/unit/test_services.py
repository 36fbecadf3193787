"""The composition root of the HTTP service: opened in order, closed in reverse, nothing left
open when a step fails."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import facelens.api.services as module
from facelens.api.services import Services
from facelens.errors import ModelError, StorageError
from facelens.events.log import EventLog
from facelens.gallery import SQLiteGallery
from facelens.settings import Settings
from tests.unit.test_storage import open_files


def test_a_gallery_of_another_model_is_refused_with_nothing_left_open(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, model="sface")
    SQLiteGallery(settings.gallery_path, "dlib").close()
    with pytest.raises(ModelError, match="dlib"):
        Services.open(settings)
    assert open_files(settings.gallery_path) == 0


def test_a_step_that_fails_closes_what_was_opened_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=tmp_path)

    def broken(*_: object) -> None:
        raise StorageError("the disk is full")

    monkeypatch.setattr(module, "IdempotencyStore", broken)
    with pytest.raises(StorageError, match="disk is full"):
        Services.open(settings)
    assert open_files(settings.gallery_path) == 0  # the gallery and the keys were closed


def test_the_settings_kept_name_the_gallerys_model(tmp_path: Path) -> None:
    SQLiteGallery(tmp_path / "gallery.sqlite3", "dlib").close()
    services = Services.open(Settings(data_dir=tmp_path))  # no model asked for: the gallery's
    try:
        assert services.settings.model == "dlib" == services.gallery.profile.name
        assert services.pool.settings.model == "dlib"  # the workers load that one
    finally:
        services.close()


def test_closing_closes_everything_even_when_one_part_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=tmp_path)
    services = Services.open(settings)
    events = services.event_log()

    def broken() -> None:
        raise RuntimeError("a worker would not stop")

    monkeypatch.setattr(services.pool, "close", broken)
    with caplog.at_level(logging.ERROR):
        services.close()
    assert "a worker would not stop" in caplog.text
    assert open_files(settings.gallery_path) == 0
    assert open_files(settings.events_path) == 0
    with pytest.raises(StorageError, match="closed"):
        events.last_seq()


def test_streams_that_fail_to_start_leave_nothing_open_once_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=tmp_path)
    services = Services.open(settings)
    monkeypatch.setattr(services.pool, "start", lambda: None)  # no workers: not what is tested

    def broken(*_: object, **__: object) -> None:
        raise StorageError("the disk is full")

    # The retention applied when the streams' outbox opens fails (a full disk, a lock held).
    monkeypatch.setattr(EventLog, "prune_every", broken)
    with pytest.raises(StorageError, match="disk is full"):
        services.start()
    services.close()
    # Before: the stream table's and the outbox's handles stayed open, with their connection.
    assert open_files(settings.events_path) == 0
    assert open_files(settings.gallery_path) == 0
