"""The real client libraries, unmodified from PyPI, against a real facelens server.

Each library runs in a virtual environment of its own, made by this test with uv (they pin
conflicting ``urllib3`` versions, and their licences keep them out of ours): deepstack-sdk
(DeepQuest's), deepstack-python and codeproject-ai-api (what the Home Assistant component and
Viseron use) and compreface-sdk 0.6.0 (Viseron's CompreFace component). They enrol the shared
people, then recognise the shared probes: the right names come back, strangers come back
``unknown`` (DeepStack) or below Double Take's 0.40 (CompreFace).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from facelens.api.keys import KeyStore
from facelens.settings import Settings
from tests.support.client_envs import run_client
from tests.support.helpers import Probe
from tests.support.server import Server, cpu_seconds

pytestmark = pytest.mark.integration

STRANGERS = {"obama_and_biden.jpg"}  # the probe with a face of someone never enrolled


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path / "data")
    try:
        yield running
    finally:
        running.stop()


def photos(people_dir: Path) -> dict[str, list[str]]:
    return {d.name: [str(p) for p in sorted(d.iterdir())] for d in sorted(people_dir.iterdir())}


def expected(probes: list[Probe]) -> dict[str, list[str]]:
    return {str(p.file): sorted(p.expected) for p in probes}


DEEPSTACK_SDK = """
from deepstack_sdk import Face, ServerConfig
import contextlib, io
face = Face(ServerConfig(ARGS["url"]))
out = {"names": {}, "detected": {}}
with contextlib.redirect_stdout(io.StringIO()):  # recognizeFace prints every answer
    for person, files in ARGS["people"].items():
        assert face.registerFace(files, person) is True  # several photos in one call
    out["listed"] = sorted(face.listFaces().list)
    for probe in ARGS["probes"]:
        found = face.recognizeFace(probe, min_confidence=0.67)
        out["names"][probe] = sorted(f.userid for f in found)
        out["detected"][probe] = len(face.detectFace(probe, min_confidence=0.5))
    assert face.deleteFace("biden") is True
    out["listed_after_delete"] = sorted(face.listFaces().list)
    out["after_delete"] = sorted(f.userid for f in face.recognizeFace(ARGS["both"]))
print(json.dumps(out))
"""


def test_deepstack_sdk_registers_recognises_lists_and_deletes(
    server: Server, people_dir: Path, probes: list[Probe], faces_dir: Path
) -> None:
    both = str(faces_dir / "probes" / "two_people.jpg")
    result = run_client(
        "deepstack-sdk",
        DEEPSTACK_SDK,
        url=server.url,
        people=photos(people_dir),
        probes=[str(p.file) for p in probes],
        both=both,
    )
    want = expected(probes)
    assert result["listed"] == sorted(photos(people_dir))
    assert result["names"] == want  # strangers included: "unknown"
    for probe, names in want.items():
        assert result["detected"][probe] >= len(names)
    assert "biden" not in result["listed_after_delete"]
    assert result["after_delete"] == ["obama", "unknown"]


DEEPSTACK_PYTHON = """
from deepstack.core import DeepstackFace
from codeprojectai.core import CodeProjectAIFace
host, port = ARGS["host"], ARGS["port"]
ha = DeepstackFace(ip=host, port=port, api_key=ARGS["key"], min_confidence=0.45)
viseron = CodeProjectAIFace(ip=host, port=port, min_confidence=0.5)
out = {}
for person, files in ARGS["people"].items():
    for path in files:  # one photo per call, as the HA teach_face service and Viseron do
        out.setdefault("messages", []).append(ha.register(person, open(path, "rb").read()))
out["faces"] = sorted(ha.get_registered_faces())
out["ha"] = {p: sorted(f["userid"] for f in ha.recognize(open(p, "rb").read()))
             for p in ARGS["probes"]}
out["viseron"] = {p: sorted(f["userid"] for f in viseron.recognize(open(p, "rb").read()))
                  for p in ARGS["probes"]}
print(json.dumps(out))
"""


def test_home_assistant_and_viseron_libraries(
    tmp_path: Path, people_dir: Path, probes: list[Probe]
) -> None:
    # Keys on: deepstack-python sends its key as the api_key form field; codeproject-ai-api
    # sends none and is served because loopback is listed as an open network.
    data = tmp_path / "data"
    data.mkdir()
    store = KeyStore(data / "gallery.sqlite3")
    _, key = store.create("home assistant")
    store.close()
    running = Server(data, env={"FACELENS_COMPAT_OPEN_NETWORKS": "127.0.0.0/8"})
    try:
        assert "compatibility routes without an API key" in running.log()
        host, port = running.url.removeprefix("http://").rsplit(":", 1)
        chosen = [p for p in probes if p.file.name in {"obama1.jpg", "obama_and_biden.jpg"}]
        result = run_client(
            "deepstack-python",
            DEEPSTACK_PYTHON,
            host=host,
            port=int(port),
            key=key,
            people=photos(people_dir),
            probes=[str(p.file) for p in chosen],
        )
    finally:
        running.stop()
    assert result["faces"] == sorted(photos(people_dir))
    assert set(result["messages"]) == {"face added", "face updated"}
    assert result["ha"] == expected(chosen) and result["viseron"] == expected(chosen)


COMPREFACE_SDK = """
from compreface import CompreFace
from compreface.service import RecognitionService
service: RecognitionService = CompreFace(ARGS["domain"], ARGS["port"]).init_face_recognition(
    "00000000-0000-0000-0000-000000000002")
faces, subjects = service.get_face_collection(), service.get_subjects()
out = {"added": [], "recognized": {}}
for person, files in ARGS["people"].items():
    for path in files:
        out["added"].append(faces.add(image_path=path, subject=person))
out["listed"] = faces.list()
# The SDK's verify: POST /faces/{image_id}/verify with the probe, against Obama's first face
# and Biden's (it answered 404 before).
firsts = {a["subject"]: a["image_id"] for a in reversed(out["added"])}
out["verify"] = {person: faces.verify(ARGS["verify_probe"], firsts[person], options={
    "limit": 0, "det_prob_threshold": 0.8, "face_plugins": "landmarks", "status": "true"})
    for person in ("obama", "biden")}
for probe in ARGS["probes"]:
    answer = service.recognize(image_path=probe, options={
        "limit": 0, "det_prob_threshold": 0.8, "prediction_count": 1,
        "face_plugins": "age,gender", "status": "false"})
    out["recognized"][probe] = answer
out["subjects"] = subjects.list()
out["add_subject"] = subjects.add("stranger")
out["update"] = subjects.update("stranger", "visitor")
out["subjects_after_update"] = subjects.list()
out["delete_subject"] = subjects.delete("visitor")
out["delete_faces"] = faces.delete_all("biden")
out["delete_one"] = faces.delete(out["added"][0]["image_id"])
out["delete_all"] = subjects.delete_all()
print(json.dumps(out))
"""


def test_compreface_sdk_recognises_with_options_and_manages_subjects(
    server: Server, people_dir: Path, probes: list[Probe]
) -> None:
    domain, port = server.url.rsplit(":", 1)
    people = photos(people_dir)
    result = run_client(
        "compreface-sdk",
        COMPREFACE_SDK,
        domain=domain,
        port=port,
        people=people,
        probes=[str(p.file) for p in probes],
        verify_probe=str(next(p.file for p in probes if p.file.name == "obama1.jpg")),
    )
    total = sum(len(files) for files in people.values())
    assert len(result["added"]) == total
    assert all(a["image_id"].isdigit() for a in result["added"]), result["added"]
    assert result["listed"]["total_elements"] == total
    # compreface-sdk's faces.verify: the probe's one face is Obama's, not Biden's.
    (same,) = result["verify"]["obama"]["result"]
    (other,) = result["verify"]["biden"]["result"]
    assert same["subject"] == "obama" and same["similarity"] >= 0.70, result["verify"]
    assert other["subject"] == "biden" and other["similarity"] <= 0.35, result["verify"]
    assert len(same["landmarks"]) == 5 and "plugins_versions" in result["verify"]["obama"]
    for probe, names in expected(probes).items():
        answer = result["recognized"][probe]
        # Double Take's reading: a name at 40 % similarity and above, else unknown.
        seen = sorted(
            f["subjects"][0]["subject"] if f["subjects"][0]["similarity"] >= 0.40 else "unknown"
            for f in answer["result"]
        )
        assert seen == names, (probe, answer)
    assert result["subjects"] == {"subjects": sorted(people)}
    assert result["add_subject"] == {"subject": "stranger"}
    assert result["update"] == {"updated": True}
    assert "visitor" in result["subjects_after_update"]["subjects"]
    assert result["delete_subject"] == {"subject": "visitor"}
    assert result["delete_faces"] == {"deleted": len(people["biden"])}
    assert result["delete_one"]["image_id"] == result["added"][0]["image_id"]
    assert result["delete_all"] == {"deleted": len(people)}


# -- keyless bodies are refused without being read ------------------------------------------

BODY_BYTES = 20_000_000  # under FACELENS_MAX_BODY_BYTES: nothing refuses it by its size
BOUNDARY = "x7Tq"


def field(name: str, value: bytes, filename: str | None = None) -> bytes:
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"'
    if filename is not None:
        head += f'; filename="{filename}"'
    return head.encode() + b"\r\n\r\n" + value + b"\r\n"


def post(
    url: str, path: str, sent: bytes, *, length: int, headers: dict[str, str], rest: bytes = b""
) -> tuple[int, dict[str, object]]:
    """POST announcing a body of ``length`` bytes, of which ``sent`` goes at once and ``rest``
    from a thread; the answer (status, JSON) as soon as it comes: while the rest is sent or,
    with no rest, while the server still waits for the bytes it was promised."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {length}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    with socket.create_connection((host, int(port)), timeout=120) as sock:
        sock.sendall(head.encode() + sent)

        def send_rest() -> None:
            with contextlib.suppress(OSError):  # the server answered and closed the connection
                sock.sendall(rest)

        sender = threading.Thread(target=send_rest, daemon=True)
        sender.start()
        answer = b""
        while not _complete(answer):
            data = sock.recv(65536)
            assert data, f"the server closed the connection without an answer: {answer!r}"
            answer += data
        sender.join(timeout=120)
    head_bytes, _, body = answer.partition(b"\r\n\r\n")
    return int(head_bytes.split()[1]), json.loads(body)


def _complete(answer: bytes) -> bool:
    head, found, body = answer.partition(b"\r\n\r\n")
    if not found:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    raise AssertionError(f"an answer without Content-Length: {answer!r}")


def test_keyless_bodies_are_refused_after_at_most_the_key_scan_cap(
    tmp_path: Path, probes: list[Probe]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    store = KeyStore(data / "gallery.sqlite3")
    _, key = store.create("nvr")
    store.close()
    cap = Settings.model_fields["compat_key_scan_bytes"].default
    form = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
    end = f"--{BOUNDARY}--\r\n".encode()
    running = Server(data)
    try:
        # A 20 MB form whose key would come last: only the first cap bytes and one chunk more
        # are sent, so the server must answer on those (before, it waited for the rest).
        image = field("image", b"\xff\xd8\xff" + bytes(BODY_BYTES), "a.jpg")
        status, answer = post(
            running.url,
            "/v1/vision/face/recognize",
            image[: cap + 65536],
            length=BODY_BYTES,
            headers=form,
        )
        assert status == 401 and answer["success"] is False, answer
        assert "FACELENS_COMPAT_KEY_SCAN_BYTES" in str(answer["error"])
        # CompreFace and KServe take their key as a header: checked before any of the body.
        for path in ("/api/v1/recognition/recognize", "/v2/models/face-detect/infer"):
            status, answer = post(running.url, path, b"", length=BODY_BYTES, headers=form)
            assert status in (400, 401) and answer, (path, status, answer)
        # 20 MB of tiny fields and no key (seconds of parsing before): refused at once.
        tiny = b"".join(field(f"f{n}", b"x") for n in range(BODY_BYTES // 64)) + end  # 19 MB
        before = cpu_seconds(running.process.pid)
        status, answer = post(
            running.url,
            "/v1/vision/face/recognize",
            tiny[:65536],
            rest=tiny[65536:],
            length=len(tiny),
            headers=form,
        )
        spent = cpu_seconds(running.process.pid) - before
        assert status == 401 and answer["success"] is False, answer
        assert spent < 1.0, f"the server spent {spent:.2f} s of CPU on a keyless form"
        # A keyed client is served, its key before the photo (deepstack-python) or after it
        # (Double Take), the photo arriving in many chunks.
        probe = next(p for p in probes if p.file.name == "obama_and_biden.jpg")
        jpeg = probe.file.read_bytes()
        key_part = field("api_key", key.encode())
        for body in (
            key_part + field("image", jpeg, "s.jpg"),
            field("image", jpeg, "s.jpg") + key_part,
        ):
            status, answer = post(
                running.url,
                "/v1/vision/face/recognize",
                body + end,
                length=len(body + end),
                headers=form,
            )
            faces = answer["predictions"]
            assert status == 200 and isinstance(faces, list), answer
            assert len(faces) == len(probe.expected)  # none of them enrolled: all "unknown"
    finally:
        running.stop()
