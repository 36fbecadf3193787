"""The people in the gallery are the people the user meant, against a real server and model:
a person is created only with a face, one person under two names is merged (and the review
offers only the fix the faces support), and verify shows and takes the faces it compares."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.support.helpers import png_header_only
from tests.support.server import Server

pytestmark = pytest.mark.integration

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("people") / "data")
    try:
        yield running
    finally:
        running.stop()


def blank_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (200, 200), "white").save(buffer, "PNG")
    return buffer.getvalue()


def test_a_person_is_created_only_with_a_face_and_each_photo_says_why(
    server: Server, people_dir: Path
) -> None:
    """The console's "Add person" with a PDF, a photo too large to decode and one without a
    face left an empty person behind: now nobody is created, and each photo says why."""
    c = server.client
    bad = [
        ("images", ("scan.pdf", PDF, "application/pdf")),
        ("images", ("huge.png", png_header_only(60_000, 60_000), "image/png")),
        ("images", ("blank.png", blank_png(), "image/png")),
    ]
    refused = c.post("/v1/people", data={"name": "Ada"}, files=bad)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "nothing_enrolled"
    assert "'Ada' was not created" in refused.json()["error"]["message"]
    reasons = {r["image"]: r["reason"] for r in refused.json()["results"]}
    assert set(reasons) == {"scan.pdf", "huge.png", "blank.png"}
    assert "not an image" in reasons["scan.pdf"] and "over the limit" in reasons["huge.png"]
    assert reasons["blank.png"] == "no face found"
    assert c.get("/v1/people/Ada").status_code == 404
    assert "Ada" not in [p["name"] for p in c.get("/v1/people").json()["people"]]

    obama = (people_dir / "obama" / "obama.jpg").read_bytes()
    created = c.post(
        "/v1/people", data={"name": "Ada"}, files=[*bad, ("images", ("obama.jpg", obama))]
    )
    assert created.status_code == 201, created.text
    answer = created.json()
    assert (answer["name"], answer["enrolled"], answer["face_count"]) == ("Ada", 1, 1)
    assert [r["status"] for r in answer["results"]] == ["skipped"] * 3 + ["enrolled"]
    assert c.get("/v1/people/Ada").json()["face_count"] == 1
    taken = c.post("/v1/people", data={"name": "ADA"}, files={"images": obama})
    assert taken.status_code == 409 and "same name as 'Ada'" in taken.text
    # A name alone still makes a person with no face, as asked (and the review flags them).
    empty = c.post("/v1/people", json={"name": "Nobody Yet"})
    assert empty.json() == {"name": "Nobody Yet", "face_count": 0}
    assert c.delete("/v1/people/Ada").status_code == 200


def test_adding_photos_can_create_the_person_but_never_empty(
    server: Server, people_dir: Path
) -> None:
    c = server.client
    refused = c.post("/v1/people/Joe/faces?create=true", files={"images": blank_png()})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "nothing_enrolled"
    assert c.get("/v1/people/Joe").status_code == 404
    assert c.post("/v1/people/Joe/faces", files={"images": blank_png()}).status_code == 404
    biden = (people_dir / "biden" / "biden.jpg").read_bytes()
    made = c.post("/v1/people/Joe/faces?create=true", files={"images": biden})
    assert made.status_code == 200 and made.json()["face_count"] == 1, made.text
    again = c.post("/v1/people/Joe/faces?create=true", files={"images": biden}).json()
    assert [r["status"] for r in again["results"]] == ["already_enrolled"]
    assert c.delete("/v1/people/Joe").status_code == 200


def test_the_review_offers_only_the_supported_move_then_a_merge_makes_one_person(
    server: Server, lfw_dir: Path
) -> None:
    """Tom Cruise's four photos under 'Tom Cruise' and a fifth under 'Cruise': the old review
    offered the right move (Cruise's face to Tom Cruise) and a wrong one (a face of the real
    four-face person to Cruise)."""
    c = server.client
    four = sorted((lfw_dir / "gallery" / "Tom_Cruise").iterdir())
    (fifth,) = sorted((lfw_dir / "probes").glob("Tom_Cruise_*"))
    files = [("images", (p.name, p.read_bytes())) for p in four]
    assert c.post("/v1/people", data={"name": "Tom Cruise"}, files=files).status_code == 201
    lone = c.post("/v1/people", data={"name": "Cruise"}, files={"images": fifth.read_bytes()})
    assert lone.status_code == 201, lone.text
    lone_face = lone.json()["results"][0]["face_ids"][0]

    findings = c.get("/v1/gallery/review").json()["findings"]
    about_them = [
        f for f in findings if {f["person"], f["other_person"]} & {"Cruise", "Tom Cruise"}
    ]
    assert [
        (f["kind"], f["person"], f["face_id"], f["fix"], f["other_person"]) for f in about_them
    ] == [("mismatch", "Cruise", lone_face, "move", "Tom Cruise")]
    assert ("empty", "Nobody Yet", None, "remove_person") in [
        (f["kind"], f["person"], f["face_id"], f["fix"]) for f in findings
    ]

    merge = {"from": "Cruise"}
    key = {"Idempotency-Key": "merge-cruise-1"}
    merged = c.post("/v1/people/Tom Cruise/merge", json=merge, headers=key)
    assert merged.status_code == 200, merged.text
    assert merged.json() == {
        "name": "Tom Cruise",
        "face_count": 5,
        "merged": "Cruise",
        "faces_moved": 1,
        "duplicates_dropped": 0,
    }
    replayed = c.post("/v1/people/Tom Cruise/merge", json=merge, headers=key)
    assert replayed.json() == merged.json() and replayed.headers["idempotent-replayed"] == "true"
    assert c.get("/v1/people/Cruise").status_code == 404
    faces = c.get("/v1/people/Tom Cruise").json()["faces"]
    assert lone_face in [f["id"] for f in faces]
    assert c.get(f"/v1/people/Tom Cruise/faces/{lone_face}/thumbnail").status_code == 200
    named = c.post("/v1/recognize", files={"image": fifth.read_bytes()}).json()["faces"]
    assert [f["name"] for f in named] == ["Tom Cruise"]
    after = c.get("/v1/gallery/review").json()["findings"]
    assert not [f for f in after if f["kind"] in ("mismatch", "same_person")]
    assert c.post("/v1/people/Tom Cruise/merge", json=merge).status_code == 404


def test_verify_answers_every_face_and_compares_the_one_chosen(
    server: Server, faces_dir: Path, people_dir: Path
) -> None:
    """Verify compared the largest face without saying which: now it answers every face's box
    and which was compared, and compares another when asked."""
    c = server.client
    pair = (faces_dir / "probes" / "two_people.jpg").read_bytes()
    obama = (people_dir / "obama" / "obama.jpg").read_bytes()
    files = {"first": pair, "second": obama}
    plain = c.post("/v1/verify", files=files).json()
    first, second = plain["images"]
    assert len(first["faces"]) == 2 and len(second["faces"]) == 1
    with Image.open(io.BytesIO(pair)) as shown:
        assert (first["width"], first["height"]) == shown.size
    areas = [(b["right"] - b["left"]) * (b["bottom"] - b["top"]) for b in first["faces"]]
    assert first["compared"] == areas.index(max(areas)) and second["compared"] == 0

    verdicts = []
    for index in range(2):
        chosen = c.post(f"/v1/verify?first_face={index}", files=files).json()
        assert chosen["images"][0]["compared"] == index
        verdicts.append(chosen["same_person"])
    assert sorted(verdicts) == [False, True]
    # And the other face is Biden's.
    biden = (people_dir / "biden" / "biden.jpg").read_bytes()
    other = verdicts.index(False)
    chosen = c.post(f"/v1/verify?first_face={other}", files={"first": pair, "second": biden})
    assert chosen.json()["same_person"] is True

    wrong = c.post("/v1/verify?second_face=1", files=files)
    assert wrong.status_code == 422 and "no face 1" in wrong.json()["error"]["message"]
