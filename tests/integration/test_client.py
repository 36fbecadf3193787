"""facelens.client and ``facelens remote`` against a real server process."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from facelens.api.keys import KeyStore
from facelens.client import Client, RetryPolicy
from facelens.errors import APIError
from tests.support.helpers import Probe
from tests.support.server import FACELENS, Server

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Keyed:
    server: Server
    key: str

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keyed]:
    """A server whose API needs a key."""
    data = tmp_path_factory.mktemp("client") / "data"
    data.mkdir()
    store = KeyStore(data / "gallery.sqlite3")
    _, key = store.create("tests")
    store.close()
    running = Server(data)
    try:
        yield Keyed(running, key)
    finally:
        running.stop()


def remote(server: Keyed, *args: str, key: bool = True) -> subprocess.CompletedProcess[str]:
    env = {"FACELENS_URL": server.url, "NO_COLOR": "1", "COLUMNS": "200"}
    if key:
        env["FACELENS_API_KEY"] = server.key
    return subprocess.run(
        [FACELENS, "remote", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_the_client_waits_for_a_server_that_starts_after_it(
    tmp_path: Path, probes: list[Probe]
) -> None:
    port = free_port()
    probe = next(p for p in probes if p.file.name == "obama1.jpg")
    result: dict[str, Any] = {}
    policy = RetryPolicy(attempts=200, deadline=120, backoff=0.2, max_wait=1.0)

    def call() -> None:
        started = time.monotonic()
        with Client(f"http://127.0.0.1:{port}", retry=policy) as client:
            result["faces"] = client.recognize(probe.file).faces
        result["took"] = time.monotonic() - started

    thread = threading.Thread(target=call)
    thread.start()
    time.sleep(1.0)  # the client is already trying (connection refused)
    assert thread.is_alive()
    running = Server(tmp_path / "data", "--port", str(port))
    try:
        thread.join(120)
    finally:
        running.stop()
    assert [f.name for f in result["faces"]] == ["unknown"]  # nobody enrolled: a real answer
    assert result["took"] > 1.0


class LoseFirstAnswer(httpx.HTTPTransport):
    """Sends each request to the real server, but loses the answer to the first change, as a
    dropped connection does after the server has done the work."""

    def __init__(self) -> None:
        super().__init__()
        self.lost: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.method != "GET" and not self.lost:
            response.read()
            response.close()
            self.lost.append(request.url.path)
            raise httpx.ReadError("connection reset before the answer arrived")
        return response


def test_a_retried_change_is_done_once_and_answered_as_the_first(
    server: Keyed, people_dir: Path
) -> None:
    photos = sorted((people_dir / "biden").iterdir())
    policy = RetryPolicy(attempts=3, backoff=0.05)
    key = server.key
    creating = LoseFirstAnswer()
    with Client(server.url, api_key=key, retry=policy, transport=creating) as client:
        # Without one Idempotency-Key across the tries, the retry would be a 409 "taken".
        assert client.create_person("Joe").name == "Joe"
    assert creating.lost == ["/v1/people"]
    enrolling = LoseFirstAnswer()
    with Client(server.url, api_key=key, retry=policy, transport=enrolling) as client:
        enrolled = client.add_faces("Joe", photos)
        # The first answer, replayed: "enrolled" (a new request would say "already_enrolled").
        assert [r.status for r in enrolled.results] == ["enrolled"] * len(photos)
        assert enrolling.lost == ["/v1/people/Joe/faces"]
        assert client.person("Joe").face_count == len(photos)
        client.delete_person("Joe")


def test_remote_commands_work_like_the_local_ones(
    server: Keyed, people_dir: Path, probes: list[Probe], tmp_path: Path
) -> None:
    first = remote(server, "enroll", str(people_dir), "--json", "--concurrency", "3")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert {p["name"] for p in report["people"]} == {d.name for d in people_dir.iterdir()}
    assert sum(p["enrolled"] for p in report["people"]) == sum(
        len(list(d.iterdir())) for d in people_dir.iterdir()
    )
    again = json.loads(remote(server, "enroll", str(people_dir), "--json").stdout)
    assert sum(p["enrolled"] for p in again["people"]) == 0
    assert sum(p["unchanged"] for p in again["people"]) == sum(
        p["enrolled"] for p in report["people"]
    )

    listed = remote(server, "recognize", *(str(p.file) for p in probes), "--json")
    assert listed.returncode == 0, listed.stderr
    names = {e["file"]: sorted(f["name"] for f in e["faces"]) for e in json.loads(listed.stdout)}
    assert names == {str(p.file): sorted(p.expected) for p in probes}
    whole = remote(server, "recognize", str(probes[0].file.parent), "--json")  # a folder
    assert whole.returncode == 0, whole.stderr
    found = {e["file"]: sorted(f["name"] for f in e["faces"]) for e in json.loads(whole.stdout)}
    assert list(found) == sorted(found) and {file: found[file] for file in names} == names
    annotated = remote(
        server, "recognize", str(probes[0].file), "--annotate", str(tmp_path / "out")
    )
    assert annotated.returncode == 0 and (tmp_path / "out" / f"{probes[0].file.stem}.jpg").exists()

    obama = sorted((people_dir / "obama").iterdir())
    same = json.loads(remote(server, "verify", str(obama[0]), str(obama[-1]), "--json").stdout)
    assert same["same_person"] is True and same["threshold"] > same["distance"]

    people = json.loads(remote(server, "people", "list", "--json").stdout)
    assert {p["name"] for p in people} >= {"obama", "biden"}
    assert remote(server, "people", "rename", "biden", "Joe Biden").returncode == 0
    assert remote(server, "people", "remove", "Joe Biden").returncode == 0
    assert remote(server, "health").returncode == 0


def test_remote_exit_codes_follow_the_local_ones(
    server: Keyed, people_dir: Path, tmp_path: Path
) -> None:
    missing = remote(server, "people", "remove", "Nobody At All")
    assert missing.returncode == 7 and "No person named" in missing.stderr
    refused = remote(server, "people", "list", key=False)
    assert refused.returncode == 11 and "API key" in refused.stderr
    # A folder with a photo without a face: the rest is enrolled, the exit code says not all.
    folder = tmp_path / "people" / "kit_harington"
    folder.mkdir(parents=True)
    for photo in (people_dir / "kit_harington").iterdir():
        (folder / photo.name).write_bytes(photo.read_bytes())
    (folder / "blank.png").write_bytes(_blank_png())
    partial = remote(server, "enroll", str(tmp_path / "people"))
    assert partial.returncode == 1, partial.stderr
    assert "blank.png" in partial.stdout and "1 of" in partial.stderr
    gone = free_port()
    unreachable = subprocess.run(
        [FACELENS, "remote", "health", "--url", f"http://127.0.0.1:{gone}"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "FACELENS_REMOTE_DEADLINE_S": "2"},
    )
    assert unreachable.returncode == 10 and "No answer" in unreachable.stderr


def reencoded(source: Path, target: Path, quality: int = 91) -> Path:
    """The photo at ``source`` saved again (other bytes, another SHA-256): a photo no other
    test of this module's server has enrolled."""
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.open(source).convert("RGB").save(target, "JPEG", quality=quality)
    return target


def people_on(server: Keyed) -> dict[str, int]:
    listed = json.loads(remote(server, "people", "list", "--json").stdout)
    return {p["name"]: p["faces"] for p in listed}


def test_remote_enroll_follows_a_rename_and_a_merge_instead_of_making_duplicates(
    server: Keyed, people_dir: Path, tmp_path: Path
) -> None:
    """Local enrolment keeps each file's path, so a renamed person keeps their folder; the
    server saw only uploads, and 'remote enroll' made the folder's person again with every
    photo. It now asks the server who holds its photos (by their SHA-256)."""
    root = tmp_path / "people"
    biden = sorted((people_dir / "biden").iterdir())
    for n, photo in enumerate(biden):
        reencoded(photo, root / "vp" / f"{n}.jpg")
    first = remote(server, "enroll", str(root), "--json")
    assert first.returncode == 0, first.stderr
    assert remote(server, "people", "rename", "vp", "Vice President").returncode == 0

    again = remote(server, "enroll", str(root), "--json")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)["people"]
    assert [(p["name"], p["folder"], p["unchanged"], p["enrolled"]) for p in report] == [
        ("Vice President", "vp", 2, 0)
    ]
    assert "was enrolled before as 'Vice President'" in remote(server, "enroll", str(root)).stdout
    assert "vp" not in people_on(server)

    # One more folder of him under another name, merged into him: followed the same way.
    reencoded(biden[0], root / "Joe" / "older.jpg", quality=80)
    assert remote(server, "enroll", str(root)).returncode == 0
    assert people_on(server)["Joe"] == 1
    merged = remote(server, "people", "merge", "Joe", "Vice President")
    assert merged.returncode == 0, merged.stderr
    assert "merged 'Joe' into 'Vice President': 1 face moved" in merged.stdout
    third = json.loads(remote(server, "enroll", str(root), "--json").stdout)["people"]
    assert [(p["name"], p["unchanged"], p["enrolled"]) for p in third] == [("Vice President", 3, 0)]
    on_server = people_on(server)
    assert on_server["Vice President"] == 3 and not {"vp", "Joe"} & set(on_server)
    assert remote(server, "people", "remove", "Vice President").returncode == 0


def test_remote_enroll_never_leaves_an_empty_person_nor_a_look_alike(
    server: Keyed, people_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "people"
    (root / "Nobody Here").mkdir(parents=True)
    (root / "Nobody Here" / "blank.png").write_bytes(_blank_png())
    reencoded(people_dir / "biden" / "biden.jpg", root / "Joe Biden" / "a.jpg")
    done = remote(server, "enroll", str(root), "--json")
    assert done.returncode == 1, done.stderr
    assert "Nobody Here" not in people_on(server)
    assert people_on(server)["Joe Biden"] == 1

    spaced = tmp_path / "spaced"
    reencoded(people_dir / "biden" / "biden2.jpg", spaced / "Joe  Biden" / "b.jpg")
    refused = remote(server, "enroll", str(spaced), "--json")
    assert refused.returncode == 1
    ((person,),) = [json.loads(refused.stdout)["people"]]
    assert "same name as 'Joe Biden'" in person["skipped"][0]["reason"]
    assert people_on(server)["Joe Biden"] == 1 and "Joe  Biden" not in people_on(server)

    with Client(server.url, api_key=server.key) as client:
        with pytest.raises(APIError) as nothing:
            client.create_person_with_photos("Ghost", [_blank_png()])
        assert (nothing.value.status, nothing.value.code) == (422, "nothing_enrolled")
        photo = (people_dir / "rose_leslie" / "img1.jpg").read_bytes()
        made = client.create_person_with_photos("Rose L", [photo, _blank_png()])
        assert (made.enrolled, made.face_count) == (1, 1)
        held = client.photo_holders([hashlib.sha256(photo).hexdigest()])
        assert "Rose L" in {h.person for h in held}
        assert client.merge_person("Rose L", "Joe Biden").face_count == 2
    assert "Ghost" not in people_on(server)
    assert remote(server, "people", "remove", "Joe Biden").returncode == 0


def _blank_png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "white").save(buffer, format="PNG")
    return buffer.getvalue()
