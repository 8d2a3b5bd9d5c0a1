"""PSNR on RGB (the S2VC paper's protocol) and on Y'CbCr 4:2:0 weighted 6:1:1 (codec-standard)."""
from __future__ import annotations

import numpy as np

from comparisons.metrics.base import Metric
from model.video_io import rgb_to_yuv420


def psnr_planes(ref: np.ndarray, test: np.ndarray, peak: float = 255.0) -> np.ndarray:
    """PSNR per leading index over all other axes; identical -> inf."""
    diff = ref.astype(np.float64) - test.astype(np.float64)
    mse = (diff * diff).reshape(len(ref), -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        return np.where(mse > 0, 10.0 * np.log10(peak * peak / np.maximum(mse, 1e-300)), np.inf)


class PSNRRGB(Metric):
    name = "psnr_rgb"
    variant = "PSNR on 8-bit RGB, MSE over all pixels and channels, peak 255; inf for identical frames"
    higher_is_better = True
    unit = "dB"

    def per_frame(self, ref: np.ndarray, test: np.ndarray) -> np.ndarray:
        return psnr_planes(ref, test)


class PSNRYUV611(Metric):
    name = "psnr_yuv611"
    variant = ("PSNR (6*Y + Cb + Cr)/8 on 8-bit Y'CbCr 4:2:0 (BT.601 limited range, 2x2 box chroma) made from "
               "both RGB clips; peak 255")
    higher_is_better = True
    unit = "dB"

    def per_frame(self, ref: np.ndarray, test: np.ndarray) -> np.ndarray:
        planes = [psnr_planes(a, b) for a, b in zip(rgb_to_yuv420(ref), rgb_to_yuv420(test), strict=True)]
        return (6.0 * planes[0] + planes[1] + planes[2]) / 8.0
