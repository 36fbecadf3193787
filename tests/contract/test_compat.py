"""The DeepStack / CodeProject.AI and CompreFace routes, in-process with the colour model.

The golden tests replay byte for byte what Double Take sends for its ``deepstack``, ``aiserver``
and ``compreface`` detectors (``../shared/specs/compat-apis.md`` §1.2: axios with the form-data
package) and read the answers exactly as its ``normalize`` functions do. The real client
libraries from PyPI run against a real server in tests/integration/test_compat_clients.py.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from facelens.core.matching import NAMED_FLOOR, UNNAMED_CEILING, similarity
from facelens.models.base import Box
from facelens.settings import Settings
from tests.contract.conftest import key_store, served
from tests.support.fake_model import photo

# Every test here runs on both backends: the SQLite file, and a PostgreSQL database.
pytestmark = pytest.mark.usefixtures("backend")

RED, BLUE, GREEN = (200, 30, 30), (30, 30, 200), (30, 160, 30)
LEFT, RIGHT = Box(20, 40, 100, 120), Box(200, 40, 280, 140)
BOUNDARY = "--------------------------715931337512036452841230"
# Double Take's config defaults: a name at 40 % and above, a match at 60 % and above.
UNKNOWN_CONFIDENCE, MATCH_CONFIDENCE = 40, 60


@pytest.fixture(scope="module")
def api(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with served(tmp_path_factory.mktemp("compat")) as client:
        yield client


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[TestClient]:
    with served(tmp_path / "data") as client:
        yield client


def form_data(*parts: tuple[str, str | None, bytes]) -> tuple[bytes, dict[str, str]]:
    """A body as Node's form-data package writes it: (field, filename or None, content)."""
    chunks = []
    for name, filename, content in parts:
        head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"'
        if filename is not None:
            head += f'; filename="{filename}"\r\nContent-Type: image/jpeg'
        chunks.append(head.encode() + b"\r\n\r\n" + content + b"\r\n")
    body = b"".join(chunks) + f"--{BOUNDARY}--\r\n".encode()
    return body, {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


def deepstack_normalize(data: dict[str, Any], *, aiserver: bool = False) -> list[dict[str, Any]]:
    """Double Take's deepstack.js / aiserver.js ``normalize``: every field it reads."""
    if not data.get("success"):
        if aiserver and data.get("code") == 500 and data.get("error") == "No face found in image":
            return []
        return []
    out = []
    for obj in data.get("predictions") or []:
        confidence = round(obj["confidence"] * 100, 2)
        userid = obj.get("userid") or (obj.get("plate") if aiserver else None) or "unknown"
        box = {
            "top": obj["y_min"],
            "left": obj["x_min"],
            "width": obj["x_max"] - obj["x_min"],
            "height": obj["y_max"] - obj["y_min"],
        }
        out.append(
            {
                "name": userid.lower() if confidence >= UNKNOWN_CONFIDENCE else "unknown",
                "confidence": confidence,
                "match": userid != "unknown" and confidence >= MATCH_CONFIDENCE,
                "box": box,
            }
        )
    return out


def compreface_normalize(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Double Take's compreface.js ``normalize``: code 28 is "no face", other errors throw."""
    if not data.get("result"):
        if data.get("code") == 28:
            return []
        raise AssertionError(f"Double Take would throw: {data.get('message')}")
    out = []
    for obj in data["result"]:
        face = obj["subjects"][0]
        confidence = face["similarity"] * 100
        box = obj["box"]
        out.append(
            {
                "name": face["subject"].lower() if confidence >= UNKNOWN_CONFIDENCE else "unknown",
                "confidence": confidence,
                "match": confidence >= MATCH_CONFIDENCE,
                "box": {
                    "top": box["y_min"],
                    "left": box["x_min"],
                    "width": box["x_max"] - box["x_min"],
                    "height": box["y_max"] - box["y_min"],
                },
            }
        )
    return out


# -- the score mapping ---------------------------------------------------------------------


def test_similarity_keeps_named_faces_above_and_others_below_every_client_threshold() -> None:
    threshold = 0.5
    for distance in (0.0, 0.1, 0.3, 0.49, 0.5):
        assert NAMED_FLOOR <= similarity(distance, threshold, named=True) <= 1.0
    for distance in (0.2, 0.5, 0.51, 0.8, 2.0):
        assert 0.0 < similarity(distance, threshold, named=False) <= UNNAMED_CEILING
    # Monotone: closer is never lower.
    named = [similarity(d / 100, threshold, named=True) for d in range(0, 51)]
    assert named == sorted(named, reverse=True) and named[0] == 1.0
    assert similarity(0.5, threshold, named=True) == pytest.approx(NAMED_FLOOR)
    # Every usual client threshold falls in the gap: 0.40, 0.45, 0.5, 0.6, 0.67.
    assert UNNAMED_CEILING < 0.40 and NAMED_FLOOR > 0.67


# -- Double Take, byte for byte --------------------------------------------------------------


def test_double_take_deepstack_detector_trains_recognises_and_removes(fresh: TestClient) -> None:
    # Training: one image per request, api_key sent (empty key = keys off on the server).
    for colour_photo in (photo((RED, LEFT)), photo((RED, RIGHT))):
        body, headers = form_data(
            ("image", "1.jpg", colour_photo), ("userid", None, b"Ruby"), ("api_key", None, b"")
        )
        trained = fresh.post("/v1/vision/face/register", content=body, headers=headers)
        assert trained.status_code == 200 and trained.json()["success"] is True, trained.text
    # Two photos registered in two calls: both kept (DeepStack would keep only the last).
    assert len(fresh.get("/v1/people/Ruby").json()["faces"]) == 2

    body, headers = form_data(
        ("image", "snapshot.jpg", photo((RED, LEFT), (BLUE, RIGHT))), ("api_key", None, b"")
    )
    answer = fresh.post("/v1/vision/face/recognize", content=body, headers=headers)
    faces = sorted(deepstack_normalize(answer.json()), key=lambda f: f["box"]["left"])
    assert [(f["name"], f["match"]) for f in faces] == [("ruby", True), ("unknown", False)]
    assert faces[0]["box"] == {"top": 40, "left": 20, "width": 80, "height": 80}
    assert faces[0]["confidence"] == 100.0 and faces[1]["confidence"] == 0

    body, headers = form_data(("userid", None, b"ruby"), ("api_key", None, b""))
    removed = fresh.post("/v1/vision/face/delete", content=body, headers=headers)
    assert removed.json() == {"success": True, "duration": 0}
    # Removed under the identity rule ("ruby" is "Ruby"): the face is unknown at once.
    body, headers = form_data(("image", "snapshot.jpg", photo((RED, LEFT))))
    again = fresh.post("/v1/vision/face/recognize", content=body, headers=headers)
    assert [f["name"] for f in deepstack_normalize(again.json())] == ["unknown"]


def test_double_take_untrain_of_a_name_nobody_can_have_succeeds_deleting_nothing(
    fresh: TestClient,
) -> None:
    # Double Take's aiserver detector throws when its untrain (POST /delete) is refused; a
    # name over 200 characters (or with a '/') is no one's: success, as for an unknown name.
    body, headers = form_data(("image", "a.jpg", photo((GREEN, LEFT))), ("userid", None, b"gus"))
    assert fresh.post("/v1/vision/face/register", content=body, headers=headers).status_code == 200
    for userid in ("g" * 201, "gus/../gus", "gus\x00"):
        body, headers = form_data(("userid", None, userid.encode()))
        removed = fresh.post("/v1/vision/face/delete", content=body, headers=headers)
        assert removed.status_code == 200, (userid, removed.text)
        assert removed.json() == {"success": True, "duration": 0}
    assert fresh.get("/v1/people/gus").json()["face_count"] == 1  # nobody else was touched


def test_double_take_aiserver_detector_sends_no_key(fresh: TestClient) -> None:
    body, headers = form_data(("image", "a.jpg", photo((GREEN, LEFT))), ("userid", None, b"gus"))
    assert fresh.post("/v1/vision/face/register", content=body, headers=headers).status_code == 200
    # A photo with no face: success with no predictions (aiserver would throw on a non-2xx).
    body, headers = form_data(("image", "empty.jpg", photo()))
    empty = fresh.post("/v1/vision/face/recognize", content=body, headers=headers)
    assert empty.status_code == 200 and deepstack_normalize(empty.json(), aiserver=True) == []
    body, headers = form_data(("image", "b.jpg", photo((GREEN, RIGHT))))
    answer = fresh.post("/v1/vision/face/recognize", content=body, headers=headers)
    assert [f["name"] for f in deepstack_normalize(answer.json(), aiserver=True)] == ["gus"]


def test_double_take_compreface_detector_trains_recognises_and_removes(
    fresh: TestClient,
) -> None:
    key = {"x-api-key": "00000000-0000-0000-0000-000000000002"}
    body, headers = form_data(("file", "ruby.jpg", photo((RED, LEFT))))
    trained = fresh.post(
        "/api/v1/recognition/faces?subject=ruby", content=body, headers=headers | key
    )
    assert trained.status_code == 201 and trained.json()["subject"] == "ruby", trained.text
    assert trained.json()["image_id"].isdigit()

    # face_plugins is the literal "undefined" when not configured; axios appends its params.
    url = "/api/v1/recognition/recognize?face_plugins=undefined&det_prob_threshold=0.8"
    body, headers = form_data(("file", "snap.jpg", photo((RED, LEFT), (BLUE, RIGHT))))
    answer = fresh.post(url, content=body, headers=headers | key)
    assert answer.status_code == 200, answer.text
    faces = sorted(compreface_normalize(answer.json()), key=lambda f: f["box"]["left"])
    assert [(f["name"], f["match"]) for f in faces] == [("ruby", True), ("unknown", False)]

    # No face: code 28, which Double Take turns into "no result" instead of an error.
    body, headers = form_data(("file", "empty.jpg", photo()))
    empty = fresh.post(url, content=body, headers=headers | key)
    assert empty.status_code == 400 and empty.json()["code"] == 28
    assert compreface_normalize(empty.json()) == []

    removed = fresh.delete("/api/v1/recognition/faces?subject=ruby", headers=key)
    assert removed.json() == {"deleted": 1}
    # The subject stays, with no faces; a subject never trained deletes nothing, no error.
    assert fresh.get("/api/v1/recognition/subjects", headers=key).json() == {"subjects": ["ruby"]}
    assert fresh.delete("/api/v1/recognition/faces?subject=nobody", headers=key).json() == {
        "deleted": 0
    }


# -- DeepStack details -------------------------------------------------------------------------


def test_deepstack_finds_image_parts_by_their_bytes(api: TestClient) -> None:
    # deepstack-python: file "image", filename "image" (no extension), type text/plain.
    both = photo((RED, LEFT), (BLUE, RIGHT))
    files = {"image": ("image", both, "text/plain")}
    for path in ("/v1/vision/face", "/v1/vision/face/"):
        answer = api.post(path, files=files, data={"api_key": "", "min_confidence": "0.67"})
        assert answer.status_code == 200, answer.text
        predictions = answer.json()["predictions"]
        assert sorted(p["x_min"] for p in predictions) == [20, 200]
        assert all(p["confidence"] == pytest.approx(0.99) for p in predictions)
    # Above every detection's score: no face passes.
    strict = api.post("/v1/vision/face", files=files, data={"min_confidence": "1"})
    assert strict.json()["predictions"] == []


def test_deepstack_register_takes_every_file_part_and_appends(api: TestClient) -> None:
    # deepstack-sdk names its parts image<uuid4>; several photos in one call.
    files = {
        "image3f1c": ("image", photo((GREEN, LEFT)), "application/octet-stream"),
        "image9a2b": ("image", photo((GREEN, RIGHT), size=(400, 300)), "text/plain"),
        "image0000": ("image", photo(), "text/plain"),  # no face: listed, the rest kept
    }
    first = api.post("/v1/vision/face/register", files=files, data={"userid": "Gwen"})
    assert first.status_code == 200, first.text
    assert first.json()["message"] == "face added"
    assert [s["reason"] for s in first.json()["skipped"]] == ["no face found"]
    second = api.post(
        "/v1/vision/face/register",
        files={"image": ("x.png", photo((GREEN, Box(5, 5, 60, 60))), "image/png")},
        data={"userid": "gwen"},
    )
    assert second.json() == {"success": True, "message": "face updated", "duration": 0}
    assert api.get("/v1/people/Gwen").json()["face_count"] == 3
    listed = api.post("/v1/vision/face/list")  # no body, no Content-Type (CodeProject.AI)
    assert listed.status_code == 200 and "Gwen" in listed.json()["faces"]
    encoded = api.post(
        "/v1/vision/face/list",
        content=b"api_key=",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert encoded.json()["faces"] == listed.json()["faces"]


def test_deepstack_min_confidence_and_errors(api: TestClient) -> None:
    api.post("/v1/vision/face/register", files={"image": photo((RED, LEFT))}, data={"userid": "R"})
    image = {"image": photo((RED, LEFT))}
    # A named face scores at least 0.70: a stricter min_confidence than its score says unknown.
    loose = api.post("/v1/vision/face/recognize", files=image, data={"min_confidence": "0.45"})
    assert [p["userid"] for p in loose.json()["predictions"]] == ["R"]
    cases = {
        ("recognize", "abc"): "Invalid value for min_confidence",
        ("recognize", "1.5"): "min_confidence cannot be greater than 1",
    }
    for (route, value), message in cases.items():
        answer = api.post(f"/v1/vision/face/{route}", files=image, data={"min_confidence": value})
        assert answer.status_code == 400
        assert answer.json() == {"success": False, "error": message, "duration": 0, "code": 400}
    no_user = api.post("/v1/vision/face/register", files=image)
    assert (no_user.status_code, no_user.json()["error"]) == (400, "userid not specified")
    no_image = api.post("/v1/vision/face/recognize", data={"min_confidence": "0.5"})
    assert no_image.status_code == 400 and "No valid image file found" in no_image.json()["error"]
    not_image = api.post("/v1/vision/face/recognize", files={"image": ("a.jpg", b"hello")})
    assert not_image.status_code == 400 and not_image.json()["success"] is False
    nobody = api.post(
        "/v1/vision/face/register", files={"image": photo()}, data={"userid": "Nobody"}
    )
    assert nobody.status_code == 400 and nobody.json()["error"].startswith("no face detected")
    # A failed registration leaves no empty person behind; deleting an unknown id succeeds.
    assert api.get("/v1/people/Nobody").status_code == 404
    gone = api.post("/v1/vision/face/delete", data={"userid": "Nobody"})
    assert gone.json()["success"] is True


def test_deepstack_match_compares_two_images(api: TestClient) -> None:
    same = api.post(
        "/v1/vision/face/match",
        files={"image1": photo((BLUE, LEFT)), "image2": photo((BLUE, RIGHT))},
    )
    other = api.post(
        "/v1/vision/face/match",
        files={"image1": photo((BLUE, LEFT)), "image2": photo((GREEN, RIGHT))},
    )
    assert same.json()["similarity"] == 1.0
    assert other.json()["similarity"] <= UNNAMED_CEILING
    one = api.post("/v1/vision/face/match", files={"image1": photo((BLUE, LEFT))})
    assert one.json()["error"] == "expected two image files, only 1 found"
    three = api.post(
        "/v1/vision/face/match", files={f"i{n}": photo((BLUE, LEFT)) for n in range(3)}
    )
    assert three.json()["error"] == "only two images allowed"


def test_deepstack_detect_and_recognize_refuse_two_images_instead_of_choosing(
    api: TestClient,
) -> None:
    # Recognising only the first part would answer for a photo the client may not have meant.
    body, headers = form_data(
        ("image", "front.jpg", photo((RED, LEFT))), ("image2", "back.jpg", photo((BLUE, LEFT)))
    )
    for route in ("", "/recognize"):
        answer = api.post(f"/v1/vision/face{route}", content=body, headers=headers)
        assert answer.status_code == 400, answer.text
        assert answer.json()["success"] is False and answer.json()["code"] == 400
        assert "2 image parts ('front.jpg', 'back.jpg')" in answer.json()["error"]


# -- CompreFace details ------------------------------------------------------------------------


def test_compreface_recognize_options(fresh: TestClient) -> None:
    api = fresh
    api.post("/api/v1/recognition/faces?subject=Blue", files={"file": photo((BLUE, LEFT))})
    api.post("/api/v1/recognition/faces?subject=Green", files={"file": photo((GREEN, LEFT))})
    both = photo((BLUE, Box(10, 10, 50, 50)), (GREEN, Box(100, 10, 200, 110)))
    # The SDK's query string starts "?&"; its part is "file", filename image.jpg, text/plain.
    url = (
        "/api/v1/recognition/recognize?&limit=1&det_prob_threshold=0.8&prediction_count=2"
        "&status=true&face_plugins=age,gender,landmarks,calculator"
    )
    answer = api.post(url, files={"file": ("image.jpg", both, "text/plain")})
    assert answer.status_code == 200, answer.text
    (face,) = answer.json()["result"]  # limit=1: the largest face
    assert face["box"]["x_min"] == 100 and face["box"]["probability"] == pytest.approx(0.99)
    assert [s["subject"] for s in face["subjects"]] == ["Green", "Blue"]
    assert face["subjects"][0]["similarity"] == 1.0
    assert face["subjects"][1]["similarity"] <= UNNAMED_CEILING
    assert len(face["landmarks"]) == 5 and len(face["embedding"]) == 128
    assert "age" not in face and "execution_time" in face
    assert "plugins_versions" in answer.json()
    # JSON with base64, as the API also takes.
    as_json = api.post(
        "/api/v1/recognition/recognize", json={"file": base64.b64encode(both).decode()}
    )
    assert len(as_json.json()["result"]) == 2
    # Above every detection's score: no face, code 28.
    none = api.post("/api/v1/recognition/recognize?det_prob_threshold=1", files={"file": both})
    assert none.json() == {"message": "No face is found in the given image", "code": 28}


def test_compreface_faces_pages_and_deletes_by_id(fresh: TestClient) -> None:
    base = "/api/v1/recognition"
    ids = []
    for n, colour in enumerate((RED, RED, BLUE)):
        added = fresh.post(
            f"{base}/faces?subject={'red' if colour == RED else 'blue'}",
            files={"file": photo((colour, Box(10 + n, 10, 60 + n, 60)))},
        )
        assert added.status_code == 201, added.text
        ids.append(added.json()["image_id"])
    page = fresh.get(f"{base}/faces?page=1&size=2").json()
    assert page["total_elements"] == 3 and page["total_pages"] == 2 and page["page_number"] == 1
    assert page["faces"] == [{"image_id": ids[2], "subject": "blue"}]
    only_red = fresh.get(f"{base}/faces?subject=red").json()
    assert [f["image_id"] for f in only_red["faces"]] == ids[:2]
    # Face ids are facelens's: the native API sees the same faces.
    native = fresh.get("/v1/people/red").json()["faces"]
    assert [str(f["id"]) for f in native] == ids[:2]
    # No photo is kept, but the face's thumbnail is: the red square with a margin around it.
    img = fresh.get(f"{base}/faces/{ids[0]}/img")
    assert img.status_code == 200 and img.headers["content-type"] == "image/jpeg"
    thumb = np.asarray(Image.open(io.BytesIO(img.content)).convert("RGB"), dtype=int)
    assert max(thumb.shape[:2]) <= 160
    centre = thumb[thumb.shape[0] // 2, thumb.shape[1] // 2]
    assert np.abs(centre - RED).max() < 40
    deleted = fresh.delete(f"{base}/faces/{ids[0]}", headers={"content-type": "application/json"})
    assert deleted.json() == {"image_id": ids[0], "subject": "red"}
    missing = fresh.delete(f"{base}/faces/{ids[0]}")
    assert missing.status_code == 404 and missing.json()["message"]
    bulk = fresh.post(f"{base}/faces/delete", json=[ids[1], "12345", ids[2]])
    assert bulk.json() == [
        {"image_id": ids[1], "subject": "red"},
        {"image_id": ids[2], "subject": "blue"},
    ]
    assert fresh.get(f"{base}/faces").json()["total_elements"] == 0
    # Found by schemathesis: digits that are not ASCII ("²") are no id, and ids are strings.
    assert fresh.delete(f"{base}/faces/\u00b2\u00b2").status_code == 404
    assert fresh.post(f"{base}/faces/delete", json=[True]).status_code == 400
    # /faces/delete is a path of its own: Allow lists its methods, not those of /faces/{id}.
    assert fresh.options(f"{base}/faces/delete").headers["allow"] == "POST"


def test_compreface_blank_subject_deletes_nothing_and_no_subject_deletes_all(
    fresh: TestClient,
) -> None:
    base = "/api/v1/recognition/faces"
    for subject, colour in (("red", RED), ("blue", BLUE)):
        fresh.post(f"{base}?subject={subject}", files={"file": photo((colour, LEFT))})
    # Blank is not absent: an empty form field or template must not wipe every person's faces.
    for query in ("?subject=", "?subject=%20%20", "?subject"):
        blank = fresh.delete(f"{base}{query}")
        assert blank.status_code == 400, (query, blank.text)
        assert blank.json()["code"] == 26 and "Subject name is empty" in blank.json()["message"]
    assert fresh.get(base).json()["total_elements"] == 2
    # No subject at all is "every face", as CompreFace documents it.
    assert fresh.delete(base).json() == {"deleted": 2}


def test_compreface_bulk_delete_takes_at_most_a_thousand_ids(fresh: TestClient) -> None:
    base = "/api/v1/recognition/faces"
    face = fresh.post(f"{base}?subject=red", files={"file": photo((RED, LEFT))}).json()
    many = [face["image_id"]] + [str(n) for n in range(10**6, 10**6 + 1000)]
    refused = fresh.post(f"{base}/delete", json=many)
    assert refused.status_code == 400 and refused.json()["code"] == 26
    assert "at most 1000" in refused.json()["message"]
    assert fresh.get(base).json()["total_elements"] == 1  # nothing deleted
    deleted = fresh.post(f"{base}/delete", json=many[:1000])
    assert deleted.json() == [{"image_id": face["image_id"], "subject": "red"}]


def test_compreface_subjects_crud_and_merge(fresh: TestClient) -> None:
    base = "/api/v1/recognition/subjects"
    json_type = {"content-type": "application/json"}
    assert fresh.post(base, json={"subject": "bob"}).json() == {"subject": "bob"}
    exists = fresh.post(base, json={"subject": "Bob"})
    assert exists.status_code == 400 and exists.json()["code"] == 43
    fresh.post("/api/v1/recognition/faces?subject=ann", files={"file": photo((RED, LEFT))})
    # The SDK's PUT body carries api_endpoint too: extra fields are ignored.
    renamed = fresh.put(f"{base}/bob", json={"subject": "rob", "api_endpoint": "bob"})
    assert renamed.json() == {"updated": True}
    # Renaming onto an existing subject merges them.
    fresh.put(f"{base}/ann", json={"subject": "rob"})
    assert fresh.get(f"{base}/", headers=json_type).json() == {"subjects": ["rob"]}
    assert fresh.get("/v1/people/rob").json()["face_count"] == 1
    missing = fresh.delete(f"{base}/nobody", headers=json_type)
    assert missing.status_code == 404 and missing.json()["code"] == 42
    assert fresh.delete(f"{base}/rob").json() == {"subject": "rob"}
    fresh.post(base, json={"subject": "x"})
    fresh.post(base, json={"subject": "y"})
    assert fresh.delete(f"{base}/", headers=json_type).json() == {"deleted": 2}
    bad = fresh.post(base, content=b"{", headers=json_type)
    assert bad.status_code == 400 and bad.json()["code"] == 26


def test_compreface_verify_compares_a_photos_faces_with_one_stored_face(
    fresh: TestClient,
) -> None:
    base = "/api/v1/recognition"
    ruby = fresh.post(f"{base}/faces?subject=Ruby", files={"file": photo((RED, LEFT))})
    image_id = ruby.json()["image_id"]
    both = photo((RED, LEFT), (BLUE, RIGHT))
    # compreface-sdk's faces.verify: multipart "file", the query starting "?&".
    url = f"{base}/faces/{image_id}/verify?&limit=0&status=true&face_plugins=landmarks"
    answer = fresh.post(url, files={"file": ("image.jpg", both, "text/plain")})
    assert answer.status_code == 200, answer.text
    faces = sorted(answer.json()["result"], key=lambda f: f["box"]["x_min"])
    assert [f["subject"] for f in faces] == ["Ruby", "Ruby"]
    assert faces[0]["similarity"] == 1.0 and faces[1]["similarity"] <= UNNAMED_CEILING
    assert len(faces[0]["landmarks"]) == 5 and "execution_time" in faces[0]
    assert "plugins_versions" in answer.json()
    # JSON with base64; limit=1 keeps the largest face (the blue one).
    as_json = fresh.post(
        f"{base}/faces/{image_id}/verify?limit=1", json={"file": base64.b64encode(both).decode()}
    )
    (largest,) = as_json.json()["result"]
    assert largest["box"]["x_min"] == 200 and largest["similarity"] <= UNNAMED_CEILING
    # No such face: 404, code 24; no face in the photo: code 28.
    for missing in ("999", "x"):
        gone = fresh.post(f"{base}/faces/{missing}/verify", files={"file": both})
        assert (gone.status_code, gone.json()["code"]) == (404, 24), gone.text
    empty = fresh.post(f"{base}/faces/{image_id}/verify", files={"file": photo()})
    assert (empty.status_code, empty.json()["code"]) == (400, 28)


def test_compreface_embeddings_recognise_and_verify_what_the_calculator_answers(
    fresh: TestClient,
) -> None:
    base = "/api/v1/recognition"
    fresh.post(f"{base}/faces?subject=Ruby", files={"file": photo((RED, LEFT))})
    blue = fresh.post(f"{base}/faces?subject=Bo", files={"file": photo((BLUE, LEFT))})
    calculated = fresh.post(
        f"{base}/recognize?face_plugins=calculator",
        files={"file": photo((RED, LEFT), (GREEN, RIGHT))},
    ).json()["result"]
    red, green = (f["embedding"] for f in sorted(calculated, key=lambda f: f["box"]["x_min"]))
    # Each embedding on its own: two of Ruby's are both Ruby's (not one per photo).
    named = fresh.post(
        f"{base}/embeddings/recognize?prediction_count=2", json={"embeddings": [red, green, red]}
    )
    assert named.status_code == 200, named.text
    rows = named.json()["result"]
    assert [r["embedding"] for r in rows] == [red, green, red]
    assert rows[0]["similarities"][0]["subject"] == "Ruby" == rows[2]["similarities"][0]["subject"]
    assert (
        rows[0]["similarities"][0]["similarity"] == 1.0 == rows[2]["similarities"][0]["similarity"]
    )
    assert len(rows[0]["similarities"]) == 2  # prediction_count
    assert rows[1]["similarities"][0]["similarity"] <= UNNAMED_CEILING  # a stranger's nearest
    verified = fresh.post(
        f"{base}/embeddings/faces/{blue.json()['image_id']}/verify",
        json={"embeddings": [red, green]},
    )
    assert verified.status_code == 200, verified.text
    assert [r["embedding"] for r in verified.json()["result"]] == [red, green]
    assert all(r["similarity"] <= UNNAMED_CEILING for r in verified.json()["result"])
    # Not this model's embeddings, or not embeddings at all: 400, code 26, said why.
    zeros, huge = [0.0] * len(red), [1e300] * len(red)  # no direction; overflows
    for body in (
        {"embeddings": [red[:10]]},
        {"embeddings": []},
        {"embedding": red},
        [red],
        {"embeddings": [zeros]},
        {"embeddings": [red, huge]},
    ):
        refused = fresh.post(f"{base}/embeddings/recognize", json=body)
        assert (refused.status_code, refused.json()["code"]) == (400, 26), (body, refused.text)
    nan = fresh.post(
        f"{base}/embeddings/recognize",
        content=json.dumps({"embeddings": [[float("nan")] * len(red)]}),
        headers={"content-type": "application/json"},
    )
    assert nan.json()["code"] == 26 and "finite" in nan.json()["message"]
    gone = fresh.post(f"{base}/embeddings/faces/999/verify", json={"embeddings": [red]})
    assert (gone.status_code, gone.json()["code"]) == (404, 24)


def test_compreface_add_answers_the_subject_as_stored(fresh: TestClient) -> None:
    base = "/api/v1/recognition"
    # Padded, decomposed (NFD): stored trimmed and composed, and answered so.
    added = fresh.post(
        f"{base}/faces", params={"subject": "  Zoe\u0308  "}, files={"file": photo((RED, LEFT))}
    )
    assert added.status_code == 201, added.text
    assert added.json()["subject"] == "Zo\u00eb"
    assert fresh.get(f"{base}/subjects").json() == {"subjects": ["Zo\u00eb"]}
    again = fresh.post(
        f"{base}/faces", params={"subject": "ZO\u00cb"}, files={"file": photo((RED, RIGHT))}
    )
    assert again.json()["subject"] == "Zo\u00eb"
    assert fresh.get(f"{base}/faces").json()["faces"] == [
        {"image_id": added.json()["image_id"], "subject": "Zo\u00eb"},
        {"image_id": again.json()["image_id"], "subject": "Zo\u00eb"},
    ]


def test_compreface_an_unreadable_image_is_code_28_on_every_route(fresh: TestClient) -> None:
    # As in CompreFace, whose API answers 28 for every image its face service refuses.
    base = "/api/v1/recognition"
    broken = ("image.jpg", b"\xff\xd8\xff\xe0 not really a jpeg", "text/plain")
    fresh.post(f"{base}/faces?subject=Ruby", files={"file": photo((RED, LEFT))})
    image_id = fresh.get(f"{base}/faces").json()["faces"][0]["image_id"]
    for url in (
        f"{base}/recognize",
        f"{base}/faces?subject=newcomer",
        f"{base}/faces/{image_id}/verify",
    ):
        answer = fresh.post(url, files={"file": broken})
        assert (answer.status_code, answer.json()["code"]) == (400, 28), (url, answer.text)
        assert "No face" not in answer.json()["message"]  # the message says what was wrong
    assert fresh.get(f"{base}/subjects").json() == {"subjects": ["Ruby"]}  # nobody added


# -- keys ----------------------------------------------------------------------------------------


def test_keys_form_field_header_and_open_networks(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _, key = key_store(data).create("nvr")
    image = {"image": photo((RED, LEFT))}
    with served(data) as api:
        assert api.post("/v1/vision/face", files=image, data={"api_key": key}).status_code == 200
        assert api.post("/v1/vision/face", files=image, headers={"X-API-Key": key}).is_success
        wrong = api.post("/v1/vision/face", files=image, data={"api_key": "nope"})
        assert wrong.status_code == 401 and wrong.json()["success"] is False
        empty = api.post("/v1/vision/face", files=image, data={"api_key": ""})
        assert empty.status_code == 401
        cf = api.get("/api/v1/recognition/subjects")
        assert (cf.status_code, cf.json()["code"]) == (400, 20)
        cf_wrong = api.get("/api/v1/recognition/subjects", headers={"x-api-key": "nope"})
        assert (cf_wrong.status_code, cf_wrong.json()["code"]) == (404, 10)
        assert api.get("/api/v1/recognition/subjects", headers={"x-api-key": key}).is_success
    lan = ("192.168.1.20", 40000)
    with served(data, client=lan, compat_open_networks="192.168.1.0/24") as api:
        # CodeProject.AI clients send no key: served from the open network, compat routes only.
        assert api.post("/v1/vision/face", files=image).status_code == 200
        assert api.get("/api/v1/recognition/subjects").status_code == 200
        assert api.get("/v1/people").status_code == 401
        # A wrong key is still wrong.
        assert api.post("/v1/vision/face", files=image, data={"api_key": "x"}).status_code == 401
    with served(data, client=("10.0.0.9", 40000), compat_open_networks="192.168.1.0/24") as api:
        assert api.post("/v1/vision/face", files=image).status_code == 401


def test_deepstack_key_is_checked_before_the_form_is_read(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _, key = key_store(data).create("nvr")
    cap = Settings.model_fields["compat_key_scan_bytes"].default
    with served(data) as api:
        # Double Take's deepstack detector with a key: its api_key field comes after the image.
        body, headers = form_data(
            ("image", "1.jpg", photo((RED, LEFT))),
            ("userid", None, b"Ruby"),
            ("api_key", None, key.encode()),
        )
        trained = api.post("/v1/vision/face/register", content=body, headers=headers)
        assert trained.status_code == 200, trained.text
        body, headers = form_data(
            ("image", "s.jpg", photo((RED, LEFT))), ("api_key", None, key.encode())
        )
        answer = api.post("/v1/vision/face/recognize", content=body, headers=headers)
        assert [f["name"] for f in deepstack_normalize(answer.json())] == ["ruby"]
        # deepstack-python's list: urlencoded "api_key=<key>"; a wrong one is still wrong.
        for sent, status in ((key, 200), ("nope", 401), ("", 401)):
            listed = api.post(
                "/v1/vision/face/list",
                content=f"api_key={sent}".encode(),
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
            assert listed.status_code == status, listed.text
        # A key that comes only after more than the first FACELENS_COMPAT_KEY_SCAN_BYTES is
        # not waited for: the server does not read (nor parse) a keyless body to its end.
        body, headers = form_data(
            ("image", "big.jpg", b"\xff\xd8\xff" + bytes(cap)), ("api_key", None, key.encode())
        )
        late = api.post("/v1/vision/face/recognize", content=body, headers=headers)
        assert late.status_code == 401 and late.json()["success"] is False
        assert "FACELENS_COMPAT_KEY_SCAN_BYTES" in late.json()["error"]
        # A body that is no form cannot hold the field: refused without reading it.
        raw = api.post(
            "/v1/vision/face/recognize",
            content=photo((RED, LEFT)),
            headers={"content-type": "image/png"},
        )
        assert raw.status_code == 401
        # The header is checked before the body: a wrong key gets 401, whatever the body.
        broken = {"content-type": "multipart/form-data; boundary=x", "X-API-Key": "nope"}
        wrong = api.post("/v1/vision/face/recognize", content=b"garbage", headers=broken)
        assert wrong.status_code == 401, wrong.text
        right = api.post(
            "/v1/vision/face/recognize",
            files={"image": photo((RED, LEFT))},
            headers={"X-API-Key": key},
        )
        assert [p["userid"] for p in right.json()["predictions"]] == ["Ruby"]


def test_compreface_verify_and_embedding_routes_need_only_the_recognize_scope(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    store = key_store(data)
    _, enrol = store.create("trainer", frozenset({"enrol"}))
    _, reader = store.create("viewer", frozenset({"recognize"}))
    base = "/api/v1/recognition"
    with served(data) as api:
        added = api.post(
            f"{base}/faces?subject=Ruby",
            files={"file": photo((RED, LEFT))},
            headers={"x-api-key": enrol},
        )
        image_id = added.json()["image_id"]
        key = {"x-api-key": reader}
        embedding = api.post(
            f"{base}/recognize?face_plugins=calculator",
            files={"file": photo((RED, LEFT))},
            headers=key,
        ).json()["result"][0]["embedding"]
        for path, kwargs in (
            (f"{base}/faces/{image_id}/verify", {"files": {"file": photo((RED, LEFT))}}),
            (f"{base}/embeddings/recognize", {"json": {"embeddings": [embedding]}}),
            (f"{base}/embeddings/faces/{image_id}/verify", {"json": {"embeddings": [embedding]}}),
        ):
            answer = api.post(path, headers=key, **kwargs)  # type: ignore[arg-type]
            assert answer.status_code == 200, (path, answer.text)
        # Changing the gallery still needs enrol.
        refused = api.post(
            f"{base}/faces?subject=Bo", files={"file": photo((BLUE, LEFT))}, headers=key
        )
        assert refused.status_code == 403, refused.text


# -- KServe (Open Inference Protocol) -------------------------------------------------------------


def test_kserve_client_mistakes_answer_4xx_in_the_protocols_shape(api: TestClient) -> None:
    image = {"name": "image", "datatype": "BYTES", "shape": [1], "data": ["aGk="]}
    deep = "[" * 900 + '"aGk="' + "]" * 900
    head = (
        b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": %s, ' % str([1] * 100).encode()
        + b'"parameters": {"binary_data_size": 4}}]}'
    )
    cases = [
        (
            b'{"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": '
            + deep.encode()
            + b"}]}",
            {},
        ),
        (head + b"\0\0\0\0", {"inference-header-content-length": str(len(head))}),
        (b'{"inputs": [{"name": "x", "datatype": "INT8", "shape": [1], "data": [300]}]}', {}),
        (json_bytes({"inputs": [image, image]}), {}),
    ]
    for body, headers in cases:
        answer = api.post("/v2/models/face-detect/infer", content=body, headers=headers)
        assert 400 <= answer.status_code < 500, answer.text
        assert list(answer.json()) == ["error"] and answer.json()["error"], answer.text
    twice = api.post("/v2/models/face-detect/infer", content=json_bytes({"inputs": [image] * 2}))
    assert "input 'image' twice" in twice.json()["error"]


def json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


def test_every_api_names_faces_in_the_worker_never_in_the_http_process(fresh: TestClient) -> None:
    # One recognition path: /v1, /predictor, DeepStack, CompreFace and KServe all ask a worker
    # to name faces against its own gallery index. The HTTP process's index is made unusable
    # here: every naming route must still answer, and name the same face the same way.
    body = {"userid": "R"}
    fresh.post("/v1/vision/face/register", files={"image": photo((RED, LEFT))}, data=body)
    gallery = fresh.app.state.services.gallery  # type: ignore[attr-defined]

    def no_index() -> None:
        raise AssertionError("faces were named in the HTTP process")

    gallery.index = no_index
    image = photo((RED, LEFT), (BLUE, RIGHT))
    v1 = fresh.post("/v1/recognize", files={"image": image}).json()
    assert sorted(f["name"] for f in v1["faces"]) == ["R", "unknown"]
    predictor = fresh.post("/predictor", content=base64.b64encode(image))
    assert predictor.status_code == 200
    deepstack = fresh.post("/v1/vision/face/recognize", files={"image": image}).json()
    assert sorted(p["userid"] for p in deepstack["predictions"]) == ["R", "unknown"]
    compreface = fresh.post(
        "/api/v1/recognition/recognize?prediction_count=2&limit=1", files={"file": image}
    ).json()
    ((face,),) = [compreface["result"]]  # limit=1: the larger face only (BLUE's box)
    assert [s["subject"] for s in face["subjects"]] == ["R"]
    assert face["subjects"][0]["similarity"] <= UNNAMED_CEILING
    vector = fresh.post("/v1/embed", files={"image": photo((RED, LEFT))}).json()
    embeddings = fresh.post(
        "/api/v1/recognition/embeddings/recognize",
        json={"embeddings": [vector["faces"][0]["embedding"]]},
    ).json()
    assert embeddings["result"][0]["similarities"][0]["subject"] == "R"
    assert embeddings["result"][0]["similarities"][0]["similarity"] >= NAMED_FLOOR
    kserve = fresh.post(
        "/v2/models/face-recognize/infer",
        json={
            "inputs": [
                {
                    "name": "image",
                    "shape": [1],
                    "datatype": "BYTES",
                    "data": [base64.b64encode(image).decode()],
                }
            ]
        },
    ).json()
    names = next(o for o in kserve["outputs"] if o["name"] == "names")["data"]
    assert sorted(names) == ["R", "unknown"]


@pytest.mark.parametrize("threshold", [0, -100, 4.5])
def test_kserve_refuses_a_recognition_threshold_that_is_no_distance(
    fresh: TestClient, threshold: float
) -> None:
    # 0 named only a face at distance exactly 0 and then divided by it; -100 overflowed the
    # confidence curve: both were a 500.
    body = {"userid": "R"}
    fresh.post("/v1/vision/face/register", files={"image": photo((RED, LEFT))}, data=body)
    image = base64.b64encode(photo((RED, LEFT))).decode()
    answer = fresh.post(
        "/v2/models/face-recognize/infer",
        json={
            "inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [image]}],
            "parameters": {"threshold": threshold},
        },
    )
    assert answer.status_code == 422, answer.text
    assert "above 0 and at most 4" in answer.json()["error"]


def test_a_similarity_against_no_threshold_is_a_number_not_an_error() -> None:
    assert similarity(0.0, 0.0, named=True) == NAMED_FLOOR
    assert similarity(0.3, 0.0, named=False) == 0.0
