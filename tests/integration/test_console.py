"""The web console in a real browser (Debian's Chromium, driven by Playwright) against a real
server process with the real model and the shared photos."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import cv2
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Locator,
    Page,
    Playwright,
    Request,
    Response,
    Route,
    expect,
)

import facelens
from facelens.api.console import POLICY
from facelens.core.imaging import encode_image, read_image_file
from facelens.events.event import Event
from facelens.events.log import EventLog
from facelens.models.base import Box
from tests.conftest import REPO
from tests.support.browser import (
    accessibility_violations,
    axe_script,
    chromium,
    fake_camera_args,
    playwright_session,
    to_y4m,
)
from tests.support.helpers import Probe
from tests.support.mjpeg import MjpegCamera
from tests.support.server import FACELENS, Server

pytestmark = pytest.mark.integration

WAIT_MS = 60_000  # recognition on a busy 2-core machine; expectations return as soon as met


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with playwright_session() as session:
        yield session


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    with chromium(playwright) as launched:
        yield launched


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, people_dir: Path) -> Iterator[Server]:
    """The shared people enrolled from their folders, except alex_lacamoire: the page adds him."""
    root = tmp_path_factory.mktemp("console")
    folder = root / "people"
    shutil.copytree(people_dir, folder, ignore=shutil.ignore_patterns("alex_lacamoire"))
    enrolled = subprocess.run(
        [FACELENS, "--data-dir", str(root / "data"), "enroll", str(folder)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert enrolled.returncode == 0, enrolled.stderr
    # The stream tests watch the shared clip: a file, which the API reads only from here.
    srv = Server(root / "data", env={"FACELENS_STREAM_FOLDERS": str(people_dir.parent / "video")})
    yield srv
    assert srv.stop() == 0


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.goto(server.url + "/")
    yield opened
    context.close()
    assert errors == [], "the page's scripts failed"


def recognise(page: Page, *files: Path) -> None:
    page.get_by_role("tab", name="Recognise").click()
    before = page.locator("article.result").count()
    page.set_input_files("#recognize-files", [str(f) for f in files])
    finished = page.locator("article.result[data-state]")
    expect(finished).to_have_count(before + len(files), timeout=WAIT_MS)


def names_in(card: object) -> list[str]:
    rows = card.locator("tr.face td:first-child")  # type: ignore[attr-defined]
    return sorted(rows.all_text_contents())


def card_for(page: Page, name: str) -> object:
    return page.locator("article.result", has=page.locator("h3", has_text=name)).first


def test_a_probe_shows_its_names_in_the_list_and_boxes_on_the_photo(
    page: Page, faces_dir: Path, probes: list[Probe]
) -> None:
    wanted = {p.file.name: p.expected for p in probes}
    files = [faces_dir / "probes" / n for n in ("obama_and_biden.jpg", "johnsnow_test1.jpg")]
    recognise(page, *files)
    for file in files:
        card = card_for(page, file.name)
        assert card.get_attribute("data-state") == "done"  # type: ignore[attr-defined]
        assert names_in(card) == wanted[file.name]
        boxes = card.locator(".stage .box")  # type: ignore[attr-defined]
        assert sorted(boxes.all_text_contents()) == wanted[file.name]
        # Each box lies on the photo, in proportion to it.
        photo = card.locator(".stage img").bounding_box()  # type: ignore[attr-defined]
        for i in range(boxes.count()):
            box = boxes.nth(i).bounding_box()
            assert photo["x"] <= box["x"]
            assert box["x"] + box["width"] <= photo["x"] + photo["width"] + 1
            assert box["width"] > 5 and box["height"] > 5


def test_a_file_that_is_not_an_image_shows_the_servers_error(page: Page, tmp_path: Path) -> None:
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a photo at all")
    recognise(page, notes)
    card = card_for(page, "notes.jpg")
    assert card.get_attribute("data-state") == "error"  # type: ignore[attr-defined]
    expect(page.locator("#messages")).to_contain_text("notes.jpg")
    expect(card.locator("p.error")).to_contain_text(re.compile("image", re.I))  # type: ignore[attr-defined]


def add_person(page: Page, name: str, photos: list[Path]) -> None:
    page.get_by_role("tab", name="People").click()
    page.get_by_label("Name", exact=True).fill(name)
    page.set_input_files("#new-photos", [str(p) for p in photos])
    page.get_by_role("button", name="Add person").click()


def test_add_a_person_from_photos_then_recognise_rename_and_delete(
    page: Page, people_dir: Path, faces_dir: Path, tmp_path: Path
) -> None:
    blank = tmp_path / "wall.png"
    blank.write_bytes(encode_image(np.full((200, 300, 3), 200, dtype=np.uint8), format="PNG"))
    first, *more = sorted((people_dir / "alex_lacamoire").iterdir())
    add_person(page, "Alex L", [first, blank])
    outcomes = page.locator("#add-results li")
    expect(outcomes).to_have_count(2, timeout=WAIT_MS)
    assert outcomes.all_text_contents() == [f"{first.name}: enrolled", "wall.png: no face found"]
    person = page.locator("li.person[data-name='Alex L']")
    expect(person).to_contain_text("1 face")
    expect(person.locator("img.avatar")).to_have_count(1)  # the face's thumbnail, not initials
    # More photos for the same person, from the person's own row.
    person.locator("input[type=file]").set_input_files([str(p) for p in [first, *more]])
    expect(person).to_contain_text(f"{1 + len(more)} faces", timeout=WAIT_MS)
    assert person.locator(".outcomes li").all_text_contents() == [
        f"{first.name}: already enrolled",
        *(f"{p.name}: enrolled" for p in more),
    ]

    probe = faces_dir / "probes" / "alex_lacamoire1.jpg"
    recognise(page, probe)
    assert names_in(page.locator("article.result").first) == ["Alex L"]

    page.get_by_role("tab", name="People").click()
    person.get_by_role("button", name="Rename").click()
    page.locator("#prompt-input").fill("Alex Lacamoire")
    page.locator("#prompt-dialog").get_by_role("button", name="OK").click()
    expect(page.locator("li.person[data-name='Alex Lacamoire']")).to_have_count(1)
    recognise(page, probe)
    assert names_in(page.locator("article.result").first) == ["Alex Lacamoire"]

    page.get_by_role("tab", name="People").click()
    renamed = page.locator("li.person[data-name='Alex Lacamoire']")
    renamed.get_by_role("button", name="Delete").click()
    expect(page.locator("#confirm-text")).to_contain_text("Alex Lacamoire")
    page.locator("#confirm-dialog").get_by_role("button", name="Delete").click()
    expect(renamed).to_have_count(0)
    recognise(page, probe)
    assert names_in(page.locator("article.result").first) == ["unknown"]


def test_search_filters_people_and_names_stay_text(page: Page, server: Server) -> None:
    trap = '<img src=x onerror="window.pwned=1">'
    assert server.client.post("/v1/people", json={"name": trap}).status_code == 201
    try:
        page.get_by_role("tab", name="People").click()
        expect(page.locator("li.person")).to_have_count(6)  # 5 from folders and the trap
        page.get_by_label("Search").fill("ROSE")
        expect(page.locator("li.person")).to_have_count(1)
        expect(page.locator("li.person")).to_contain_text("rose_leslie")
        page.get_by_label("Search").fill("onerror")
        expect(page.locator("li.person strong")).to_have_text(trap)  # shown, not run
        assert page.evaluate("window.pwned") is None
    finally:
        server.client.delete("/v1/people/" + trap)


def test_verify_says_same_or_different_with_the_distance(page: Page, faces_dir: Path) -> None:
    probes = faces_dir / "probes"
    page.get_by_role("tab", name="Verify").click()
    for second, verdict in (("obama1.jpg", "The same person"), ("two_people.jpg", None)):
        page.set_input_files("#verify-first", str(probes / "obama-480p.jpg"))
        page.set_input_files("#verify-second", str(probes / second))
        page.get_by_role("button", name="Compare", exact=True).click()
        if verdict:
            expect(page.locator("#verify-result .verdict")).to_have_text(verdict, timeout=WAIT_MS)
        else:  # the largest face of two_people.jpg is obama's too, and the page says it chose
            expect(page.locator("#verify-result")).to_contain_text("largest", timeout=WAIT_MS)
        expect(page.locator("#verify-result")).to_contain_text("Distance")
    page.set_input_files("#verify-second", str(probes / "obama_and_biden.jpg"))
    page.set_input_files("#verify-first", str(faces_dir / "people" / "biden" / "biden2.jpg"))
    page.get_by_role("button", name="Compare", exact=True).click()
    expect(page.locator("#verify-result .verdict")).to_be_visible(timeout=WAIT_MS)


def test_on_a_phone_sized_screen_nothing_overflows_and_keys_work(
    browser: Browser, server: Server, faces_dir: Path
) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    try:
        page.goto(server.url + "/")
        recognise(page, faces_dir / "probes" / "kit_with_rose.jpg")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        # Keyboard: Tab reaches the tabs, arrows move between them.
        page.get_by_role("tab", name="Recognise").focus()
        page.keyboard.press("ArrowRight")
        expect(page.get_by_role("tab", name="Camera")).to_be_focused()
        expect(page.locator("#camera")).to_be_visible()
        page.keyboard.press("ArrowRight")
        expect(page.locator("#people")).to_be_visible()
        page.keyboard.press("Tab")  # from the tab into its panel: the first field
        expect(page.get_by_label("Name", exact=True)).to_be_focused()
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    finally:
        context.close()


def test_the_camera_sends_frames_and_boxes_follow_the_faces(
    playwright: Playwright, server: Server, faces_dir: Path, tmp_path: Path
) -> None:
    clip = to_y4m(faces_dir / "video" / "short_hamilton_clip.mp4", tmp_path / "clip.y4m")
    with chromium(playwright, *fake_camera_args(clip)) as browser:
        page = browser.new_page()
        page.goto(server.url + "/")
        page.get_by_role("tab", name="Camera").click()
        # A busy server (503) at first: frames are dropped, the camera keeps running.
        busy = '{"error": {"code": "busy", "message": "busy"}}'
        page.route("**/v1/recognize", lambda route: route.fulfill(status=503, body=busy))
        page.get_by_role("button", name="Start camera").click()
        expect(page.locator("#camera-faces")).to_contain_text("busy", timeout=WAIT_MS)
        expect(page.locator("#camera")).to_have_attribute("data-state", "running")
        page.unroute("**/v1/recognize")
        seen = page.locator("#camera-faces[data-faces]:not([data-faces='0'])")
        expect(seen).to_have_count(1, timeout=WAIT_MS)  # at least one face boxed
        expect(page.locator("#camera-fps")).not_to_have_text("0.0 fps", timeout=WAIT_MS)
        # The box is drawn on the canvas: some pixels are the box colours.
        drawn = page.evaluate(
            """() => { const c = document.getElementById('camera-canvas');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 0; i < d.length; i += 4) {
              if ((d[i] === 26 && d[i+1] === 127 && d[i+2] === 55) ||
                  (d[i] === 198 && d[i+1] === 40 && d[i+2] === 40)) n++; }
            return n; }"""
        )
        assert drawn > 50
        page.get_by_role("button", name="Stop").click()
        expect(page.locator("#camera")).to_have_attribute("data-state", "stopped")
        assert page.evaluate("document.getElementById('camera-video').srcObject") is None


def test_the_key_is_asked_once_and_kept_for_the_session(
    browser: Browser, tmp_path: Path, faces_dir: Path
) -> None:
    key = "console-test-key-0123456789"
    srv = Server(tmp_path / "data", env={"FACELENS_SERVER_API_KEYS": key})
    try:
        page = browser.new_page()
        page.goto(srv.url + "/")
        # How many people are enrolled is the key holders' to know: not in the header yet.
        status = page.locator("#server-status")
        expect(status).to_contain_text("Ready · model")
        assert "people" not in status.inner_text() and "null" not in status.inner_text()
        page.get_by_role("tab", name="Recognise").click()
        page.set_input_files("#recognize-files", str(faces_dir / "probes" / "obama1.jpg"))
        expect(page.locator("#key-dialog")).to_be_visible()
        page.locator("#key-input").fill(key)
        page.get_by_role("button", name="Use this key").click()
        expect(status).to_contain_text("· 0 people")
        expect(page.locator("article.result[data-state='done']")).to_have_count(1, timeout=WAIT_MS)
        page.set_input_files("#recognize-files", str(faces_dir / "probes" / "obama3.jpg"))
        expect(page.locator("article.result[data-state='done']")).to_have_count(2, timeout=WAIT_MS)
        assert not page.locator("#key-dialog").is_visible()  # not asked again
        page.close()
    finally:
        assert srv.stop() == 0


def test_gallery_health_finds_wrong_blurred_and_repeated_photos_and_fixes_them(
    browser: Browser, tmp_path: Path, people_dir: Path
) -> None:
    srv = Server(tmp_path / "data")
    c = srv.client
    try:
        for name in ("obama", "biden"):
            assert c.post("/v1/people", json={"name": name}).status_code == 201
        obama = [(people_dir / "obama" / n).read_bytes() for n in ("obama.jpg", "obama2.jpg")]
        biden = (people_dir / "biden" / "biden.jpg").read_bytes()
        sharp = read_image_file(people_dir / "obama" / "obama.jpg", max_pixels=10**8)
        blurred = encode_image(cv2.GaussianBlur(sharp.pixels, (0, 0), 8))
        again = encode_image(sharp.pixels, quality=70)  # the same photo, recompressed
        for photo in (*obama, biden, blurred, again):
            enrolled = c.post("/v1/people/obama/faces", files={"images": photo}).json()
            assert enrolled["enrolled"] == 1, enrolled
        biden2 = (people_dir / "biden" / "biden2.jpg").read_bytes()
        assert c.post("/v1/people/biden/faces", files={"images": biden2}).status_code == 200

        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(srv.url + "/")
        page.get_by_role("tab", name="Gallery health").click()
        page.get_by_role("button", name="Check the gallery").click()
        findings = page.locator("li.finding")
        expect(page.locator("#review-summary")).to_contain_text("faces checked", timeout=WAIT_MS)
        kinds = sorted(findings.evaluate_all("items => items.map(i => i.dataset.kind)"))
        assert {"mismatch", "blurry", "duplicate"} <= set(kinds), kinds

        wrong = page.locator("li.finding[data-kind='mismatch']", has_text="obama").first
        expect(wrong.get_by_role("button", name="Move to biden")).to_be_visible()
        wrong.get_by_role("button", name="Move to biden").click()
        expect(page.locator("li.finding[data-kind='mismatch']")).to_have_count(0, timeout=WAIT_MS)
        assert c.get("/v1/people/biden").json()["face_count"] == 2

        remove = page.get_by_role("button", name="Remove photo")
        page.locator("li.finding[data-kind='blurry']").locator(remove).click()
        expect(page.locator("li.finding[data-kind='blurry']")).to_have_count(0, timeout=WAIT_MS)
        page.locator("li.finding[data-kind='duplicate']").locator(remove).click()
        expect(page.locator("li.finding")).to_have_count(0, timeout=WAIT_MS)
        expect(page.locator("#review-summary")).to_contain_text("nothing to fix")
        assert c.get("/v1/people/obama").json()["face_count"] == 2
        page.close()
    finally:
        assert srv.stop() == 0


def test_every_screen_passes_axes_wcag_checks(
    browser: Browser, server: Server, faces_dir: Path
) -> None:
    script = axe_script(REPO / ".cache" / "axe-core")
    # The page's policy allows only its own scripts: the audit's script is let in this once.
    context = browser.new_context(bypass_csp=True, viewport={"width": 1200, "height": 900})
    page = context.new_page()
    try:
        page.goto(server.url + "/")
        recognise(page, faces_dir / "probes" / "obama_and_biden.jpg")
        found = {"Recognise": accessibility_violations(page, script)}
        page.get_by_role("tab", name="People").click()
        expect(page.locator("li.person")).to_have_count(5)
        page.locator("li.person").first.get_by_role("button", name="Faces").click()
        found["People"] = accessibility_violations(page, script)
        page.locator("li.person").first.get_by_role("button", name="Merge into…").click()
        found["Merge dialog"] = accessibility_violations(page, script)
        page.locator("#merge-dialog").get_by_role("button", name="Cancel").click()
        page.get_by_role("tab", name="Gallery health").click()
        page.get_by_role("button", name="Check the gallery").click()
        expect(page.locator("#review-summary")).to_contain_text("checked", timeout=WAIT_MS)
        found["Gallery health"] = accessibility_violations(page, script)
        for tab in ("Camera", "Verify", "Streams", "Events"):
            page.get_by_role("tab", name=tab).click()
            found[tab] = accessibility_violations(page, script)
        page.get_by_role("tab", name="Verify").click()
        page.set_input_files("#verify-first", str(faces_dir / "probes" / "obama1.jpg"))
        page.set_input_files("#verify-second", str(faces_dir / "probes" / "two_people.jpg"))
        page.get_by_role("button", name="Compare", exact=True).click()
        expect(page.locator("#verify-photos button.pick")).to_have_count(3, timeout=WAIT_MS)
        found["Verify, both photos"] = accessibility_violations(page, script)
        page.get_by_role("button", name="API key").click()
        found["API key dialog"] = accessibility_violations(page, script)
        assert {screen: v for screen, v in found.items() if v} == {}
    finally:
        context.close()


def test_photos_can_be_dropped_or_pasted(page: Page, faces_dir: Path) -> None:
    photo = faces_dir / "probes" / "two_people.jpg"
    # A file dragged from the desktop and dropped on the zone, then one pasted (Ctrl+V): the
    # browser hands the page a DataTransfer holding the file; made here with the file's bytes.
    handle = page.evaluate_handle(
        """async ([bytes, name]) => {
            const data = new DataTransfer();
            data.items.add(new File([new Uint8Array(bytes)], name, {type: "image/jpeg"}));
            return data;
        }""",
        [list(photo.read_bytes()), photo.name],
    )
    page.dispatch_event("#drop", "drop", {"dataTransfer": handle})
    done = page.locator("article.result[data-state='done']")
    expect(done).to_have_count(1, timeout=WAIT_MS)
    page.evaluate(
        """(data) => document.dispatchEvent(
            new ClipboardEvent("paste", {clipboardData: data}))""",
        handle,
    )
    expect(done).to_have_count(2, timeout=WAIT_MS)
    for i in range(2):
        assert names_in(done.nth(i)) == ["biden", "obama"]


def test_events_appear_live_and_filter(page: Page, server: Server, faces_dir: Path) -> None:
    page.get_by_role("tab", name="Events").click()
    expect(page.locator("#events-live")).to_contain_text("Live")
    clip = faces_dir / "video" / "short_hamilton_clip.mp4"
    quiet = ("--crops", "--events", "none")
    watched = subprocess.run(
        [FACELENS, "--data-dir", str(server.data_dir), "watch", str(clip), *quiet],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert watched.returncode == 0, watched.stderr
    rows = page.locator("tr.event")
    expect(rows.filter(has_text="lin_manuel_miranda").first).to_be_visible(timeout=WAIT_MS)
    expect(rows.filter(has_text="left").first).to_be_visible(timeout=WAIT_MS)
    # With --crops, each event shows the face (a JPEG the browser decoded, not a broken image).
    crop = rows.filter(has_text="lin_manuel_miranda").first.locator("img.event-crop")
    page.wait_for_function("img => img.naturalWidth > 0", arg=crop.element_handle())
    page.get_by_label("Kind").select_option("left")
    page.get_by_role("button", name="Apply").click()
    # The newest rows were "left" before too: wait for the other kinds to go.
    expect(page.locator("tr.event:not([data-kind='left'])")).to_have_count(0)
    kinds = rows.evaluate_all("rows => rows.map(r => r.dataset.kind)")
    assert kinds and set(kinds) == {"left"}
    page.get_by_role("tab", name="Recognise").click()  # leaving the tab ends the live stream
    expect(page.locator("#events-live")).to_have_text("")


def test_a_stream_is_added_shown_live_and_removed(page: Page, faces_dir: Path) -> None:
    camera = MjpegCamera(faces_dir / "video" / "short_hamilton_clip.mp4").start()
    try:
        page.get_by_role("tab", name="Streams").click()
        page.get_by_label("Id").fill("hall")
        page.get_by_label("Source").fill(camera.url)
        page.get_by_role("spinbutton", name="Frames per second").fill("5")
        page.get_by_role("button", name="Add stream").click()
        item = page.locator("li.stream[data-id='hall']")
        expect(item.locator(".status")).to_contain_text("running", timeout=WAIT_MS)
        expect(item.locator(".status")).to_contain_text("frames/s", timeout=WAIT_MS)
        view = item.locator("img")
        page.wait_for_function(
            "img => img.naturalWidth === 640", arg=view.element_handle(), timeout=WAIT_MS
        )
        item.get_by_role("button", name="Remove").click()
        page.locator("#confirm-dialog").get_by_role("button", name="Remove").click()
        expect(page.locator("li.stream")).to_have_count(0)
    finally:
        camera.stop()


# ------------------------------------------------------------------ issue 19: the console

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
# The start of an iPhone photo: an ISO media 'ftyp' box of brand 'heic' (the rest does not
# matter: neither the server nor the page reads further).
HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(200)


def people_named(server: Server) -> list[str]:
    return [p["name"] for p in server.client.get("/v1/people?limit=1000").json()["people"]]


def test_a_failed_add_person_leaves_nobody_behind_and_says_why_per_photo(
    page: Page, server: Server, people_dir: Path, tmp_path: Path
) -> None:
    before = people_named(server)
    pdf = tmp_path / "passport.pdf"
    pdf.write_bytes(PDF)
    heic = tmp_path / "IMG_0412.jpg"  # an iPhone's HEIC under a .jpg name: known by its bytes
    heic.write_bytes(HEIC)
    cut = tmp_path / "cut.jpg"  # a photo cut short
    cut.write_bytes((people_dir / "obama" / "obama.jpg").read_bytes()[:600])
    huge = tmp_path / "huge.png"  # few bytes, more pixels than the server's limit
    huge.write_bytes(encode_image(np.full((6000, 9000, 3), 180, dtype=np.uint8), format="PNG"))
    big = tmp_path / "big.jpg"  # more bytes than the server reads in a request (20 MB)
    big.write_bytes(bytes(21 * 1024 * 1024))
    add_person(page, "Nobody Here", [pdf])  # a PDF only
    expect(page.locator("#messages")).to_contain_text("Nobody Here", timeout=WAIT_MS)
    assert people_named(server) == before  # no empty person left behind
    expect(page.locator("#messages")).to_contain_text(
        "Nobody Here was not added: the photo could not be enrolled (why is below)."
    )
    add_person(page, "Nobody Here", [pdf, heic, cut, huge, big])
    outcomes = page.locator("#add-results li")
    expect(outcomes).to_have_count(5, timeout=WAIT_MS)
    said = dict(line.split(": ", 1) for line in outcomes.all_text_contents())
    assert said["passport.pdf"].startswith("not an image facelens can read"), said
    assert "HEIC" in said["IMG_0412.jpg"], said
    assert "truncated" in said["cut.jpg"], said
    assert "FACELENS_MAX_PIXELS" in said["huge.png"], said
    assert "21.0 MB" in said["big.jpg"] and "FACELENS_MAX_BODY_BYTES" in said["big.jpg"], said
    expect(page.locator("#messages")).to_contain_text(
        "Nobody Here was not added: none of the 5 photos could be enrolled"
    )
    assert people_named(server) == before  # no empty person left behind
    expect(page.locator("li.person[data-name='Nobody Here']")).to_have_count(0)
    # The name stays for another try with other photos; this one works.
    expect(page.get_by_label("Name", exact=True)).to_have_value("Nobody Here")
    page.set_input_files("#new-photos", str(people_dir / "obama" / "obama2.jpg"))
    page.get_by_role("button", name="Add person").click()
    try:
        expect(page.locator("li.person[data-name='Nobody Here']")).to_contain_text(
            "1 face", timeout=WAIT_MS
        )
        expect(page.locator("#messages")).to_be_empty()
    finally:
        server.client.delete("/v1/people/Nobody Here")


def test_an_empty_person_that_cannot_be_deleted_is_said_to_be_kept(
    page: Page, server: Server, tmp_path: Path
) -> None:
    pdf = tmp_path / "scan.pdf"
    pdf.write_bytes(PDF)

    def refuse_delete(route: Route) -> None:
        if route.request.method == "DELETE":
            busy = '{"error": {"code": "busy", "message": "The server is busy."}}'
            route.fulfill(status=503, body=busy, content_type="application/json")
        else:
            route.continue_()

    page.route("**/v1/people/Kept%20Empty", refuse_delete)
    try:
        add_person(page, "Kept Empty", [pdf])
        expect(page.locator("#messages")).to_contain_text(
            "Kept Empty is kept with no faces", timeout=WAIT_MS
        )
        expect(page.locator("#messages")).to_contain_text("The server is busy.")
        expect(page.locator("li.person[data-name='Kept Empty']")).to_contain_text("0 faces")
    finally:
        server.client.delete("/v1/people/Kept Empty")


def test_recognise_says_of_a_pdf_what_the_people_tab_says_and_names_heic(
    page: Page, tmp_path: Path
) -> None:
    pdf = tmp_path / "invoice.pdf"
    pdf.write_bytes(PDF)
    add_person(page, "Not Kept", [pdf])
    expect(page.locator("#add-results li")).to_have_count(1, timeout=WAIT_MS)
    people_tab_says = page.locator("#add-results li").text_content()
    heic = tmp_path / "IMG_0413.HEIC"
    heic.write_bytes(HEIC)
    recognise(page, pdf, heic)
    banners = page.locator("#messages > p > span")
    expect(banners).to_have_count(2)
    said = banners.all_text_contents()
    assert people_tab_says in said, said  # "invoice.pdf: not an image facelens can read (…)."
    card = card_for(page, "invoice.pdf")
    expect(card.locator("p.error")).to_have_text(  # type: ignore[attr-defined]
        re.compile(r"^Not an image facelens can read \(use JPEG")
    )
    assert "Content-Type" not in page.locator("#recognize").inner_text()
    heic_card = page.locator("article.result", has=page.locator("h3", has_text="IMG_0413"))
    expect(heic_card.locator("p.error")).to_contain_text(
        "It is a HEIC photo (an iPhone's usual format): convert it to JPEG"
    )
    assert not any("HEIC" in line for line in said if line.startswith("invoice.pdf"))


def test_names_that_differ_only_in_spacing_look_different_everywhere(
    page: Page, server: Server, people_dir: Path, faces_dir: Path
) -> None:
    spaced = "Alex  Lacamoire"  # two spaces: HTML would show one
    c = server.client
    assert c.post("/v1/people", json={"name": spaced}).status_code == 201
    photo = (people_dir / "alex_lacamoire" / "img1.jpg").read_bytes()
    try:
        assert c.post(f"/v1/people/{spaced}/faces", files={"images": photo}).status_code == 200
        shown = "Alex␣␣Lacamoire"
        # innerText is what a reader sees (whitespace collapsed as rendered).
        recognise(page, faces_dir / "probes" / "alex_lacamoire1.jpg")
        card = page.locator("article.result").first
        assert card.locator("tr.face td").first.inner_text() == shown
        assert card.locator(".stage .box").first.inner_text() == shown
        page.get_by_role("tab", name="People").click()
        person = page.locator(f"li.person[data-name='{spaced}']")
        assert person.locator("strong").inner_text() == shown
        expect(person.get_by_role("img", name="2 spaces")).to_have_count(1)
        person.get_by_role("button", name="Delete").click()
        assert page.locator("#confirm-text").inner_text().startswith(f"Delete {shown} and")
        page.locator("#confirm-dialog").get_by_role("button", name="Cancel").click()
    finally:
        c.delete(f"/v1/people/{spaced}")


def test_the_header_counts_the_people_after_adding_and_deleting_one(
    page: Page, server: Server, people_dir: Path
) -> None:
    status = page.locator("#server-status")
    n = len(people_named(server))
    expect(status).to_contain_text(f"· {n} people")
    add_person(page, "Header Count", [people_dir / "biden" / "biden2.jpg"])
    person = page.locator("li.person[data-name='Header Count']")
    try:
        expect(person).to_have_count(1, timeout=WAIT_MS)
        expect(status).to_contain_text(f"· {n + 1} people")
        person.get_by_role("button", name="Delete").click()
        page.locator("#confirm-dialog").get_by_role("button", name="Delete").click()
        expect(person).to_have_count(0)
        expect(status).to_contain_text(f"· {n} people")
    finally:
        server.client.delete("/v1/people/Header Count")


def test_an_error_banner_goes_with_the_next_action(
    page: Page, server: Server, people_dir: Path
) -> None:
    assert server.client.post("/v1/people", json={"name": "Banner Test"}).status_code == 201
    try:
        add_person(page, "Banner Test", [people_dir / "biden" / "biden2.jpg"])  # name taken
        expect(page.locator("#messages")).to_contain_text("already exists", timeout=WAIT_MS)
        person = page.locator("li.person[data-name='Banner Test']")
        person.get_by_role("button", name="Rename").click()
        page.locator("#prompt-input").fill("Banner Renamed")
        page.locator("#prompt-dialog").get_by_role("button", name="OK").click()
        expect(page.locator("li.person[data-name='Banner Renamed']")).to_have_count(1)
        expect(page.locator("#messages")).to_be_empty()  # not the old "already exists"
    finally:
        server.client.delete("/v1/people/Banner Test")
        server.client.delete("/v1/people/Banner Renamed")


def test_merge_into_moves_every_face_and_deletes_the_source(
    page: Page, server: Server, people_dir: Path
) -> None:
    """Needs POST /v1/people/{target}/merge (another branch adds it)."""
    c = server.client
    assert c.post("/v1/people", json={"name": "Barack"}).status_code == 201
    photo = (people_dir / "obama" / "obama2.jpg").read_bytes()
    try:
        # The same photo as obama's own: a second stored face of him (another person's copy).
        assert c.post("/v1/people/Barack/faces", files={"images": photo}).status_code == 200
        obama_faces = c.get("/v1/people/obama").json()["face_count"]
        n = len(people_named(server))
        page.get_by_role("tab", name="People").click()
        barack = page.locator("li.person[data-name='Barack']")
        barack.get_by_role("button", name="Merge into…").click()
        dialog = page.locator("#merge-dialog")
        expect(dialog).to_be_visible()
        dialog.get_by_label("Into").select_option("obama")
        expect(dialog.locator("#merge-text")).to_have_text(
            "The 1 face of Barack moves to obama, and Barack is deleted. This cannot be undone."
        )
        dialog.get_by_role("button", name="Merge").click()
        expect(barack).to_have_count(0, timeout=WAIT_MS)
        expect(page.locator("#people-status")).to_contain_text("Barack was merged into obama")
        expect(page.locator("li.person[data-name='obama']")).to_contain_text(
            f"{obama_faces + 1} faces"
        )
        expect(page.locator("#server-status")).to_contain_text(f"· {n - 1} people")
        assert "Barack" not in people_named(server)
    finally:
        c.delete("/v1/people/Barack")
        stored = c.get("/v1/people/obama").json()["faces"]
        for face in stored[2:]:  # obama's own two from his folder stay
            c.delete(f"/v1/people/obama/faces/{face['id']}")


def write_events(data_dir: Path, faces_dir: Path) -> None:
    """Events as a stream writes them (with a face crop), into the server's own event log."""
    crop = (faces_dir / "probes" / "obama1.jpg").read_bytes()
    log = EventLog(data_dir / "events.sqlite3")
    now = datetime.now(UTC)
    made = [
        ("arrived", "lin_manuel_miranda", None, None),
        ("renamed", "lin_manuel_miranda", "unknown", None),
        ("left", "lin_manuel_miranda", None, 12.4),
        ("arrived", "unknown", None, None),
    ]
    try:
        log.add(
            Event(
                f"phone-{i}",
                kind,  # type: ignore[arg-type]
                "front-door-camera",
                i,
                name,
                None if name == "unknown" else 0.318,
                0.8,
                Box(0, 0, 40, 40),
                now,
                duration_s=stayed,
                previous=previous,
                crop=crop,
            )
            for i, (kind, name, previous, stayed) in enumerate(made)
        )
    finally:
        log.close()


def test_on_a_phone_every_tab_is_in_sight(browser: Browser, server: Server) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    try:
        page.goto(server.url + "/")
        # None hidden behind a sideways scroll that nothing hints at.
        assert page.locator("nav").evaluate("n => n.scrollWidth <= n.clientWidth")
        for tab in page.get_by_role("tab").all():
            box = tab.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    finally:
        context.close()


def test_on_a_phone_the_events_fit_the_screen(
    browser: Browser, server: Server, faces_dir: Path
) -> None:
    write_events(server.data_dir, faces_dir)
    script = axe_script(REPO / ".cache" / "axe-core")
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, bypass_csp=True
    )
    page = context.new_page()
    try:
        page.goto(server.url + "/")
        page.get_by_role("tab", name="Events").click()
        expect(page.locator("tr.event[data-kind='renamed']").first).to_be_visible()
        table = page.locator("#events-table")
        assert table.evaluate("t => t.parentElement.scrollWidth <= t.parentElement.clientWidth")
        assert table.evaluate("t => t.getBoundingClientRect().right <= window.innerWidth")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        # Each value keeps its heading beside it, on screen and for a screen reader.
        row = page.locator("tr.event[data-kind='left']").first
        expect(row.get_by_role("cell", name="Stayed: 12.4 s")).to_be_visible()
        expect(row.get_by_role("cell", name="Distance: 0.318")).to_be_visible()
        assert accessibility_violations(page, script) == []
    finally:
        context.close()


def test_a_stream_card_says_its_state_once_and_the_processed_rate(
    page: Page, faces_dir: Path
) -> None:
    answers: list[dict[str, object]] = []

    def record(route: Route) -> None:
        response = route.fetch()
        if route.request.method == "GET":
            answers.extend(s["status"] for s in response.json()["streams"])
        route.fulfill(response=response)

    page.route("**/v1/streams", record)
    clip = faces_dir / "video" / "short_hamilton_clip.mp4"
    page.get_by_role("tab", name="Streams").click()
    page.get_by_label("Id").fill("clip")
    page.get_by_label("Source").fill(str(clip))  # a file on the server: it ends
    page.get_by_role("spinbutton", name="Frames per second").fill("5")
    page.get_by_role("button", name="Add stream").click()
    status = page.locator("li.stream[data-id='clip'] .status")
    try:
        expect(status).to_contain_text("processing", timeout=WAIT_MS)
        rate = re.search(r"processing ([\d.]+) frames/s", status.inner_text())
        assert rate is not None
        shown = float(rate.group(1))
        rates = [float(str(a["fps"])) for a in answers if a.get("state") == "running"]
        assert any(abs(shown - r) <= 0.05 for r in rates), (shown, rates)
        # The clip ends: "ended" once (not "ended · ended"), how many frames, no stale rate.
        expect(status).to_contain_text("ended", timeout=WAIT_MS)
        text = status.inner_text()
        assert text.count("ended") == 1, text
        assert "frames/s" not in text and "fps" not in text, text
        assert re.search(r"\d+ frames processed", text), text
    finally:
        page.unroute("**/v1/streams")
        item = page.locator("li.stream[data-id='clip']")
        item.get_by_role("button", name="Remove").click()
        page.locator("#confirm-dialog").get_by_role("button", name="Remove").click()
        expect(item).to_have_count(0)


def test_an_empty_server_says_what_to_do_on_every_screen(
    browser: Browser, tmp_path: Path, faces_dir: Path
) -> None:
    srv = Server(tmp_path / "data")
    script = axe_script(REPO / ".cache" / "axe-core")
    context = browser.new_context(bypass_csp=True, viewport={"width": 1200, "height": 900})
    page = context.new_page()
    try:
        page.goto(srv.url + "/")
        expect(page.locator("#server-status")).to_contain_text("0 people")
        recognise(page, faces_dir / "probes" / "two_people.jpg")
        card = page.locator("article.result").first
        # Not "unknown 100%": nobody to compare with, and the page says what to do.
        assert card.locator("tr.face td:nth-child(2)").all_text_contents() == ["—", "—"]
        expect(card).to_contain_text("add people with a few photos each in the People tab")
        found = {"Recognise": accessibility_violations(page, script)}
        page.get_by_role("tab", name="People").click()
        expect(page.locator("#people-empty")).to_contain_text("Nobody is enrolled yet")
        found["People"] = accessibility_violations(page, script)
        page.get_by_role("tab", name="Gallery health").click()
        page.get_by_role("button", name="Check the gallery").click()
        expect(page.locator("#review-summary")).to_contain_text(
            "add people with a few photos each in the People tab", timeout=WAIT_MS
        )
        page.get_by_role("tab", name="Streams").click()
        expect(page.locator("#streams-empty")).to_contain_text("Add a camera above")
        found["Streams"] = accessibility_violations(page, script)
        page.get_by_role("tab", name="Events").click()
        expect(page.locator("#events-empty")).to_contain_text("No events yet")
        found["Events"] = accessibility_violations(page, script)
        assert {screen: v for screen, v in found.items() if v} == {}
    finally:
        context.close()
        assert srv.stop() == 0


# ------------------------------------------- issue 19, section 3: verify and gallery health


def turned_on_its_side(photo: Path, target: Path) -> Path:
    """``photo`` stored turned 90° anticlockwise, with EXIF orientation 6 ("turn it 90°
    clockwise to show it"): upright again for whoever applies the tag."""
    with Image.open(photo) as upright:
        exif = Image.Exif()
        exif[0x0112] = 6
        upright.transpose(Image.Transpose.ROTATE_90).save(target, quality=95, exif=exif)
    return target


def boxes_lie_where_the_server_found_the_faces(figure: Locator, image: dict[str, Any]) -> None:
    """Each face's button covers the face's box on the photo as shown (the box in pixels of
    the EXIF-turned photo, which the browser must show turned the same way)."""
    photo = figure.locator("img")
    natural = photo.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert natural == [image["width"], image["height"]]
    shown = photo.bounding_box()
    assert shown is not None
    scale_x, scale_y = shown["width"] / image["width"], shown["height"] / image["height"]
    assert scale_x == pytest.approx(scale_y, rel=0.01)  # shown upright, not turned or stretched
    picks = figure.locator("button.pick")
    expect(picks).to_have_count(len(image["faces"]))
    for index, face in enumerate(image["faces"]):
        pick = picks.nth(index)
        assert pick.get_attribute("data-index") == str(index)
        got = pick.bounding_box()
        assert got is not None
        assert got["x"] == pytest.approx(shown["x"] + face["left"] * scale_x, abs=1.5)
        assert got["y"] == pytest.approx(shown["y"] + face["top"] * scale_y, abs=1.5)
        assert got["width"] == pytest.approx((face["right"] - face["left"]) * scale_x, abs=1.5)
        assert got["height"] == pytest.approx((face["bottom"] - face["top"]) * scale_y, abs=1.5)
        pressed = "true" if index == image["compared"] else "false"
        expect(pick).to_have_attribute("aria-pressed", pressed)


def test_verify_shows_both_photos_with_the_faces_boxed_and_compares_the_face_picked(
    page: Page, faces_dir: Path, tmp_path: Path
) -> None:
    probes = faces_dir / "probes"
    # two_people.jpg holds obama (face 0, on the left) and biden (face 1, the largest).
    second = turned_on_its_side(probes / "two_people.jpg", tmp_path / "two_people_turned.jpg")
    page.get_by_role("tab", name="Verify").click()
    page.set_input_files("#verify-first", str(probes / "obama-480p.jpg"))
    page.set_input_files("#verify-second", str(second))
    with page.expect_response("**/v1/verify*", timeout=WAIT_MS) as asked:
        page.get_by_role("button", name="Compare", exact=True).click()
    answer = asked.value.json()
    assert asked.value.request.url.endswith("/v1/verify")  # the largest of each, at first
    assert [len(i["faces"]) for i in answer["images"]] == [1, 2]
    assert answer["images"][1]["width"] > answer["images"][1]["height"]  # upright: landscape
    result = page.locator("#verify-result")
    expect(result.locator(".verdict")).to_have_text("Different people", timeout=WAIT_MS)
    expect(result).to_contain_text("face 2 (the largest) was compared")
    photos = page.locator("#verify-photos figure")
    expect(photos).to_have_count(2)
    for figure, image in zip(photos.all(), answer["images"], strict=True):
        boxes_lie_where_the_server_found_the_faces(figure, image)

    # By keyboard: Tab to obama's face in the second photo and press Enter.
    obama = page.get_by_role("button", name="Face 1 of 2 in the second photo, at the top left")
    obama.focus()
    with page.expect_response("**/v1/verify*", timeout=WAIT_MS) as asked:
        page.keyboard.press("Enter")
    assert asked.value.request.url.endswith("/v1/verify?second_face=0")
    expect(result.locator(".verdict")).to_have_text("The same person", timeout=WAIT_MS)
    expect(result).to_contain_text("face 1 (as chosen) was compared")
    picked = photos.nth(1).locator("button.pick[data-index='0']")
    expect(picked).to_have_attribute("aria-pressed", "true")
    expect(picked).to_have_accessible_name(re.compile(r"compared$"))
    expect(picked).to_be_focused()  # the focus stays on the face picked
    boxes_lie_where_the_server_found_the_faces(photos.nth(1), asked.value.json()["images"][1])

    # With the mouse, back to biden's.
    photos.nth(1).locator("button.pick[data-index='1']").click()
    expect(result.locator(".verdict")).to_have_text("Different people", timeout=WAIT_MS)
    expect(photos.nth(1).locator("button.pick[data-index='1']")).to_have_attribute(
        "aria-pressed", "true"
    )


def test_gallery_health_merges_one_person_under_two_names_and_deletes_an_empty_one(
    browser: Browser, tmp_path: Path, people_dir: Path, faces_dir: Path
) -> None:
    srv = Server(tmp_path / "data")
    c = srv.client
    script = axe_script(REPO / ".cache" / "axe-core")
    context = browser.new_context(bypass_csp=True, viewport={"width": 1200, "height": 900})
    try:
        photos = {
            "obama": [people_dir / "obama" / n for n in ("obama.jpg", "obama2.jpg")],
            "Barack": [faces_dir / "probes" / n for n in ("obama1.jpg", "obama3.jpg")],
        }
        for name, files in photos.items():
            assert c.post("/v1/people", json={"name": name}).status_code == 201
            for file in files:
                enrolled = c.post(f"/v1/people/{name}/faces", files={"images": file.read_bytes()})
                assert enrolled.json()["enrolled"] == 1, enrolled.text
        assert c.post("/v1/people", json={"name": "Nobody Yet"}).status_code == 201

        page = context.new_page()
        page.goto(srv.url + "/")
        page.get_by_role("tab", name="Gallery health").click()
        page.get_by_role("button", name="Check the gallery").click()
        expect(page.locator("#review-summary")).to_contain_text("faces checked", timeout=WAIT_MS)
        same = page.locator("li.finding[data-kind='same_person']")
        empty = page.locator("li.finding[data-kind='empty']")
        expect(same).to_have_count(1)
        expect(empty).to_have_count(1)
        expect(same.locator("strong")).to_have_text("Barack and obama: one person under two names?")
        expect(empty.locator("strong")).to_have_text("Nobody Yet: no faces")
        assert "null" not in page.locator("#review-list").inner_text()
        # Each finding offers its own fix, and no other.
        expect(same.get_by_role("button")).to_have_text(["Merge into obama"])
        expect(empty.get_by_role("button")).to_have_text(["Delete Nobody Yet"])
        assert accessibility_violations(page, script) == []

        # The merge asks first, naming both; Cancel changes nothing.
        same.get_by_role("button", name="Merge into obama").click()
        dialog = page.locator("#confirm-dialog")
        expect(dialog.locator("#confirm-text")).to_have_text(
            "Merge Barack into obama? Every face of Barack moves to obama, and Barack is "
            "deleted. This cannot be undone."
        )
        assert accessibility_violations(page, script) == []
        dialog.get_by_role("button", name="Cancel").click()
        assert c.get("/v1/people/Barack").json()["face_count"] == 2
        same.get_by_role("button", name="Merge into obama").click()
        dialog.get_by_role("button", name="Merge").click()
        expect(page.locator("#review-status")).to_have_text(
            "Barack was merged into obama: 2 faces moved.", timeout=WAIT_MS
        )
        expect(same).to_have_count(0)
        assert c.get("/v1/people/Barack").status_code == 404
        assert c.get("/v1/people/obama").json()["face_count"] == 4

        # A face enrolled since the check: the person is no longer empty and is kept.
        biden = (people_dir / "biden" / "biden.jpg").read_bytes()
        added = c.post("/v1/people/Nobody Yet/faces", files={"images": biden}).json()
        empty.get_by_role("button", name="Delete Nobody Yet").click()
        expect(page.locator("#messages")).to_contain_text(
            "Nobody Yet has 1 face now, so was not deleted.", timeout=WAIT_MS
        )
        expect(empty).to_have_count(0)  # checked again: not empty any more
        assert c.get("/v1/people/Nobody Yet").json()["face_count"] == 1
        face = added["results"][0]["face_ids"][0]
        assert c.delete(f"/v1/people/Nobody Yet/faces/{face}").status_code == 200
        page.get_by_role("button", name="Check the gallery").click()
        empty.get_by_role("button", name="Delete Nobody Yet").click()
        expect(page.locator("#review-status")).to_have_text(
            "Nobody Yet was deleted.", timeout=WAIT_MS
        )
        expect(page.locator("#messages")).to_be_empty()
        expect(page.locator("li.finding")).to_have_count(0)
        expect(page.locator("#review-summary")).to_contain_text("nothing to fix")
        assert c.get("/v1/people/Nobody Yet").status_code == 404
    finally:
        context.close()
        assert srv.stop() == 0


# ------------------------------------------------ issue 21: the console's script as ES modules

PACKAGE = Path(facelens.__file__).parent  # the server's own: the package installed in .venv


def test_the_page_loads_each_module_as_javascript_under_its_policy_without_an_error(
    browser: Browser, server: Server
) -> None:
    """The page's one module script imports the others: each is fetched, with a JavaScript
    type (a module with any other is refused) and the page's policy, and runs: no error in
    the console (where Chromium reports a script the policy blocked) and none thrown."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    scripts: dict[str, Response] = {}

    def console_error(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console: {message.text}")

    def failed(request: Request) -> None:
        problems.append(f"{request.url}: {request.failure}")

    def script(response: Response) -> None:
        if response.request.resource_type == "script":
            scripts[urlsplit(response.url).path] = response

    page.on("console", console_error)
    page.on("pageerror", lambda error: problems.append(f"thrown: {error}"))
    page.on("requestfailed", failed)
    page.on("response", script)
    try:
        opened = page.goto(server.url + "/")
        assert opened is not None and opened.headers["content-security-policy"] == POLICY
        # They ran: main.js asked for the status (status.js through api.js) and the People
        # tab lists who is enrolled (people.js, thumbnails.js).
        expect(page.locator("#server-status")).to_contain_text("Ready · model")
        page.get_by_role("tab", name="People").click()
        expect(page.locator("li.person img.avatar").first).to_be_visible(timeout=WAIT_MS)
        modules = {"/console/js/" + f.name for f in (PACKAGE / "web" / "js").glob("*.js")}
        assert "/console/js/main.js" in modules and len(modules) > 10
        assert set(scripts) == modules  # each imported (none left unused), nothing else
        for path, response in sorted(scripts.items()):
            assert response.status == 200, path
            assert response.headers["content-type"] == "text/javascript; charset=utf-8", path
            assert response.headers["content-security-policy"] == POLICY, path
            assert response.headers["x-content-type-options"] == "nosniff", path
        assert problems == []
    finally:
        context.close()


def raw_get(url: str, path: str) -> tuple[int, bytes]:
    """GET ``path`` sent exactly as written: a browser or httpx would resolve ``..`` first."""
    address = urlsplit(url)
    assert address.hostname is not None and address.port is not None
    request = f"GET {path} HTTP/1.1\r\nHost: {address.netloc}\r\nConnection: close\r\n\r\n"
    answer = b""
    with socket.create_connection((address.hostname, address.port), timeout=60) as connection:
        connection.sendall(request.encode())
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.parametrize(
    ("path", "outside"),
    [
        ("/console/../api/console.py", "api/console.py"),
        ("/console/%2e%2e/api/console.py", "api/console.py"),
        ("/console/js/../../api/console.py", "api/console.py"),
        ("/console/js/%2E%2E/%2E%2E/__init__.py", "__init__.py"),
        ("/console/js/../../../facelens/settings.py", "settings.py"),
        ("/console/../../../../../../etc/passwd", "/etc/passwd"),
        ("/console//etc/passwd", "/etc/passwd"),
        ("/console/js", None),  # a folder
        ("/console/js/", None),
        ("/console/js/nothing.js", None),
        ("/console/index.html", None),
    ],
)
def test_no_file_outside_the_consoles_folder_can_be_fetched(
    server: Server, path: str, outside: str | None
) -> None:
    status, body = raw_get(server.url, path)
    assert status == 404, (path, body[:200])
    assert b"not_found" in body
    if outside is not None:
        text = Path(outside) if outside.startswith("/") else PACKAGE / outside
        assert text.read_bytes()[:60] not in body
