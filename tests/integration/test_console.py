"""The web console in a real browser (Debian's Chromium, driven by Playwright) against a real
server process with the real model and the shared photos."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from playwright.sync_api import Browser, Page, Playwright, expect

from facelens.imaging import encode_image, read_image_file
from tests.browser import (
    accessibility_violations,
    axe_script,
    chromium,
    fake_camera_args,
    playwright_session,
    to_y4m,
)
from tests.conftest import REPO
from tests.helpers import Probe
from tests.mjpeg import MjpegCamera
from tests.server import FACELENS, Server

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
    srv = Server(root / "data")
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
        page.get_by_role("button", name="Compare").click()
        if verdict:
            expect(page.locator("#verify-result .verdict")).to_have_text(verdict, timeout=WAIT_MS)
        else:  # the largest face of two_people.jpg is obama's too, and the page says it chose
            expect(page.locator("#verify-result")).to_contain_text("largest", timeout=WAIT_MS)
        expect(page.locator("#verify-result")).to_contain_text("Distance")
    page.set_input_files("#verify-second", str(probes / "obama_and_biden.jpg"))
    page.set_input_files("#verify-first", str(faces_dir / "people" / "biden" / "biden2.jpg"))
    page.get_by_role("button", name="Compare").click()
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
        page.get_by_role("tab", name="Recognise").click()
        page.set_input_files("#recognize-files", str(faces_dir / "probes" / "obama1.jpg"))
        expect(page.locator("#key-dialog")).to_be_visible()
        page.locator("#key-input").fill(key)
        page.get_by_role("button", name="Use this key").click()
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
        page.get_by_role("tab", name="Gallery health").click()
        page.get_by_role("button", name="Check the gallery").click()
        expect(page.locator("#review-summary")).to_contain_text("checked", timeout=WAIT_MS)
        found["Gallery health"] = accessibility_violations(page, script)
        for tab in ("Camera", "Verify", "Streams", "Events"):
            page.get_by_role("tab", name=tab).click()
            found[tab] = accessibility_violations(page, script)
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
        expect(item.locator(".status")).to_contain_text("fps", timeout=WAIT_MS)
        view = item.locator("img")
        page.wait_for_function(
            "img => img.naturalWidth === 640", arg=view.element_handle(), timeout=WAIT_MS
        )
        item.get_by_role("button", name="Remove").click()
        page.locator("#confirm-dialog").get_by_role("button", name="Remove").click()
        expect(page.locator("li.stream")).to_have_count(0)
    finally:
        camera.stop()
