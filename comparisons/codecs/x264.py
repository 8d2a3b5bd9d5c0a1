"""H.264 through x264 (libx264 in the imageio-ffmpeg FFmpeg); an extra baseline."""
from __future__ import annotations

from pathlib import Path

from comparisons.codecs.ffmpeg_codec import FFmpegCodec


class X264(FFmpegCodec):
    """x264, low-delay P (no B-frames), aq-mode=0; its options SEI is stripped; CRF searched to the target."""

    name = "x264"
    label = "H.264 (x264)"
    encoder = "libx264"
    demuxer = "h264"
    suffix = ".264"
    default_preset = "veryslow"
    qp_adaptation = "off (aq-mode=0)"
    gop = "low delay P: bframes=0, scenecut=0, closed GOP"

    def codec_args(self, x: float, frames: int, passno: int | None, stats: Path) -> list[str]:
        key = self.intra_period or "infinite"
        params = f"bframes=0:keyint={key}:min-keyint={self.intra_period or 1}:scenecut=0:aq-mode=0:open-gop=0"
        return ["-preset", self.preset, "-crf", f"{x:.2f}", "-x264-params", params, "-pix_fmt", "yuv420p",
                "-bsf:v", "filter_units=remove_types=6"]
