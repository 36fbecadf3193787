"""The server's streams, with a real server, real stream processes and real requests: changes
of one stream at once leave one process, which its deletion stops."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from tests.mjpeg import MjpegCamera
from tests.mqtt import wait_until
from tests.server import Server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def clip(faces_dir: Path) -> Path:
    return faces_dir / "video" / "short_hamilton_clip.mp4"


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_changes_of_one_stream_at_once_leave_one_process_that_its_deletion_stops(
    tmp_path: Path, clip: Path
) -> None:
    camera = MjpegCamera(clip).start()
    server = Server(tmp_path / "data", env={"FACELENS_MAX_STREAMS": "1"})
    try:
        workers = set(server.worker_pids())

        def stream_processes() -> list[int]:
            return [p for p in server.worker_pids() if p not in workers and _alive(p)]

        c = server.client
        assert c.post("/v1/streams", json={"id": "door", "source": camera.url}).status_code == 201
        wait_until(
            lambda: c.get("/v1/streams/door").json()["status"].get("frames_processed", 0) > 0,
            180,
            "the stream running",
        )
        at_once = threading.Barrier(4)
        answers: list[int] = []

        def change(n: int) -> None:
            with httpx.Client(base_url=server.url, timeout=120) as own:
                at_once.wait()
                changed = own.patch("/v1/streams/door", json={"source": f"{camera.url}?n={n}"})
                answers.append(changed.status_code)

        changes = [threading.Thread(target=change, args=(n,)) for n in range(4)]
        for thread in changes:
            thread.start()
        for thread in changes:
            thread.join()
        assert answers == [200] * 4
        wait_until(
            lambda: c.get("/v1/streams/door").json()["status"].get("frames_processed", 0) > 0,
            180,
            "the changed stream running",
        )
        assert len(stream_processes()) == 1  # within FACELENS_MAX_STREAMS
        assert c.delete("/v1/streams/door").status_code == 200
        wait_until(lambda: not stream_processes(), 60, "no stream process after the deletion")
    finally:
        server.stop()
        camera.stop()
