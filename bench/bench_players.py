"""How far apart the app's synced players drift while looping a 1 s clip, in a real headless browser.

    python bench/bench_players.py                 # idle machine: 30 s of looping
    python bench/bench_players.py --busy 4        # the same with 4 busy-looping processes beside the browser

Starts `python -m app` on a free port (its folders under a temporary folder), uploads the bundled 30-frame sample
(1 s at 30 fps), runs HEVC and VVC (and S2VC when the bundled model is live) at one bitrate, presses "Play all from
the start" and samples every player's position ten times a second. The drift of a sample is the largest distance
on the loop's circle between any player and the leader. Baseline, measured in the same page and run: the same
videos in players that each loop on their own (no sync script). Prints mean, 95th percentile and max of both;
asserts nothing. Needs chromium (`bash setup.sh --browser`).
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.harness import CHROMIUM_ARGS, chromium_binary, open_page, running_app  # noqa: E402

CLIP = REPO / "assets" / "clips" / "cars_320x240_30f.mp4"

# Positions of the app's players and of independent copies of them, as [[t, ...], [t, ...]] with the duration last.
SAMPLE_JS = """() => {
  const pos = sel => Array.from(document.querySelectorAll(sel)).map(v => v.currentTime);
  const v = document.querySelector('#s2vc-players video');
  return [pos('#s2vc-players video'), pos('#bench-free video'), v ? v.duration : 0];
}"""

# The baseline: the same sources in players that loop on their own, started together.
FREE_JS = """() => {
  const box = document.createElement('div'); box.id = 'bench-free'; document.body.appendChild(box);
  for (const v of document.querySelectorAll('#s2vc-players video')) {
    const w = document.createElement('video'); w.src = v.currentSrc || v.src; w.loop = true; w.muted = true;
    w.preload = 'auto'; box.appendChild(w);
  }
}"""
PLAY_FREE_JS = """() => { const g = Array.from(document.querySelectorAll('#bench-free video'));
  g.forEach(v => { v.currentTime = 0; }); g.forEach(v => v.play().catch(() => {})); }"""


def circle_spread(times: list[float], span: float) -> float:
    """Largest distance on a loop of length `span` between the first position and any other."""
    if len(times) < 2 or span <= 0:
        return 0.0
    d = (np.asarray(times[1:]) - times[0]) % span
    return float(np.max(np.minimum(d, span - d)))


def busy() -> None:
    """Burn one core until killed."""
    while True:
        pass


def measure(url: str, seconds: float, chromium: str) -> tuple[list[float], list[float], int, float]:
    """Drift samples of the synced players and of the free ones, the player count and the clip's duration."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = open_page(browser, url)
        page.get_by_label("downscale").click()
        page.get_by_role("option", name="1/2").click()
        page.locator("#s2vc-upload input[type=file]").set_input_files(str(CLIP))
        expect(page.locator("#s2vc-clip")).to_contain_text("30 frames", timeout=60_000)
        page.locator("#s2vc-run").click()
        expect(page.locator("#s2vc-status")).to_contain_text("Done.", timeout=600_000)
        players = page.locator("#s2vc-players video")
        expect(players.first).to_be_visible(timeout=30_000)
        count = players.count()
        page.evaluate(FREE_JS)
        page.wait_for_timeout(2000)  # both sets buffered
        page.get_by_role("button", name="Play all from the start").click()
        page.evaluate(PLAY_FREE_JS)
        synced, free, span = [], [], 0.0
        deadline = time.time() + seconds
        while time.time() < deadline:
            page.wait_for_timeout(100)
            a, b, span = page.evaluate(SAMPLE_JS)
            synced.append(circle_spread(a, span))
            free.append(circle_spread(b, span))
        browser.close()
    return synced, free, count, span


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to sample while looping (default 30)")
    parser.add_argument("--busy", type=int, default=0, help="busy-looping processes beside the browser (default 0)")
    args = parser.parse_args(argv)
    chromium = chromium_binary()
    if chromium is None:
        raise SystemExit("no chromium binary: install it with `bash setup.sh --browser`")
    with tempfile.TemporaryDirectory(prefix="s2vc-bench-players-") as tmp, running_app(Path(tmp)) as url:
        burners = []
        try:
            load0 = os.getloadavg()[0]
            burners = [multiprocessing.Process(target=busy, daemon=True) for _ in range(args.busy)]
            for b in burners:
                b.start()
            synced, free, count, span = measure(url, args.seconds, chromium)
            load1 = os.getloadavg()[0]
        finally:
            for b in burners:
                b.kill()
    print(f"{count} players looping a {span:.2f} s clip for {args.seconds:.0f} s ({len(synced)} samples), "
          f"{args.busy} busy processes, load average {load0:.1f} before, {load1:.1f} after, "
          f"{os.cpu_count()} cores")
    for name, xs in (("synced (the app's script)", synced), ("free (each loops on its own)", free)):
        xs = np.asarray(xs)
        print(f"  {name:30s} drift mean {xs.mean():.3f} s, p95 {np.percentile(xs, 95):.3f} s, max {xs.max():.3f} s")
    settled = np.asarray(synced[len(synced) // 3:])
    print(f"  synced after the first third:  p95 {np.percentile(settled, 95):.3f} s, max {settled.max():.3f} s; "
          f"free/synced p95 ratio {np.percentile(free, 95) / max(np.percentile(synced, 95), 1e-3):.1f}x")


if __name__ == "__main__":
    main()
