"""End to end in a real headless browser: a bad upload gets a message; a short clip, run at one bitrate, gives
players, slider, plots and table; the frame box moves the views; the side-by-side slide video is exported; the
downloaded zip opens again in a new page as it was shown.

Uses Debian's chromium (`bash setup.sh --browser`) through playwright; skipped only when no chromium binary exists.
The screenshots go to $S2VC_SCREENSHOT when set (after opening the saved run: *_opened.png), else into the test's
temporary folder (removed with it).
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from app.harness import CHROMIUM_ARGS, AppStartError, chromium_binary, open_page, running_app

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "assets" / "clips" / "cars_320x240_30f.mp4"
CHROMIUM = chromium_binary()

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory):
    """`python -m app` on a free localhost port, started once for this file's tests, with its session folders and
    Gradio's cache under a temp folder: (url, that folder)."""
    root = tmp_path_factory.mktemp("app")
    try:
        with running_app(root, timeout_s=60) as url:
            yield url, root
    except AppStartError as err:
        pytest.fail(str(err))


def _gone(folder: Path, timeout_s: float = 120) -> bool:
    """Wait until `folder` is removed (a closed page's session goes in the background: Gradio notices the closed
    connection at its next heartbeat, later on a loaded machine)."""
    deadline = time.time() + timeout_s
    while folder.exists() and time.time() < deadline:
        time.sleep(0.5)
    return not folder.exists()


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (install it with `bash setup.sh --browser`)")
def test_upload_run_and_see_results(app: tuple[str, Path], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    app_url, root = app

    screenshot = Path(os.environ.get("S2VC_SCREENSHOT") or tmp_path / "s2vc_app_e2e.png")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = open_page(browser, app_url)
        s2vc = "model live" in page.locator("#s2vc-model").inner_text()
        frames, size = ("8", "160x120") if s2vc else ("16", "320x240")  # S2VC on a CPU: keep the clip small

        not_a_video = tmp_path / "notes.mp4"
        not_a_video.write_text("these are lecture notes, not a video\n" * 20)
        page.locator("#s2vc-upload input[type=file]").set_input_files(str(not_a_video))
        expect(page.locator("#s2vc-clip")).to_contain_text("could not be read as a video", timeout=30_000)
        assert "Traceback" not in page.content()
        page.locator("#s2vc-upload").get_by_role("button", name="Clear").click()
        expect(page.locator("#s2vc-clip")).to_contain_text("30 frames", timeout=30_000)  # back to the sample

        page.locator("#s2vc-count input").fill(frames)
        if s2vc:
            page.get_by_label("downscale").click()
            page.get_by_role("option", name="1/2").click()
        page.locator("#s2vc-upload input[type=file]").set_input_files(str(CLIP))
        expect(page.locator("#s2vc-clip")).to_contain_text(f"{frames} frames", timeout=30_000)
        expect(page.locator("#s2vc-clip")).to_contain_text(size)

        page.locator("#s2vc-run").click()
        # the run says what it does from its first second (not after its first result), and no bar covers it
        expect(page.locator("#s2vc-status")).to_contain_text(re.compile(r"steps done; now: \w"), timeout=30_000)
        expect(page.locator("#s2vc-status")).to_contain_text("Done.", timeout=100_000)
        expect(page.locator("#s2vc-zip")).to_be_enabled(timeout=30_000)

        # original, x265, vvenc (and S2VC)
        expect(page.locator("#s2vc-players video")).to_have_count(4 if s2vc else 3, timeout=10_000)
        players = page.locator("#s2vc-players").inner_text()
        assert "HEVC (x265)" in players and "VVC (VVenC)" in players and "kbps" in players
        assert ("S2VC · q" in players) == s2vc
        page.get_by_role("button", name="Play all from the start").click()
        page.wait_for_timeout(1500)
        times = page.evaluate("Array.from(document.querySelectorAll('#s2vc-players video'))"
                              ".map(v => [v.readyState, v.currentTime, v.error && v.error.code])")
        assert all(state >= 2 and error is None for state, _, error in times), times  # decodable in the browser
        assert all(t > 0 for _, t, _ in times) and max(t for _, t, _ in times) - min(t for _, t, _ in times) < 0.3
        expect(page.locator("#s2vc-slider img").first).to_be_visible(timeout=30_000)
        expect(page.locator("#s2vc-plots .js-plotly-plot").first).to_be_visible(timeout=30_000)
        table = page.locator("#s2vc-table").inner_text()
        assert "HEVC (x265)" in table and "VVC (VVenC)" in table and "medium" in table and "faster" in table
        assert ("bit-exact" in table) == s2vc  # S2VC's decoder check ran after its result was shown

        if s2vc:  # the bundled model is the small demonstration one, and the page says so
            expect(page.locator("#s2vc-model-note")).to_contain_text("not the paper's")

        slider = page.locator("#s2vc-slider img").first
        before = slider.get_attribute("src")
        page.locator("#s2vc-frame input[type=number]").fill("5")
        page.locator("#s2vc-frame input[type=number]").press("Enter")
        expect(slider).not_to_have_attribute("src", before, timeout=10_000)  # the views follow the typed frame

        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)

        with page.expect_download() as download:
            page.locator("#s2vc-zip").click()
        bundle = tmp_path / "saved.zip"
        download.value.save_as(bundle)

        page.get_by_text("Slides: media for a talk").click()
        page.locator("#s2vc-slides-btn").click()
        expect(page.locator("#s2vc-slides")).to_contain_text("side_by_side_grid", timeout=60_000)
        sessions = root / "s2vc-studio" / "sessions"
        (video,) = sessions.glob("*/run-*/slides/side_by_side_grid.mp4")
        _check_side_by_side(video, int(frames))

        opened = open_page(browser, app_url, wait_for_model=False)  # a talk, later: a new session
        opened.get_by_text("Open a saved run").click()
        opened.locator("#s2vc-open input[type=file]").set_input_files(str(bundle))
        expect(opened.locator("#s2vc-status")).to_contain_text("Opened saved.zip", timeout=60_000)
        expect(opened.locator("#s2vc-players video")).to_have_count(4 if s2vc else 3, timeout=10_000)
        assert _player_labels(opened) == _player_labels(page) and len(_player_labels(page)) == (4 if s2vc else 3)
        expect(opened.locator("#s2vc-table")).to_contain_text("HEVC (x265)")
        expect(opened.locator("#s2vc-plots .js-plotly-plot").first).to_be_visible(timeout=30_000)
        expect(opened.locator("#s2vc-slider img").first).to_be_visible(timeout=30_000)
        expect(opened.locator("#s2vc-zip")).to_be_enabled(timeout=30_000)
        opened.screenshot(path=str(screenshot.with_name(screenshot.stem + "_opened.png")), full_page=True)
        assert len(list(sessions.iterdir())) == 2, "each page has its session folder"

        b_value = page.get_by_label("B (right)").input_value()
        assert b_value != "original", b_value  # a codec's result: the list that a new run resets
        codecs = page.locator("#s2vc-codecs")
        for label in ("VVC (VVenC)", "S2VC"):  # a second run, short: x265 only
            if codecs.get_by_label(label, exact=True).count():
                codecs.get_by_label(label, exact=True).uncheck()
        page.locator("#s2vc-run").click()
        expect(page.locator("#s2vc-status")).to_contain_text("Done. 1 result(s).", timeout=100_000)
        expect(page.locator("#s2vc-players video")).to_have_count(2, timeout=10_000)
        expect(page.locator("#s2vc-zip")).to_be_enabled(timeout=30_000)  # the events after the run have run
        page.wait_for_timeout(1000)  # and the frame views after them
        assert page.locator(".toast-body.error").count() == 0, page.locator(".toast-body").all_inner_texts()
        assert "is not in the list of choices" not in page.content()
        opened.close()
        page.close()
        browser.close()
    assert screenshot.stat().st_size > 10_000
    deadline = time.time() + 30
    while any(sessions.iterdir()) and time.time() < deadline:
        time.sleep(0.5)
    assert not any(sessions.iterdir()), "the session folder outlived the closed page"
    uploads = [p for p in (root / "s2vc-studio").rglob("*") if p.suffix in (".mp4", ".zip") and p.is_file()]
    assert not uploads, f"uploads outlived their sessions: {uploads}"


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (install it with `bash setup.sh --browser`)")
def test_two_tabs_share_one_upload(app: tuple[str, Path]) -> None:
    """Two tabs upload the same clip (Gradio keeps one copy): closing one leaves the other's clip in place."""
    from playwright.sync_api import expect, sync_playwright

    from app.session import UPLOADS

    app_url, root = app
    sessions = root / "s2vc-studio" / "sessions"
    with sync_playwright() as pw:
        browsers = [pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS) for _ in range(2)]
        tabs, folders = [], []
        for browser in browsers:  # one at a time, so that each tab's session folder is known (the one it adds)
            before = set(sessions.iterdir()) if sessions.is_dir() else set()
            tab = open_page(browser, app_url, wait_for_model=False)
            tab.locator("#s2vc-count input").fill("4")
            tab.locator("#s2vc-upload input[type=file]").set_input_files(str(CLIP))
            expect(tab.locator("#s2vc-clip")).to_contain_text("4 frames", timeout=30_000)
            (folder,) = set(sessions.iterdir()) - before
            tabs.append(tab)
            folders.append(folder)
        listed = [set((folder / UPLOADS).read_text().split()) for folder in folders]
        assert len(folders) == 2 and listed[0] == listed[1] and len(listed[0]) == 1, listed  # one file for both
        (upload,) = map(Path, listed[0])
        assert upload.is_file() and upload.name == CLIP.name

        browsers[0].close()  # the first tab goes: its folder goes, the upload the second tab uses stays
        assert _gone(folders[0]), "the closed tab's session folder stayed"
        assert upload.is_file(), "closing one tab deleted the upload another tab is still using"
        tabs[1].locator("#s2vc-count input").fill("3")
        tabs[1].get_by_role("button", name="Load clip").click()  # the clip is read from the upload again
        expect(tabs[1].locator("#s2vc-clip")).to_contain_text("3 frames", timeout=30_000)

        browsers[1].close()  # the last tab that lists it: now it goes
    assert _gone(folders[1]) and not upload.exists() and not upload.parent.exists()


def _player_labels(page) -> list[str]:
    """The players' labels ("original", then "codec · preset · kbps"), without their time displays."""
    text = page.locator("#s2vc-players").inner_text().splitlines()
    return [line for line in text if line == "original" or " kbps" in line]


def _check_side_by_side(path: Path, frames: int) -> None:
    """The exported slide video: H.264 at 1920x1080 (the default slide size), every frame of the clip at its rate."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(stream))
        assert stream.codec_context.name == "h264" and count == frames
        assert (stream.codec_context.width, stream.codec_context.height) == (1920, 1080)
        assert abs(container.duration / 1e6 - frames / 30) < 0.05  # the sample clip is 30 fps
