"""Drive the app from scripts (the browser tests, bench/bench_players.py): `python -m app` on a free localhost port
in its own process, and pages of it in headless Chromium (playwright), opened and ready to use."""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1400, "height": 1000}
MODEL_READY = re.compile("model live|not available")  # the model box once the bundled model has loaded (or not)


class AppStartError(RuntimeError):
    """`python -m app` exited or did not answer in time; the message ends with its log."""


def chromium_binary() -> str | None:
    """Debian's chromium (`bash setup.sh --browser`), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_app(root: Path, max_frames: int = 32, timeout_s: float = 90) -> Iterator[str]:
    """Run `python -m app` with its session folders and Gradio's cache under `root` (its TMPDIR) and its output in
    `root/app.log`; yields its URL once it answers, stops it on exit. Raises AppStartError if it never answers."""
    env = {**os.environ, "TMPDIR": str(root), "GRADIO_ANALYTICS_ENABLED": "False", "S2VC_MAX_FRAMES": str(max_frames)}
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with open(root / "app.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "app", "--port", str(port)], cwd=REPO, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            _wait_until_up(proc, url, timeout_s, root / "app.log")
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_until_up(proc: subprocess.Popen, url: str, timeout_s: float, log: Path) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline and proc.poll() is None:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    state = "exited" if proc.poll() is not None else f"did not answer within {timeout_s:.0f} s"
    raise AppStartError(f"the app {state}:\n" + log.read_text()[-3000:])


def open_page(browser: Any, url: str, wait_for_model: bool = True) -> Any:
    """A new page of `browser` (a playwright Browser) on the app, its Run button there; with `wait_for_model`, also
    the bundled model's status (live or not available)."""
    from playwright.sync_api import expect

    page = browser.new_page(viewport=VIEWPORT)
    page.goto(url)
    page.locator("#s2vc-run").wait_for(timeout=30_000)
    if wait_for_model:
        expect(page.locator("#s2vc-model")).to_contain_text(MODEL_READY, timeout=120_000)
    return page
