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
    """What one upload may be; shown in the page and enforced before any decoding work."""

    max_frames: int = 100  # 2 s at 50 fps
    max_pixels: int = 832 * 480
    max_file_mb: int = 200

    def describe(self) -> str:
        return (f"at most {self.max_frames} frames, {self.max_pixels:,} pixels per frame "
                f"(e.g. 832x480), {self.max_file_mb} MB per file")


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

    @classmethod
    def from_env(cls) -> "Settings":
        limits = Limits(
            max_frames=_env_int("S2VC_MAX_FRAMES", Limits.max_frames),
            max_pixels=_env_int("S2VC_MAX_PIXELS", Limits.max_pixels),
            max_file_mb=_env_int("S2VC_MAX_FILE_MB", Limits.max_file_mb),
        )
        return cls(
            checkpoint=os.environ.get("S2VC_CHECKPOINT") or None,
            model_preset=os.environ.get("S2VC_PRESET") or None,
            device=os.environ.get("S2VC_DEVICE", "auto"),
            limits=limits,
            session_ttl_s=_env_int("S2VC_SESSION_TTL", 3600),
            concurrency=_env_int("S2VC_CONCURRENCY", 1),
        )


def sample_clips() -> dict[str, Path]:
    """Bundled sample clips by file name."""
    if not CLIPS_DIR.is_dir():
        return {}
    return {p.name: p for p in sorted(CLIPS_DIR.iterdir()) if p.suffix.lower() in CLIP_SUFFIXES}
