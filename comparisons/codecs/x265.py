"""HEVC through x265 (libx265 in the imageio-ffmpeg FFmpeg)."""
from __future__ import annotations

from pathlib import Path

from comparisons.codecs.ffmpeg_codec import FFmpegCodec


class X265(FFmpegCodec):
    """x265, low-delay P (no B-frames), aq-mode=0, no info SEI; CRF searched to the target bitrate."""

    name = "x265"
    label = "HEVC (x265)"
    encoder = "libx265"
    demuxer = "hevc"
    suffix = ".265"
    default_preset = "veryslow"
    qp_adaptation = "off (aq-mode=0)"
    gop = "low delay P: bframes=0, scenecut=0, closed GOP"

    def codec_args(self, x: float, frames: int, passno: int | None, stats: Path) -> list[str]:
        key = self.intra_period or -1  # -1: x265's single-keyframe (infinite GOP) mode
        params = f"bframes=0:keyint={key}:min-keyint={key if key > 0 else 1}:scenecut=0:open-gop=0:aq-mode=0:info=0:log-level=error"
        return ["-preset", self.preset, "-crf", f"{x:.2f}", "-x265-params", params, "-pix_fmt", "yuv420p"]
