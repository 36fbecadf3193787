"""Take the web console's screenshots (docs/web-console.md, two in the README): a real server
with the shared people enrolled, Debian's Chromium, the shared probes and video clip. Run by
``scripts/screenshots``.

    .venv/bin/python -m tests.support.screenshots docs/screenshots
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.conftest import shared_data
from tests.support.browser import chromium, fake_camera_args, playwright_session, to_y4m
from tests.support.mjpeg import MjpegCamera
from tests.support.server import FACELENS, Server

WAIT_MS = 60_000


def _recognise(page: Page, *files: Path) -> None:
    page.set_input_files("#recognize-files", [str(f) for f in files])
    expect(page.locator("article.result[data-state]")).to_have_count(len(files), timeout=WAIT_MS)


def _two_names_and_nobody(server: Server) -> None:
    """For the gallery health screen: one person under two names, and a person with no photo."""
    server.client.post("/v1/people", json={"name": "Barack"})
    for probe in ("obama1.jpg", "obama3.jpg"):
        photo = (shared_faces() / "probes" / probe).read_bytes()
        server.client.post("/v1/people/Barack/faces", files={"images": photo})
    server.client.post("/v1/people", json={"name": "Kit"})


def _verify(page: Page, first: Path, second: Path) -> None:
    """Compare two photos, then pick the other face of the second (the largest is compared
    first)."""
    page.get_by_role("tab", name="Verify").click()
    page.set_input_files("#verify-first", str(first))
    page.set_input_files("#verify-second", str(second))
    page.get_by_role("button", name="Compare", exact=True).click()
    other = page.locator("#verify-photos [data-photo='second'] button.pick[aria-pressed='false']")
    expect(other).to_have_count(1, timeout=WAIT_MS)
    other.click()
    expect(page.locator("#verify-result")).to_contain_text("as chosen", timeout=WAIT_MS)
    page.evaluate("document.activeElement.blur()")  # no focus ring on the face picked


def shared_faces() -> Path:
    return shared_data("faces", "FACELENS_TEST_FACES", "probes.csv", "people")


def main(out: Path) -> None:
    faces = shared_faces()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        subprocess.run(
            [FACELENS, "--data-dir", str(root / "data"), "enroll", str(faces / "people")],
            check=True,
            capture_output=True,
        )
        server = Server(root / "data")
        try:
            # One photo under the wrong name, for the gallery health screen.
            biden = (faces / "people" / "biden" / "biden2.jpg").read_bytes()
            server.client.post("/v1/people/obama/faces", files={"images": biden})
            clip = to_y4m(faces / "video" / "short_hamilton_clip.mp4", root / "clip.y4m")
            with playwright_session() as playwright:
                with chromium(playwright) as browser:
                    page = browser.new_page(viewport={"width": 1200, "height": 820})
                    page.goto(server.url + "/")
                    probes = faces / "probes"
                    _recognise(page, probes / "obama_and_biden.jpg", probes / "kit_with_rose.jpg")
                    page.screenshot(path=out / "recognise.png")
                    page.get_by_role("tab", name="People").click()
                    expect(page.locator("li.person img.avatar")).to_have_count(6)
                    page.screenshot(path=out / "people.png")
                    _two_names_and_nobody(server)
                    page.get_by_role("tab", name="Gallery health").click()
                    page.get_by_role("button", name="Check the gallery").click()
                    expect(page.locator("li.finding").first).to_be_visible(timeout=WAIT_MS)
                    page.wait_for_timeout(500)  # thumbnails
                    page.screenshot(path=out / "gallery-health.png")
                    _verify(page, probes / "obama-480p.jpg", probes / "two_people.jpg")
                    page.screenshot(path=out / "verify.png")
                    camera = MjpegCamera(faces / "video" / "short_hamilton_clip.mp4").start()
                    try:
                        server.client.post(
                            "/v1/streams", json={"id": "stage", "source": camera.url, "fps": 8}
                        )
                        page.get_by_role("tab", name="Streams").click()
                        status = page.locator("li.stream .status")
                        expect(status).to_contain_text("in view", timeout=WAIT_MS)
                        page.wait_for_function(
                            "() => document.querySelector('li.stream img').naturalWidth > 0",
                            timeout=WAIT_MS,
                        )
                        page.screenshot(path=out / "streams.png")
                        page.get_by_role("tab", name="Events").click()
                        expect(page.locator("tr.event").first).to_be_visible(timeout=WAIT_MS)
                        page.wait_for_timeout(3000)  # a few more events
                        page.screenshot(path=out / "events.png")
                        server.client.delete("/v1/streams/stage")
                    finally:
                        camera.stop()
                    phone = browser.new_page(
                        viewport={"width": 390, "height": 760}, device_scale_factor=1
                    )
                    phone.goto(server.url + "/")
                    _recognise(phone, probes / "two_people.jpg")
                    phone.screenshot(path=out / "phone.png")
                with chromium(playwright, *fake_camera_args(clip)) as browser:
                    page = browser.new_page(viewport={"width": 1000, "height": 640})
                    page.goto(server.url + "/")
                    page.get_by_role("tab", name="Camera").click()
                    page.get_by_role("button", name="Start camera").click()
                    named = page.locator("#camera-faces", has_text="lin_manuel_miranda")
                    expect(named).to_be_visible(timeout=WAIT_MS)
                    page.screenshot(path=out / "camera.png")
        finally:
            server.stop()
    for shot in sorted(out.glob("*.png")):
        print(f"{shot} ({shot.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"))
