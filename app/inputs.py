"""Turn what the user gave (upload, raw yuv420p with size and fps, or a bundled sample) into a checked clip.

Every failure is an `InputError` whose message is shown in the page as is.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.settings import CLIP_SUFFIXES, Limits

FIT = "fit the limit"
DOWNSCALES = {"original size": 1, "1/2": 2, "1/4": 4, FIT: 0}  # 0: the largest size within the pixel limit


class InputError(ValueError):
    """A problem with the user's input, worded for the page."""


@dataclass
class Clip:
    """Frames ready for coding: uint8 RGB [T,H,W,3]."""

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
    frames, fps, source = _read(path, raw_size, raw_fps, start, count, factor, limits)
    notes = []
    size = scaled_size(source, factor, limits.max_pixels)
    if size != source:
        frames = _downscale(frames, size)
        how = downscale if factor else f"to {size[0]}x{size[1]} (the largest size within the limit)"
        notes.append(f"downscaled {how} from {source[0]}x{source[1]}")
    if len(frames) < 2:
        raise InputError(f"{path.name} gives only 1 frame from frame {start}; a video comparison needs at least 2.")
    w, h = frames.shape[2], frames.shape[1]
    if w < 16 or h < 16:
        raise InputError(f"{w}x{h} is too small; frames must be at least 16x16.")
    return Clip(frames=np.ascontiguousarray(frames), fps=fps, name=path.name, source_size=source, start=start,
                notes=notes)


def _read(path: Path, raw_size: tuple[int, int] | None, raw_fps: float | None, start: int, count: int,
          factor: int, limits: Limits) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Probe (size, fps, frame count) before decoding only the frames asked for."""
    from model.video_io import VideoReadError, probe_video, read_video

    raw = path.suffix.lower() == ".yuv"
    if raw and (not raw_size or not all(raw_size) or not raw_fps):
        raise InputError("Raw .yuv needs its width, height and fps (8-bit yuv420p).")
    size, fps = (tuple(int(v) for v in raw_size), float(raw_fps)) if raw else (None, None)
    try:
        info = probe_video(path, size=size, fps=fps)
    except VideoReadError as exc:
        raise InputError(f"{path.name} could not be read as a video: {_reason(exc, path)}") from None
    except Exception as exc:  # PyAV/PIL errors on files that only look like videos
        raise InputError(f"{path.name} could not be read as a video ({type(exc).__name__}).") from None
    width, height = scaled_size((info.width, info.height), factor, limits.max_pixels)
    if width * height > limits.max_pixels:
        scaled = f" ({width * height:,} after the 1/{factor} downscale)" if factor > 1 else ""
        fits = next((name for name, f in DOWNSCALES.items()
                     if f > factor and (info.width // f) * (info.height // f) <= limits.max_pixels), FIT)
        raise InputError(f"{info.width}x{info.height} is {info.width * info.height:,} pixels per frame{scaled}; "
                         f"the limit is {limits.max_pixels:,}. Choose the downscale \"{fits}\", then press "
                         "\"Load clip\".")
    if info.frames is not None and info.frames <= start:
        raise InputError(f"{path.name} has {info.frames} frames; start frame {start} is past its end.")
    try:
        frames, rate = read_video(path, start=start, frames=count, size=size, fps=fps)
    except VideoReadError as exc:
        raise InputError(f"{path.name} could not be decoded: {_reason(exc, path)}") from None
    except Exception as exc:
        raise InputError(f"{path.name} could not be decoded ({type(exc).__name__}).") from None
    return frames, rate, (info.width, info.height)


def _reason(exc: Exception, path: Path) -> str:
    """The reader's one-line reason without the server-side path."""
    return str(exc).replace(f"{path}: ", "").replace(str(path), path.name)


def scaled_size(size: tuple[int, int], factor: int, max_pixels: int) -> tuple[int, int]:
    """(width, height) after a downscale: 1/factor (even sizes), or for `FIT` (factor 0) the largest even size of
    the same aspect within `max_pixels` (the size itself when it fits)."""
    width, height = size
    if factor == 1 or (factor == 0 and width * height <= max_pixels):
        return width, height
    if factor == 0:
        scale = (max_pixels / (width * height)) ** 0.5
        return int(width * scale) // 2 * 2, int(height * scale) // 2 * 2
    return width // factor // 2 * 2, height // factor // 2 * 2


def _downscale(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-average downscale by FFmpeg's swscale (through PyAV) to `size` (width, height)."""
    import av

    width, height = size
    return np.stack([av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
                     .reformat(width, height, interpolation="AREA").to_ndarray(format="rgb24") for f in frames])

