"""The app's run, end to end without a browser: upload a clip, run S2VC, HEVC and VVC at one bitrate.

    python bench/bench_app.py                      # 100 frames of 416x240 at 50 fps, 100 kbps
    python bench/bench_app.py --frames 12 --kbps 50

The clip is BasketballPass (PNG frames under $S2VC_SHARED, default ../shared next to the repository) when present,
else the bundled sample clip resized to 416x240 and looped. It is written as an mp4 and loaded through the app's
upload handler; the run goes through `app.handlers.run_comparison` with the app's presets and default metrics, and
every state it streams is rendered as the page renders it (plots, tables). The model loads first, as on page load,
and is not counted. Then times the downloads, reopening the zip as a saved run (no model) and a side-by-side slide
video. Prints the figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app import engine, handlers  # noqa: E402
from bench.clips import BASKETBALL  # noqa: E402
from app.model_slot import ModelSlot  # noqa: E402
from app.settings import CLIPS_DIR, Limits  # noqa: E402
from model.video_io import read_video, write_mp4  # noqa: E402

SIZE = (416, 240)
FPS = 50.0


def make_clip(frames: int) -> tuple[np.ndarray, str]:
    """`frames` RGB frames of 416x240 and where they come from."""
    if BASKETBALL.is_dir():
        clip, _ = read_video(BASKETBALL, frames=frames, fps=FPS)
        if len(clip) == frames and clip.shape[1:3] == SIZE[::-1]:
            return clip, f"BasketballPass ({BASKETBALL})"
    sample = next(iter(sorted(CLIPS_DIR.glob("*.mp4"))))
    source, _ = read_video(sample)
    resized = np.stack([np.asarray(Image.fromarray(f).resize(SIZE, Image.BILINEAR)) for f in source])
    return resized[np.arange(frames) % len(resized)], f"{sample.name} resized to {SIZE[0]}x{SIZE[1]}, looped"


def render(state: dict) -> None:
    """What the page computes from each streamed state: RD plots, tables, conditions, players' records."""
    handlers.rd_figures(state)
    handlers.results_table(state)
    handlers.bd_table(state)
    handlers.conditions_markdown(state)
    handlers.player_records(state)


def describe(record: dict) -> str:
    check = record["decoder_check"]
    decode = f"decode {record['decode_seconds']:.1f} s" if record["decode_seconds"] is not None else "decode pending"
    return (f"{record['key']} (encode {record['encode_seconds']:.1f} s, {decode}"
            f"{', decoder check ' + check if check else ''})")


def run(frames: int, kbps: float, codecs: list[str], checkpoint: str | None) -> None:
    clip_frames, source = make_clip(frames)
    print(f"clip: {source}; {len(clip_frames)} frames {SIZE[0]}x{SIZE[1]} @ {FPS:g} fps")
    slot = ModelSlot(checkpoint=checkpoint or os.environ.get("S2VC_CHECKPOINT") or None, device="cpu")
    if "s2vc" in codecs:
        start = time.perf_counter()
        slot.get()
        print(f"model: loaded in {time.perf_counter() - start:.1f} s (on page load, not counted); "
              f"{handlers.model_markdown(slot).replace('**', '')}")
    available = {m.name for m in engine.metric_choices() if m.reason is None}
    metrics = [m for m in engine.DEFAULT_METRICS if m in available]
    presets = {name: engine.APP_PRESETS.get(name, "default") for name in codecs}
    with tempfile.TemporaryDirectory(prefix="bench_app_") as tmp:
        upload = write_mp4(Path(tmp) / "upload.mp4", clip_frames, FPS)
        start = time.perf_counter()
        clip = handlers.prepare_clip(str(upload), None, 0, 0, 0, 0, frames, "original size", Limits(), Path(tmp))
        print(f"upload handler (decode, checks, preview): {time.perf_counter() - start:.1f} s")
        print(f"run: {', '.join(codecs)} at {kbps:g} kbps, presets {presets}, metrics {', '.join(metrics)}")
        first: dict[str, float] = {}
        checked: float | None = None
        start = time.perf_counter()
        for state in handlers.run_comparison(clip, [kbps], codecs, presets, metrics, Path(tmp), slot):
            render(state)
            now = time.perf_counter() - start
            for record in handlers.records(state):
                if record["codec"] not in first:
                    first[record["codec"]] = now
                    print(f"  {now:6.1f} s  shown: {describe(record)}")
                if record["decoder_check"] and record["decoder_check"] != "pending" and checked is None:
                    checked = now
                    print(f"  {now:6.1f} s  decoder check done: {describe(record)}")
        total = time.perf_counter() - start
        for message in state["messages"]:
            print(f"  message: {message}")
        time_saved_run(state, Path(tmp))
    print("time to first result: " + ", ".join(f"{c} {first[c]:.1f} s" if c in first else f"{c} none"
                                               for c in codecs))
    shown = f"{max(first.values()):.1f} s" if len(first) == len(codecs) else "never (see messages)"
    print(f"all {len(codecs)} shown with plots: {shown}")
    if "s2vc" in codecs:
        s2vc = next((r for r in handlers.records(state) if r["codec"] == "s2vc"), None)
        decode = f"{s2vc['decode_seconds']:.1f} s decode" if s2vc and s2vc["decode_seconds"] is not None else "none"
        print(f"decoder check: done at {checked:.1f} s ({decode})" if checked is not None else "decoder check: none")
    print(f"run done (decoder check included): {total:.1f} s")


def time_saved_run(state: dict, folder: Path) -> None:
    """After the run: the downloads (zip), reopening the zip as a talk would (no model), and a slide video."""
    from app import slides

    start = time.perf_counter()
    exports = handlers.export_files(state)
    print(f"downloads written (zip {Path(exports['zip']).stat().st_size / 2**20:.1f} MB): "
          f"{time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    clip, opened = handlers.open_run(exports["zip"], folder / "talk")
    render(opened)
    print(f"saved run opened from the zip ({len(handlers.records(opened))} results, {clip['count']} frames): "
          f"{time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    slides.side_by_side(opened, "grid", folder / "side_by_side.mp4")
    print(f"side-by-side slide video (2x2): {time.perf_counter() - start:.1f} s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=100, help="frames of the clip (default 100: 2 s at 50 fps)")
    parser.add_argument("--kbps", type=float, default=100.0, help="target bitrate (default 100)")
    parser.add_argument("--codecs", default="s2vc,x265,vvenc", help="comma-separated (default s2vc,x265,vvenc)")
    parser.add_argument("--checkpoint", default=None, help="S2VC model (default $S2VC_CHECKPOINT, else bundled)")
    args = parser.parse_args(argv)
    run(args.frames, args.kbps, [c.strip() for c in args.codecs.split(",") if c.strip()], args.checkpoint)


if __name__ == "__main__":
    main()
