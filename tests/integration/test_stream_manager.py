"""The server's stream manager with a stand-in stream process (no model, no camera): which
streams it takes, how many, which it starts again, and that a stream process lives exactly as
long as it should. The processes are real (spawned), as the server's are."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from facelens.errors import Conflict, InvalidValue, SourceNotAllowed, TooManyStreams
from facelens.settings import Settings
from facelens.system.lifetime import die_with_parent
from facelens.video.streams import RUNNING_ELSEWHERE, StreamConfig, StreamManager, run_stream

pytestmark = pytest.mark.integration  # starts processes (see docs/development.md's tiers)

CAMERA = "rtsp://127.0.0.1:9/live"  # never connected to by the stand-in


def idle_stream(config: StreamConfig, settings: Settings) -> None:
    """A stand-in stream process: says it has started, then waits to be stopped."""
    die_with_parent()
    (settings.data_dir / "streams" / config.id / "started").write_text(str(os.getpid()))
    time.sleep(600)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", max_streams=2)


@pytest.fixture
def manager(settings: Settings) -> Iterator[StreamManager]:
    streams = StreamManager(settings, target=idle_stream)
    yield streams
    streams.close()


def wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_local_files_are_refused_alike_whether_or_not_they_exist(manager: StreamManager) -> None:
    with pytest.raises(SourceNotAllowed) as shadow:
        manager.create("a", "/etc/shadow", None)
    with pytest.raises(SourceNotAllowed) as nope:
        manager.create("b", "/etc/nope", None)
    assert str(shadow.value).replace("shadow", "nope") == str(nope.value)
    for source in ("file:///etc/hostname", "ftp://127.0.0.1/x", "tcp://127.0.0.1:25"):
        with pytest.raises(SourceNotAllowed):
            manager.create("c", source, None)
    assert manager.list() == []  # nothing refused was kept


def test_odd_digits_and_control_characters_in_a_source_are_refused_not_a_crash(
    manager: StreamManager,
) -> None:
    # "²" is a digit to str.isdigit (int() then failed), a NUL failed in realpath: both 500s.
    with pytest.raises(SourceNotAllowed):
        manager.create("a", "²", None)
    for source in ("/etc/hostname\x00/etc/passwd", "rtsp://cam/live\n"):
        with pytest.raises(InvalidValue, match="control character"):
            manager.create("a", source, None)
    assert manager.list() == []


def test_a_stream_id_with_a_trailing_newline_is_refused(manager: StreamManager) -> None:
    with pytest.raises(InvalidValue, match="cannot be a stream id"):
        manager.create("door\n", CAMERA, None)
    assert manager.list() == []


def test_streams_beyond_the_limit_are_refused_with_a_stable_code(manager: StreamManager) -> None:
    manager.create("a", CAMERA, None)
    manager.create("b", CAMERA, None)
    with pytest.raises(TooManyStreams) as refused:
        manager.create("c", CAMERA, None)
    assert refused.value.code == "too_many_streams" and isinstance(refused.value, Conflict)
    assert "FACELENS_MAX_STREAMS" in str(refused.value)
    with pytest.raises(Conflict, match="exists already"):  # a duplicate is still a duplicate
        manager.create("a", CAMERA, None)
    manager.delete("a")
    manager.create("c", CAMERA, None)  # room again
    assert [c.id for c in manager.list()] == ["b", "c"]


def test_stored_streams_the_settings_refuse_now_are_not_started_and_say_why(
    tmp_path: Path,
) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "door.mp4").write_bytes(b"not really a video")
    before = Settings(data_dir=tmp_path / "data", stream_folders=str(videos), max_streams=3)
    streams = StreamManager(before, target=idle_stream)
    for stream_id, source in (("a", CAMERA), ("b", CAMERA), ("file", str(videos / "door.mp4"))):
        streams.create(stream_id, source, None)
    streams.close()
    # Restarted with no folder allowed and room for one stream.
    now = Settings(data_dir=tmp_path / "data", max_streams=1)
    streams = StreamManager(now, target=idle_stream)
    try:
        streams.start_all()
        states = {i: s["state"] for i, s in streams.statuses().items()}
        assert states == {"a": "starting", "b": "refused", "file": "refused"}
        assert "FACELENS_MAX_STREAMS" in streams.status("b")["detail"]
        assert "not a source this server may read" in streams.status("file")["detail"]
        wait_for(tmp_path / "data" / "streams" / "a" / "started")
        assert not (tmp_path / "data" / "streams" / "file" / "started").exists()
        with pytest.raises(SourceNotAllowed):  # nor changed into running without a new source
            streams.update("file", None, 5)
    finally:
        streams.close()


def test_changes_of_one_stream_at_once_leave_one_process_and_delete_stops_it(
    manager: StreamManager,
) -> None:
    manager.create("door", CAMERA, None)
    wait_for(manager.folder("door") / "started")
    at_once = threading.Barrier(4)
    failed: list[BaseException] = []

    def change(n: int) -> None:
        at_once.wait()
        try:
            manager.update("door", f"{CAMERA}?n={n}", None)
        except BaseException as exc:
            failed.append(exc)

    changes = [threading.Thread(target=change, args=(n,)) for n in range(4)]
    for thread in changes:
        thread.start()
    for thread in changes:
        thread.join()
    assert failed == []

    def processes() -> list[multiprocessing.process.BaseProcess]:
        # Every process this test's manager started and that still runs, lost track of or not.
        return [p for p in multiprocessing.active_children() if p.name == "stream door"]

    assert len(processes()) == 1
    manager.delete("door")
    assert processes() == []


def test_a_stream_outlives_the_request_thread_that_added_it(manager: StreamManager) -> None:
    # A server adds a stream on a request thread, which its pool ends when idle; the stream's
    # death signal must not come with that thread's end, only with the server's.
    started = manager.folder("door") / "started"

    def request() -> None:
        manager.create("door", CAMERA, None)
        wait_for(started)  # the process has asked for its death signal by now

    thread = threading.Thread(target=request)
    thread.start()
    thread.join()
    time.sleep(1)  # a death signal would have come at once
    assert manager.status("door")["state"] == "starting"  # alive: not restarting or ended
    pid = int(started.read_text())
    assert Path(f"/proc/{pid}").exists()


def test_a_second_process_for_a_running_stream_ends_at_once(settings: Settings) -> None:
    folder = settings.data_dir / "streams" / "door"
    folder.mkdir(parents=True)
    with (folder / "lock").open("a+") as held:  # as the stream's running process holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("4242\n")
        held.flush()
        config = StreamConfig("door", CAMERA, None, "2026-01-01T00:00:00+00:00")
        second = multiprocessing.get_context("spawn").Process(
            target=run_stream, args=(config, settings)
        )
        second.start()
        try:
            second.join(timeout=60)
        finally:
            if second.is_alive():
                second.kill()
    assert second.exitcode == RUNNING_ELSEWHERE
    assert not (folder / "status.json").exists()  # it wrote nothing of the running one's
