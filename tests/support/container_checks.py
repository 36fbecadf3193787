"""What scripts/test-container checks over loopback against the running image.

    python -m tests.support.container_checks before-restart|after-restart|any-uid URL KEY
    python -m tests.support.container_checks names URL KEY OUT.json
    python -m tests.support.container_checks shared URL KEY OTHER_URL

Not a pytest module: the container script runs it twice, around a restart of the container
(and once against the image run as an arbitrary uid), and any failed check exits non-zero with
what was expected and what came. KEY is the API key the container was given: it listens on
every interface of the container, so it refuses to start without one. ``names`` enrols every
shared person and writes the names answered for every probe, so that images built for other
architectures and Pythons can be compared with each other. FACELENS_CHECK_TIMEOUT_S sets how
long a request may take (60 s; an emulated arm64 image needs far more).
"""

from __future__ import annotations

import base64
import io
import json
import os
import sys
from pathlib import Path

import httpx
import requests
from PIL import Image

from tests.conftest import shared_data
from tests.support.helpers import read_probes

PERSON = "obama"


def faces_dir() -> Path:
    return shared_data("faces", "FACELENS_TEST_FACES", "probes.csv", "people")


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"container check failed: {what}")
    print(f"container check: {what}: ok")


def names(client: httpx.Client, photo: Path) -> list[str]:
    answer = client.post("/v1/recognize", files={"image": (photo.name, photo.read_bytes())})
    check(
        answer.status_code == 200, f"/v1/recognize {photo.name} answers 200 ({answer.text[:200]})"
    )
    return sorted(f["name"] for f in answer.json()["faces"])


TIMEOUT = float(os.environ.get("FACELENS_CHECK_TIMEOUT_S", "60"))


def keyed(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=TIMEOUT, headers={"X-API-Key": key})


def before_restart(url: str, key: str) -> None:
    faces = faces_dir()
    client = keyed(url, key)
    check(httpx.get(f"{url}/healthz").json() == {"status": "ok"}, "/healthz (no key needed)")
    ready = httpx.get(f"{url}/readyz", timeout=TIMEOUT).json()
    check(
        ready["status"] == "ready" and ready["workers_ready"] == ready["workers"] >= 1,
        f"/readyz ({ready})",
    )
    check(ready["people"] is None, "/readyz without a key does not tell how many people")
    check(client.get("/readyz").json()["people"] == 0, "/readyz with the key tells: 0 people")
    check(httpx.get(f"{url}/v1/people").status_code == 401, "the API needs the key")
    # The original demo's client, verbatim but for the key it must now send.
    encode = base64.b64encode((faces / "probes" / "obama_and_biden.jpg").read_bytes())
    r = requests.post(f"{url}/predictor", data=encode, timeout=TIMEOUT, headers={"X-API-Key": key})
    image = Image.open(io.BytesIO(base64.b64decode(r.content)))
    check(r.status_code == 200 and image.format == "JPEG", "/predictor with the original client")
    garbage = client.post("/v1/recognize", files={"image": ("x.jpg", b"\xff\xd8 not a JPEG")})
    check(
        garbage.status_code == 400 and garbage.json()["error"]["code"] == "bad_image",
        f"garbage is a 400 bad_image ({garbage.status_code} {garbage.text[:200]})",
    )
    probe = faces / "probes" / "obama1.jpg"
    check(names(client, probe) == ["unknown"], "a stranger before enrolment is unknown")
    check(client.post("/v1/people", json={"name": PERSON}).status_code == 201, "create a person")
    photos = sorted((faces / "people" / PERSON).iterdir())
    enrolled = client.post(
        f"/v1/people/{PERSON}/faces",
        files=[("images", (p.name, p.read_bytes())) for p in photos],
    )
    check(enrolled.status_code == 200 and enrolled.json()["enrolled"] == len(photos), "enrol")
    check(names(client, probe) == [PERSON], "recognised once enrolled")
    page, script = client.get("/"), client.get("/console/js/main.js")
    check(
        page.status_code == script.status_code == 200 and "/console/js/main.js" in page.text,
        "the web console ships in the image",
    )


def after_restart(url: str, key: str) -> None:
    client = keyed(url, key)
    people = client.get("/v1/people").json()["people"]
    check([p["name"] for p in people] == [PERSON], "the person survived the restart")
    cover = people[0]["thumbnail_face_id"]
    thumbnail = client.get(f"/v1/people/{PERSON}/faces/{cover}/thumbnail")
    check(thumbnail.headers["content-type"] == "image/jpeg", "the face thumbnail survived too")
    check(names(client, faces_dir() / "probes" / "obama1.jpg") == [PERSON], "still recognised")


def any_uid(url: str, key: str) -> None:
    """The image run as an arbitrary uid in group 0 (OpenShift) on a new volume: it writes."""
    client = keyed(url, key)
    check(client.get("/readyz").json()["status"] == "ready", "ready as an arbitrary uid")
    check(client.post("/v1/people", json={"name": PERSON}).status_code == 201, "create a person")
    photo = sorted((faces_dir() / "people" / PERSON).iterdir())[0]
    enrolled = client.post(
        f"/v1/people/{PERSON}/faces", files=[("images", (photo.name, photo.read_bytes()))]
    )
    check(enrolled.status_code == 200 and enrolled.json()["enrolled"] == 1, "enrol a photo")
    check(client.get("/readyz").json()["people"] == 1, "stored in the volume")


def names_of_every_probe(url: str, key: str, out: Path) -> None:
    """Enrol every shared person (obama is in already) and write each probe's names to ``out``."""
    faces = faces_dir()
    client = keyed(url, key)
    for folder in sorted((faces / "people").iterdir()):
        if folder.name == PERSON:
            continue
        check(client.post("/v1/people", json={"name": folder.name}).status_code == 201, "create")
        photos = sorted(folder.iterdir())
        enrolled = client.post(
            f"/v1/people/{folder.name}/faces",
            files=[("images", (p.name, p.read_bytes())) for p in photos],
        )
        check(enrolled.status_code == 200, f"enrol {folder.name}")
    answered = {probe.name: names(client, probe) for probe in sorted((faces / "probes").iterdir())}
    expected = {probe.file.name: set(probe.expected) for probe in read_probes(faces)}
    check(set(answered) == set(expected), "every probe of probes.csv answered")
    wrong = {p: n for p, n in answered.items() if not set(n) <= expected[p] | {"unknown"}}
    check(not wrong, f"no wrong name on any probe ({wrong})")
    missed = [p for p, n in answered.items() if not set(n) & expected[p] - {"unknown"}]
    check(not missed, f"someone expected named on every probe (missed: {missed})")
    out.write_text(json.dumps(answered, indent=1, sort_keys=True) + "\n")


def shared(url: str, key: str, other: str) -> None:
    """Two containers on one PostgreSQL: a person enrolled on one is known to the other, a
    rename on the other is seen by the first, and both say where the gallery is."""
    a, b = keyed(url, key), keyed(other, key)
    for client in (a, b):
        database = client.get("/readyz").json()["database"]
        check(
            database["reachable"] and database["url"].startswith("postgresql://***@"),
            f"/readyz names the database, password masked ({database})",
        )
    check(a.post("/v1/people", json={"name": PERSON}).status_code == 201, "create on one")
    photo = sorted((faces_dir() / "people" / PERSON).iterdir())[0]
    enrolled = a.post(
        f"/v1/people/{PERSON}/faces", files=[("images", (photo.name, photo.read_bytes()))]
    )
    check(enrolled.status_code == 200, "enrol on one")
    probe = faces_dir() / "probes" / "obama1.jpg"
    check(names(b, probe) == [PERSON], "recognised on the other")
    renamed = b.patch(f"/v1/people/{PERSON}", json={"name": "barack"})
    check(renamed.status_code == 200, "renamed on the other")
    check(names(a, probe) == ["barack"], "the rename seen on the first")


if __name__ == "__main__":
    phase, address, api_key = sys.argv[1], sys.argv[2], sys.argv[3]
    if phase == "names":
        names_of_every_probe(address, api_key, Path(sys.argv[4]))
        raise SystemExit(0)
    if phase == "shared":
        shared(address, api_key, sys.argv[4])
        raise SystemExit(0)
    checks = {"before-restart": before_restart, "after-restart": after_restart, "any-uid": any_uid}
    checks[phase](address, api_key)
