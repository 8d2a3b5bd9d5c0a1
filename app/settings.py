"""App settings: model location, device, input limits, session lifetime and queue sizes (CLI and environment)."""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLIPS_DIR = REPO / "assets" / "clips"
CLIP_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".y4m", ".yuv")


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


@dataclass(frozen=True)
class Limits:
    """What one upload may be; shown in the page and enforced before any decoding work. The defaults are what a
    CPU codes in minutes; `default_limits` raises them for the official model on a GPU."""

    max_frames: int = 100  # 2 s at 50 fps
    max_pixels: int = 832 * 480
    max_file_mb: int = 200

    def describe(self) -> str:
        example = next((f" (e.g. {w}x{h})" for w, h in ((1920, 1080), (1280, 720), (832, 480))
                        if w * h <= self.max_pixels), "")
        return (f"at most {self.max_frames} frames, {self.max_pixels:,} pixels per frame{example}, "
                f"{self.max_file_mb} MB per file")

    def with_env(self) -> "Limits":
        """These limits, overridden by `S2VC_MAX_FRAMES`, `S2VC_MAX_PIXELS` and `S2VC_MAX_FILE_MB` where set."""
        return Limits(max_frames=_env_int("S2VC_MAX_FRAMES", self.max_frames),
                      max_pixels=_env_int("S2VC_MAX_PIXELS", self.max_pixels),
                      max_file_mb=_env_int("S2VC_MAX_FILE_MB", self.max_file_mb))


GPU_LIMITS = Limits(max_frames=100, max_pixels=1920 * 1080, max_file_mb=1000)
GPU_MEMORY_NOTE = ("1080p with the official model needs a GPU with about 16.5 GiB free: the peak measured for "
                   "coding alone at 1920x1080 on an H200")


def default_limits(device: str, official: bool) -> Limits:
    """1080p for the official model on CUDA (see `GPU_MEMORY_NOTE`); otherwise what a CPU codes in minutes."""
    return GPU_LIMITS if official and device.startswith("cuda") else Limits()


@dataclass(frozen=True)
class Settings:
    """Everything `python -m app` can be told; `from_env` reads the `S2VC_*` environment variables."""

    checkpoint: str | None = None
    model_preset: str | None = None
    device: str = "auto"
    limits: Limits = field(default_factory=Limits)
    session_ttl_s: int = 3600
    concurrency: int = 1
    queue_size: int = 16
    temp_root: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "s2vc-studio")
    open_path: str | None = None  # a saved run every new page opens with
    open_sequence: str | None = None  # which run, when open_path holds several

    @property
    def sessions_root(self) -> Path:
        """Where the per-session folders go (inside `temp_root`, which is also Gradio's file cache)."""
        return self.temp_root / "sessions"

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(
            checkpoint=os.environ.get("S2VC_CHECKPOINT") or None,
            model_preset=os.environ.get("S2VC_PRESET") or None,
            device=os.environ.get("S2VC_DEVICE", "auto"),
            limits=Limits().with_env(),
            session_ttl_s=_env_int("S2VC_SESSION_TTL", 3600),
            concurrency=_env_int("S2VC_CONCURRENCY", 1),
        )


def sample_clips() -> dict[str, Path]:
    """Bundled sample clips by file name."""
    if not CLIPS_DIR.is_dir():
        return {}
    return {p.name: p for p in sorted(CLIPS_DIR.iterdir()) if p.suffix.lower() in CLIP_SUFFIXES}
