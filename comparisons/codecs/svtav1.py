"""AV1 through SVT-AV1 (libsvtav1 in the imageio-ffmpeg FFmpeg); an extra baseline."""
from __future__ import annotations

from pathlib import Path

from comparisons.codecs.ffmpeg_codec import FFmpegCodec


class SvtAv1(FFmpegCodec):
    """SVT-AV1 low-delay prediction structure (pred-struct=1), variance boost off; fractional CRF searched."""

    name = "svtav1"
    label = "AV1 (SVT-AV1)"
    encoder = "libsvtav1"
    demuxer = "obu"
    suffix = ".obu"
    default_preset = "6"
    knob_range = (1.0, 70.0)
    knob_start = 45.0
    knob_step = 0.25
    slope = -0.06
    qp_adaptation = "off (enable-variance-boost=0)"
    gop = "low delay (pred-struct=1), no reordering"

    def codec_args(self, x: float, frames: int, passno: int | None, stats: Path) -> list[str]:
        key = self.intra_period or -1  # -1: one key frame only
        params = f"pred-struct=1:keyint={key}:crf={x:g}:enable-variance-boost=0"
        return ["-preset", self.preset, "-svtav1-params", params]
