"""The HTTP contract in-process (FastAPI's TestClient) with the stand-in colour model: every
route, answer shape and error code in seconds. Real recognition: tests/integration."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from facelens.api.console import POLICY
from facelens.models.base import Box
from tests.contract.conftest import key_store, served, stored
from tests.support import fake_model
from tests.support.fake_model import photo
from tests.support.mqtt import wait_until
from tests.unit.test_storage import open_files

# Every test here runs on both backends: the SQLite file, and a PostgreSQL database.
pytestmark = pytest.mark.usefixtures("backend")

RED, BLUE, GREEN = (200, 30, 30), (30, 30, 200), (30, 160, 30)
LEFT, RIGHT = Box(20, 40, 100, 120), Box(200, 40, 280, 120)


@pytest.fixture(scope="module")
def api(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with served(tmp_path_factory.mktemp("api")) as client:
        yield client


def names(answer: object) -> list[str]:
    assert answer.status_code == 200, answer.text  # type: ignore[attr-defined]
    return sorted(f["name"] for f in answer.json()["faces"])  # type: ignore[attr-defined]


def test_enrol_then_recognise_rename_and_delete(api: TestClient) -> None:
    assert api.post("/v1/people", json={"name": "ruby"}).status_code == 201
    enrolled = api.post("/v1/people/ruby/faces", files={"images": photo((RED, LEFT))})
    assert enrolled.json()["results"][0]["status"] == "enrolled", enrolled.text
    both = photo((RED, LEFT), (BLUE, RIGHT))
    assert names(api.post("/v1/recognize", content=both)) == ["ruby", "unknown"]
    assert api.patch("/v1/people/ruby", json={"name": "Ruby Red"}).status_code == 200
    assert names(api.post("/v1/recognize", content=both)) == ["Ruby Red", "unknown"]
    assert api.delete("/v1/people/Ruby Red").json()["faces_removed"] == 1
    assert names(api.post("/v1/recognize", content=both)) == ["unknown", "unknown"]


def test_predictor_answers_the_annotated_image_as_base64(api: TestClient) -> None:
    answer = api.post("/predictor", content=base64.b64encode(photo((GREEN, LEFT))))
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    image = Image.open(io.BytesIO(base64.b64decode(answer.content)))
    assert (image.format, image.size) == ("JPEG", (320, 240))


def test_verify_same_and_different(api: TestClient) -> None:
    same = api.post(
        "/v1/verify", files={"first": photo((RED, LEFT)), "second": photo((RED, RIGHT))}
    )
    other = api.post(
        "/v1/verify", files={"first": photo((RED, LEFT)), "second": photo((BLUE, LEFT))}
    )
    assert same.json()["same_person"] is True and same.json()["distance"] < 1e-5
    assert other.json()["same_person"] is False


@pytest.mark.parametrize(
    ("request_args", "status", "code"),
    [
        (
            {
                "method": "POST",
                "url": "/v1/recognize",
                "content": b"junk",
                "headers": {"content-type": "image/png"},
            },
            400,
            "bad_image",
        ),
        ({"method": "POST", "url": "/predictor", "content": b"%%%"}, 400, "bad_base64"),
        ({"method": "GET", "url": "/v1/people/nobody"}, 404, "not_found"),
        (
            {
                "method": "POST",
                "url": "/v1/recognize",
                "content": b"x",
                "headers": {"content-type": "text/csv"},
            },
            415,
            "unsupported_media_type",
        ),
        ({"method": "POST", "url": "/v1/people", "json": {"name": "a/b"}}, 422, "invalid_value"),
        ({"method": "PUT", "url": "/v1/recognize"}, 405, "method_not_allowed"),
        (
            {
                "method": "POST",
                "url": "/v1/people",
                "headers": {"origin": "http://evil.test"},
                "json": {"name": "x"},
            },
            403,
            "cross_origin",
        ),
    ],
)
def test_errors_have_one_shape_and_their_status(
    api: TestClient, request_args: dict[str, object], status: int, code: str
) -> None:
    answer = api.request(**request_args)  # type: ignore[arg-type]
    assert answer.status_code == status, answer.text
    assert set(answer.json()) == {"error"} and answer.json()["error"]["code"] == code
    assert answer.json()["error"]["message"]


def test_a_taken_name_in_another_spelling_is_a_conflict(api: TestClient) -> None:
    assert api.post("/v1/people", json={"name": "Jade"}).status_code == 201
    clash = api.post("/v1/people", json={"name": "JADE"})
    assert clash.status_code == 409 and "same name as 'Jade'" in clash.json()["error"]["message"]


def test_readiness_says_which_model_and_how_many_workers(api: TestClient) -> None:
    ready = api.get("/readyz").json()
    assert ready["status"] == "ready" and ready["workers_ready"] == 1
    assert ready["model"] == fake_model.FAKE.id


def test_thumbnails_are_served_per_face_and_per_person(tmp_path: Path) -> None:
    with served(tmp_path / "on") as api:
        assert api.post("/v1/people", json={"name": "ruby"}).status_code == 201
        api.post("/v1/people/ruby/faces", files={"images": photo((RED, LEFT))})
        (face,) = api.get("/v1/people/ruby").json()["faces"]
        assert face["thumbnail"] is True
        assert api.get("/v1/people").json()["people"][0]["thumbnail_face_id"] == face["id"]
        answer = api.get(f"/v1/people/ruby/faces/{face['id']}/thumbnail")
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
        assert "private" in answer.headers["cache-control"]
        thumb = np.asarray(Image.open(io.BytesIO(answer.content)).convert("RGB"), dtype=int)
        assert np.abs(thumb[thumb.shape[0] // 2, thumb.shape[1] // 2] - RED).max() < 40
        assert api.get(f"/v1/people/nobody/faces/{face['id']}/thumbnail").status_code == 404
        assert api.get(f"/v1/people/ruby/faces/{face['id'] + 1}/thumbnail").status_code == 404
    with served(tmp_path / "off", face_thumbnails=False) as api:
        api.post("/v1/people", json={"name": "ruby"})
        api.post("/v1/people/ruby/faces", files={"images": photo((RED, LEFT))})
        (face,) = api.get("/v1/people/ruby").json()["faces"]
        assert face["thumbnail"] is False
        assert api.get("/v1/people").json()["people"][0]["thumbnail_face_id"] is None
        missing = api.get(f"/v1/people/ruby/faces/{face['id']}/thumbnail")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        assert stored(tmp_path / "off", "SELECT COUNT(*) FROM face_thumbnails") == [(0,)]


def test_review_finds_a_face_under_the_wrong_name_and_moving_it_fixes_that(
    tmp_path: Path,
) -> None:
    with served(tmp_path) as api:
        for name in ("ruby", "navy"):
            api.post("/v1/people", json={"name": name})
        for n in range(2):
            square = Box(10 + n, 10, 70, 70)
            api.post("/v1/people/ruby/faces", files={"images": photo((RED, square))})
            api.post("/v1/people/navy/faces", files={"images": photo((BLUE, square))})
        wrong = api.post(
            "/v1/people/ruby/faces", files={"images": photo((BLUE, Box(30, 30, 90, 90)))}
        ).json()["results"][0]["face_ids"][0]
        review = api.get("/v1/gallery/review").json()
        assert review["faces_reviewed"] == 5
        mismatches = [f for f in review["findings"] if f["kind"] == "mismatch"]
        assert [(f["person"], f["face_id"], f["fix"], f["other_person"]) for f in mismatches] == [
            ("ruby", wrong, "move", "navy")
        ]
        # The colour model's faces are identical per colour: the same "photo" twice.
        assert {f["kind"] for f in review["findings"]} >= {"duplicate"}
        moved = api.patch(f"/v1/people/ruby/faces/{wrong}", json={"to": "navy"})
        assert moved.json() == {"face_id": wrong, "to": "navy", "face_count": 3}
        after = api.get("/v1/gallery/review").json()["findings"]
        assert not [f for f in after if f["kind"] == "mismatch"]
        recognised = api.post("/v1/recognize", content=photo((BLUE, LEFT))).json()
        assert [f["name"] for f in recognised["faces"]] == ["navy"]
        gone = api.patch(f"/v1/people/ruby/faces/{wrong}", json={"to": "navy"})
        assert gone.status_code == 404
        nobody = api.patch(f"/v1/people/navy/faces/{wrong}", json={"to": "nobody"})
        assert nobody.status_code == 404


def test_the_console_page_is_served_with_a_strict_policy(api: TestClient) -> None:
    page = api.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    for asset, kind in (
        ("js/main.js", "javascript"),
        ("app.css", "css"),
        ("icon.svg", "svg"),
    ):
        answer = api.get(f"/console/{asset}")
        assert answer.status_code == 200 and kind in answer.headers["content-type"]
        assert f"/console/{asset}" in page.text
    assert api.get("/console/..%2Fapi%2Fapp.py").status_code == 400  # encoded slashes: refused
    assert api.get("/console/index.html").status_code == 404  # only the listed assets


def test_every_answer_forbids_framing_and_type_sniffing(api: TestClient) -> None:
    """/docs in a transparent frame of a hostile page turned two clicks into "delete every
    subject": no answer of the server may be framed, errors and the docs included."""
    answers = [
        api.get("/docs"),
        api.get("/redoc"),
        api.get("/openapi.json"),
        api.get("/v1/people"),
        api.get("/healthz"),
        api.get("/no/such/route"),
        api.post("/v1/recognize", content=b"not an image"),
        api.post("/v1/vision/face/recognize"),
        api.get("/api/v1/recognition/subjects"),
    ]
    for answer in answers:
        where = f"{answer.request.method} {answer.request.url.path}"
        assert answer.headers["x-frame-options"] == "DENY", where
        assert answer.headers["content-security-policy"] == "frame-ancestors 'none'", where
        assert answer.headers["x-content-type-options"] == "nosniff", where
    page = api.get("/")  # the console keeps its own, stricter policy: one of each header
    assert page.headers.get_list("content-security-policy") == [POLICY]
    assert page.headers.get_list("x-content-type-options") == ["nosniff"]


def test_key_scopes_limit_what_a_key_may_do(tmp_path: Path) -> None:
    """A recognize key cannot change people, an enrol key cannot add streams (a stream makes
    the server read a source), an admin key can do both; refusals are 403 with a clear code."""

    data = tmp_path / "data"
    store = key_store(data)
    keys = {scope: store.create(scope, frozenset({scope}))[1] for scope in ("recognize", "enrol")}
    keys["admin"] = store.create("admin", frozenset({"admin"}))[1]
    store.close()
    stream = {"id": "door", "source": "rtsp://camera.example/live"}
    with served(data) as api:

        def call(scope: str, method: str, path: str, **kwargs: object) -> int:
            headers = {"X-API-Key": keys[scope]}
            return api.request(method, path, headers=headers, **kwargs).status_code  # type: ignore[arg-type]

        assert call("recognize", "POST", "/v1/recognize", content=photo((RED, LEFT))) == 200
        assert call("recognize", "GET", "/v1/people") == 200
        refused = api.post(
            "/v1/people", json={"name": "ruby"}, headers={"X-API-Key": keys["recognize"]}
        )
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "forbidden"
        assert "'enrol' scope" in refused.json()["error"]["message"]
        assert call("enrol", "POST", "/v1/people", json={"name": "ruby"}) == 201
        assert call("enrol", "POST", "/v1/streams", json=stream) == 403
        assert call("enrol", "DELETE", "/v1/streams/door") == 403
        # Past the key check: this in-process server runs no streams (503), an admin may ask.
        assert call("admin", "POST", "/v1/streams", json=stream) == 503
        assert call("admin", "DELETE", "/v1/people/ruby") == 200
        # The compatibility APIs: recognising needs recognize, changing people enrol.
        image = {"image": ("face.png", photo((RED, LEFT)), "image/png")}
        cf = "/api/v1/recognition"
        assert call("recognize", "POST", f"{cf}/recognize", files={"file": image["image"]}) == 200
        assert call("recognize", "GET", f"{cf}/subjects") == 200
        assert call("recognize", "POST", f"{cf}/subjects", json={"subject": "x"}) == 403
        assert call("enrol", "POST", f"{cf}/subjects", json={"subject": "x"}) == 201
        ds = "/v1/vision/face"
        assert call("recognize", "POST", f"{ds}/recognize", files=image) == 200
        assert call("recognize", "POST", f"{ds}/register", files=image, data={"userid": "y"}) == 403
        assert call("recognize", "POST", f"{ds}/delete", data={"userid": "x"}) == 403
        assert call("enrol", "POST", f"{ds}/delete", data={"userid": "x"}) == 200
        # A subject named "recognize" is no recognition: renaming or deleting it changes the
        # gallery (before, any path ending in /recognize passed as a read).
        assert call("enrol", "POST", f"{cf}/subjects", json={"subject": "recognize"}) == 201
        rename = {"subject": "renamed"}
        assert call("recognize", "PUT", f"{cf}/subjects/recognize", json=rename) == 403
        assert call("recognize", "DELETE", f"{cf}/subjects/recognize") == 403
        assert (
            call("recognize", "POST", f"{cf}/embeddings/recognize", json={"embeddings": []}) != 403
        )
        # Sending given-up events out again is an operator's call.
        assert call("enrol", "POST", "/v1/events/deliveries/retry") == 403


def test_an_http_client_is_never_told_to_run_a_command(api: TestClient) -> None:
    """A 404 for a person said "'facelens people list' shows who is enrolled" to HTTP clients;
    the command line still says so."""
    for answer in (
        api.get("/v1/people/nobody"),
        api.delete("/v1/people/nobody"),
        api.patch("/v1/people/nobody", json={"name": "somebody"}),
    ):
        assert answer.status_code == 404
        message = answer.json()["error"]["message"]
        assert "GET /v1/people" in message and "facelens " not in message, message
    from facelens.gallery.people import not_found as _not_found

    assert "'facelens people list'" in _not_found("nobody").message


@pytest.mark.parametrize(
    ("alikes", "why"),
    [
        (["Tom  Cruise", "Tom \u3000Cruise", "Tom\u00a0 Cruise", "Tom   Cruise "], "spacing"),
        (
            [
                "T\u043em Cruise",  # a Cyrillic o
                "\u0422\u041e\u041c CRUISE",  # TOM in Cyrillic capitals
                "\u03a4\u03bfm Cruis\u03b5",  # a Greek T and o
            ],
            "alphabet",
        ),
    ],
    ids=["spacing", "alphabet"],
)
def test_names_that_look_alike_are_refused_on_every_route(
    tmp_path: Path, alikes: list[str], why: str
) -> None:
    """'Tom  Cruise' beside 'Tom Cruise' looked like one name in HTML and led a user to delete
    the real person, and so does 'Tom Cruise' with a Cyrillic o: every way a name comes in
    refuses it, naming who exists, and nothing is merged or created."""
    face = photo((RED, LEFT))
    with served(tmp_path) as api:
        assert api.post("/v1/people", data={"name": "Tom Cruise"}, files={"images": face})
        api.post("/v1/people", json={"name": "Ann"})
        for name in alikes:
            quoted = name.replace(" ", "%20")
            answers = {
                "create": api.post("/v1/people", json={"name": name}),
                "create with photos": api.post(
                    "/v1/people", data={"name": name}, files={"images": face}
                ),
                "add faces, creating": api.post(
                    f"/v1/people/{quoted}/faces?create=true", files={"images": face}
                ),
                "rename": api.patch("/v1/people/Ann", json={"name": name}),
                "merge": api.post(f"/v1/people/{quoted}/merge", json={"from": "Ann"}),
                "deepstack register": api.post(
                    "/v1/vision/face/register", data={"userid": name}, files={"image": face}
                ),
                "compreface subject": api.post(
                    "/api/v1/recognition/subjects", json={"subject": name}
                ),
                "compreface face": api.post(
                    "/api/v1/recognition/faces", params={"subject": name}, files={"file": face}
                ),
                "compreface rename": api.put(
                    "/api/v1/recognition/subjects/Ann", json={"subject": name}
                ),
            }
            for route, answer in answers.items():
                where = f"{route} {name!r}"
                if route == "merge":  # a look-alike finds nobody: nobody to merge into
                    assert answer.status_code == 404, where
                    continue
                assert answer.status_code in (400, 409), f"{where}: {answer.text}"
                assert "'Tom Cruise'" in answer.text, where
                if route.startswith("create"):
                    assert why in answer.text, where
        people = api.get("/v1/people").json()["people"]
        assert [(p["name"], p["face_count"]) for p in people] == [("Ann", 0), ("Tom Cruise", 1)]


def test_a_person_is_created_with_their_photos_or_not_at_all(tmp_path: Path) -> None:
    """POST /v1/people with photos: the console's one call for "Add person". JSON base64 or a
    multipart form; per photo what happened; if no face, nobody is created."""
    pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
    with served(tmp_path) as api:
        none = api.post(
            "/v1/people",
            data={"name": "ruby"},
            files=[("images", ("a.pdf", pdf)), ("images", ("blank.png", photo()))],
        )
        assert none.status_code == 422
        assert set(none.json()) == {"error", "results"}
        assert none.json()["error"]["code"] == "nothing_enrolled"
        assert [r["status"] for r in none.json()["results"]] == ["skipped", "skipped"]
        assert api.get("/v1/people").json()["total"] == 0

        group = base64.b64encode(photo((RED, LEFT), (BLUE, Box(200, 40, 240, 80)))).decode()
        as_json = api.post(
            "/v1/people?largest=true",
            json={"name": "ruby", "images": [group, group]},  # the same photo twice: once
        )
        assert as_json.status_code == 201, as_json.text
        assert as_json.json()["face_count"] == 1
        results = as_json.json()["results"]
        assert sorted(r["status"] for r in results) == ["already_enrolled", "enrolled"]
        assert results[0]["box"] == {"left": 20, "top": 40, "right": 100, "bottom": 120}
        for body, why in (
            ({"name": "x", "images": []}, "no image"),
            ({"name": "x", "images": "abc"}, "list of base64"),
            ({"name": "x", "photos": []}, "Extra inputs"),
        ):
            refused = api.post("/v1/people", json=body)
            assert refused.status_code == 422 and why in refused.text, refused.text
        no_photo = api.post("/v1/people", files={"name": (None, b"x")})
        assert no_photo.status_code == 422 and "holds no photo" in no_photo.text
        no_name = api.post("/v1/people", files={"images": photo((RED, LEFT))})
        assert no_name.status_code == 422 and "'name'" in no_name.text
        assert api.get("/v1/people").json()["total"] == 1


def test_merging_people_keeps_every_face_and_is_idempotent(tmp_path: Path) -> None:
    with served(tmp_path) as api:
        api.post("/v1/people", data={"name": "ruby"}, files={"images": photo((RED, LEFT))})
        api.post(
            "/v1/people",
            data={"name": "Ruby R"},
            files=[
                ("images", ("a.png", photo((RED, RIGHT)))),
                ("images", ("b.png", photo((RED, LEFT)))),
            ],
        )
        key = {"Idempotency-Key": "merge-1"}
        merged = api.post("/v1/people/ruby/merge", json={"from": "Ruby R"}, headers=key)
        assert merged.status_code == 200, merged.text
        assert merged.json() == {
            "name": "ruby",
            "face_count": 3,
            "merged": "Ruby R",
            "faces_moved": 2,
            "duplicates_dropped": 0,
        }
        again = api.post("/v1/people/ruby/merge", json={"from": "Ruby R"}, headers=key)
        assert again.json() == merged.json()
        assert api.get("/v1/people/Ruby R").status_code == 404
        both = api.post("/v1/recognize", content=photo((RED, RIGHT))).json()["faces"]
        assert [f["name"] for f in both] == ["ruby"]
        assert api.post("/v1/people/ruby/merge", json={"from": "ruby"}).status_code == 422
        assert api.post("/v1/people/ruby/merge", json={"source": "x"}).status_code == 422
        assert api.post("/v1/people/nobody/merge", json={"from": "ruby"}).status_code == 404


def test_an_encoded_slash_never_reaches_another_route(api: TestClient) -> None:
    # Decoded, x%2Ffaces%2F1 is x/faces/1: a person's name that would delete x's face 1.
    assert api.post("/v1/people", json={"name": "slash"}).status_code == 201
    enrolled = api.post("/v1/people/slash/faces", files={"images": photo((GREEN, LEFT))})
    face_id = enrolled.json()["results"][0]["face_ids"][0]
    for method, path in (
        ("DELETE", f"/v1/people/slash%2Ffaces%2F{face_id}"),
        ("DELETE", f"/v1/people/slash%2ffaces%2f{face_id}"),
        ("GET", "/v1/people/slash%2Ffaces"),
    ):
        answer = api.request(method, path)
        assert answer.status_code == 400, (path, answer.text)
        assert answer.json()["error"]["code"] == "encoded_slash"
    assert api.get("/v1/people/slash").json()["face_count"] == 1
    # The APIs of other products answer in their own error shape.
    compreface = api.delete("/api/v1/recognition/subjects/slash%2Fx")
    assert compreface.status_code == 400 and compreface.json()["code"] == 26
    kserve = api.get("/v2/models/face-detect%2F..")
    assert kserve.status_code == 400 and set(kserve.json()) == {"error"}
    assert api.get("/v1/people/a%252Fb").status_code == 404  # a literal '%2F' in a name


def test_metrics_are_collected_off_the_event_loop(tmp_path: Path) -> None:
    """/metrics (keyless, never refused) collected on the event loop: with a large outbox of
    events, 64 scrapers made /healthz wait past a liveness probe's time limit."""
    import threading

    entered, release = threading.Event(), threading.Event()

    class Slow:  # a collector that takes as long as the test says
        def collect(self) -> Iterator[object]:
            entered.set()
            release.wait(10)
            return iter(())

    with served(tmp_path) as api:
        api.app.state.services.metrics.registry.register(Slow())  # type: ignore[attr-defined]
        scrape = threading.Thread(target=api.get, args=("/metrics",))
        scrape.start()
        assert entered.wait(10)
        answers: list[int] = []
        probe = threading.Thread(target=lambda: answers.append(api.get("/healthz").status_code))
        probe.start()
        probe.join(5)
        answered_meanwhile = list(answers)
        release.set()
        scrape.join(10)
        probe.join(10)
    assert answered_meanwhile == [200]


def test_readiness_tells_how_many_people_only_to_key_holders_when_keys_are_on(
    tmp_path: Path,
) -> None:
    """Anyone who can reach the port may probe readiness, but the size of the gallery is the
    key holders' to know."""
    data = tmp_path / "data"
    with served(data) as api:  # keys off: everyone is told
        assert api.post("/v1/people", json={"name": "ruby"}).status_code == 201
        assert api.get("/readyz").json()["people"] == 1
    store = key_store(data)
    _, key = store.create("probe", frozenset({"recognize"}))
    store.close()
    with served(data) as api:
        for headers in ({}, {"X-API-Key": key + "x"}):
            ready = api.get("/readyz", headers=headers)
            assert ready.status_code == 200 and ready.json()["status"] == "ready"
            assert ready.json()["people"] is None
        assert api.get("/readyz", headers={"X-API-Key": key}).json()["people"] == 1


def test_a_server_closed_leaves_none_of_its_files_open(tmp_path: Path) -> None:
    with served(tmp_path) as client:
        assert client.post("/v1/people", json={"name": "ruby"}).status_code == 201
        assert client.get("/v1/events").status_code == 200
    # A worker closes its gallery when told to stop. Before, a worker thread's handle kept the
    # gallery's one connection of this process open for good, one per server started.
    wait_until(lambda: open_files(tmp_path / "gallery.sqlite3") == 0, 10, "the gallery closed")
    assert open_files(tmp_path / "events.sqlite3") == 0
