"""VVC through Fraunhofer VVenC (libvvenc in the imageio-ffmpeg FFmpeg); decoded by FFmpeg's native VVC decoder."""
from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar

from comparisons.codecs.ffmpeg_codec import FFmpegCodec

PRESETS = ("faster", "fast", "medium", "slow", "slower")


class VVenC(FFmpegCodec):
    """VVenC low delay (PicReordering=0, GOP 8, hierarchical QP), QPA off, 2-pass rate control.

    libvvenc takes only 10-bit input, so the 8-bit 4:2:0 planes are shifted left by 2 (internal depth 10).
    Integer QPs step the rate by ~10%, too coarse for a 5% tolerance, so VVenC's own 2-pass rate control is used
    and its requested bitrate corrected from the real file size.
    """

    name = "vvenc"
    label = "VVC (VVenC)"
    encoder = "libvvenc"
    demuxer = "vvc"
    suffix = ".266"
    default_preset = "slower"
    input_bits: ClassVar[int] = 10
    passes = 2
    knob = "bitrate"
    knob_range = (-2.0, 2.0)  # log(requested/target)
    knob_step = 0.001
    qp_adaptation = "off (qpa=0)"
    gop = "low delay B without reordering: PicReordering=0, GOPSize=8, DecodingRefreshType=none"

    def __init__(self, preset: str | None = None, **kwargs: object) -> None:
        if preset is not None and str(preset) not in PRESETS:
            raise ValueError(f"vvenc preset must be one of {', '.join(PRESETS)}, got {preset!r}")
        super().__init__(preset, **kwargs)  # type: ignore[arg-type]

    def codec_args(self, x: float, frames: int, passno: int | None, stats: Path) -> list[str]:
        params = f"PicReordering=0:DecodingRefreshType=none:GOPSize=8:IntraPeriod={self.intra_period or -1}"
        return ["-preset", self.preset, "-qpa", "0", "-b:v", str(round(math.exp(x) * 1000)), "-pass", str(passno),
                "-passlogfile", str(stats), "-vvenc-params", params]
