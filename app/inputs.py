"""Turn what the user gave (upload, raw yuv420p with size and fps, or a bundled sample) into a checked clip.

Every failure is an `InputError` whose message is shown in the page as is.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.settings import CLIP_SUFFIXES, Limits

DOWNSCALES = {"original size": 1, "1/2": 2, "1/4": 4}


class InputError(ValueError):
    """A problem with the user's input, worded for the page."""


@dataclass
class Clip:
    """Frames ready for coding: uint8 RGB [T,H,W,3] with even H and W."""

    frames: np.ndarray
    fps: float
    name: str
    source_size: tuple[int, int]
    start: int
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        return int(self.frames.shape[2]), int(self.frames.shape[1])

    def describe(self) -> str:
        w, h = self.size
        text = (f"**{self.name}**: {len(self.frames)} frames from frame {self.start}, {w}x{h}, "
                f"{self.fps:g} fps ({len(self.frames) / self.fps:.2f} s)")
        return text + "".join(f"\n- {note}" for note in self.notes)


def check_file(path: str | Path | None, limits: Limits) -> Path:
    """Reject missing, empty, oversized or unsupported files before any decoding."""
    if not path:
        raise InputError("No clip given: upload a video or pick a sample clip.")
    path = Path(path)
    if not path.is_file():
        raise InputError(f"The file {path.name} could not be found (the upload may have expired); upload it again.")
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"{path.name} is empty (0 bytes).")
    if size > limits.max_file_mb * 1024 * 1024:
        raise InputError(f"{path.name} is {size / 2**20:.1f} MB; the limit is {limits.max_file_mb} MB.")
    if path.suffix.lower() not in CLIP_SUFFIXES:
        raise InputError(f"{path.name}: unsupported file type {path.suffix or '(none)'}; "
                         f"use one of {', '.join(CLIP_SUFFIXES)}.")
    return path


def load_clip(path: str | Path | None, limits: Limits, *, start: int = 0, count: int | None = None,
              downscale: str = "original size", raw_size: tuple[int, int] | None = None,
              raw_fps: float | None = None) -> Clip:
    """Read, trim (`start`, `count` frames) and downscale a clip, enforcing `limits`."""
    path = check_file(path, limits)
    start, count = int(start or 0), int(count) if count else limits.max_frames
    if start < 0 or count < 1:
        raise InputError("Start frame must be 0 or more and the number of frames at least 1.")
    if count > limits.max_frames:
        raise InputError(f"{count} frames asked for; the limit is {limits.max_frames}.")
    factor = DOWNSCALES.get(downscale)
    if factor is None:
        raise InputError(f"Unknown downscale {downscale!r}; choose one of {', '.join(DOWNSCALES)}.")
    if path.suffix.lower() == ".yuv":
        frames, fps, source = _read_raw(path, raw_size, raw_fps, start, count)
    else:
        frames, fps, source = _read_container(path, start, count)
    if len(frames) == 0:
        raise InputError(f"{path.name} has no frames at or after frame {start}.")
    notes = []
    if factor > 1:
        frames = _downscale(frames, factor)
        notes.append(f"downscaled 1/{factor} from {source[0]}x{source[1]}")
    frames, cropped = _even(frames)
    if cropped:
        notes.append("cropped by one pixel to even width/height (4:2:0 needs even sizes)")
    if len(frames) < 2:
        raise InputError(f"{path.name} gives only 1 frame from frame {start}; a video comparison needs at least 2.")
    w, h = frames.shape[2], frames.shape[1]
    if w * h > limits.max_pixels:
        raise InputError(f"{w}x{h} is {w * h:,} pixels per frame; the limit is {limits.max_pixels:,}. "
                         "Pick a downscale.")
    if w < 16 or h < 16:
        raise InputError(f"{w}x{h} is too small; frames must be at least 16x16.")
    return Clip(frames=np.ascontiguousarray(frames), fps=fps, name=path.name, source_size=source, start=start,
                notes=notes)


def _read_raw(path: Path, raw_size: tuple[int, int] | None, raw_fps: float | None, start: int,
              count: int) -> tuple[np.ndarray, float, tuple[int, int]]:
    from app.interim import read_yuv420p

    if not raw_size or not all(raw_size) or not raw_fps:
        raise InputError("Raw .yuv needs its width, height and fps (yuv420p, 8 bit).")
    w, h = int(raw_size[0]), int(raw_size[1])
    frame_bytes = w * h * 3 // 2
    total = path.stat().st_size
    if w % 2 or h % 2 or total % frame_bytes:
        raise InputError(f"{path.name} is {total} bytes, not a whole number of {w}x{h} yuv420p frames "
                         f"({frame_bytes} bytes each); check the size fields.")
    frames = read_yuv420p(path, w, h, start=start, count=count)
    return frames, float(raw_fps), (w, h)


def _read_container(path: Path, start: int, count: int) -> tuple[np.ndarray, float, tuple[int, int]]:
    from app.interim import VideoReadError, probe, read_video

    try:
        info = probe(path)
        frames = read_video(path, start=start, count=count)
    except (VideoReadError, OSError, ValueError) as exc:
        raise InputError(f"{path.name} could not be read as a video: {exc}") from None
    return frames, float(info.fps), (int(info.width), int(info.height))


def _downscale(frames: np.ndarray, factor: int) -> np.ndarray:
    from app.interim import resize

    t, h, w, _ = frames.shape
    return resize(frames, (w // factor) // 2 * 2, (h // factor) // 2 * 2)


def _even(frames: np.ndarray) -> tuple[np.ndarray, bool]:
    h, w = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2
    return frames[:, :h, :w], (h, w) != frames.shape[1:3]
