"""SSIM as FFmpeg's ssim filter (x264's implementation) computes it, on each RGB channel, then averaged."""
from __future__ import annotations

import numpy as np

from comparisons.metrics.base import Metric


def ssim_ffmpeg(ref: np.ndarray, test: np.ndarray, peak: int = 255) -> np.ndarray:
    """SSIM of ``[T,H,W]`` planes: sums over 4x4 blocks, 8x8 windows at stride 4, no Gaussian, float64."""
    t, h, w = ref.shape
    h4, w4 = h // 4, w // 4
    a = ref[:, : h4 * 4, : w4 * 4].astype(np.int64).reshape(t, h4, 4, w4, 4)
    b = test[:, : h4 * 4, : w4 * 4].astype(np.int64).reshape(t, h4, 4, w4, 4)
    sums = [x.sum(axis=(2, 4)) for x in (a, b, a * a + b * b, a * b)]
    s1, s2, ss, s12 = (x[:, :-1, :-1] + x[:, 1:, :-1] + x[:, :-1, 1:] + x[:, 1:, 1:] for x in sums)
    c1 = int(0.01 * 0.01 * peak * peak * 64 + 0.5)
    c2 = int(0.03 * 0.03 * peak * peak * 64 * 63 + 0.5)
    var = ss * 64 - s1 * s1 - s2 * s2
    cov = s12 * 64 - s1 * s2
    num = (2.0 * s1 * s2 + c1) * (2.0 * cov + c2)
    den = (1.0 * s1 * s1 + 1.0 * s2 * s2 + c1) * (1.0 * var + c2)
    return (num / den).mean(axis=(1, 2))


class SSIMRGB(Metric):
    name = "ssim_rgb"
    variant = "SSIM as FFmpeg's ssim filter (8x8 windows at stride 4, no Gaussian), mean of R, G, B"
    higher_is_better = True

    def applicable(self, frames: int, height: int, width: int) -> str | None:
        return None if min(height, width) >= 8 else f"frames must be at least 8x8, got {width}x{height}"

    def per_frame(self, ref: np.ndarray, test: np.ndarray) -> np.ndarray:
        return np.mean([ssim_ffmpeg(ref[..., c], test[..., c]) for c in range(3)], axis=0)
