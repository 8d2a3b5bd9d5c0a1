"""MS-SSIM with pytorch_msssim, exactly the S2VC paper's settings."""
from __future__ import annotations

import numpy as np

from comparisons.metrics.base import Metric, batched

MIN_SIDE = 161  # 5 scales with an 11-tap window need more than (11 - 1) * 2**4 pixels


class MSSSIM(Metric):
    name = "ms_ssim_rgb"
    variant = "MS-SSIM (pytorch_msssim, RGB in [0,1], data_range 1, 5 scales, Gaussian window 11, sigma 1.5)"
    higher_is_better = True

    @classmethod
    def availability(cls) -> str | None:
        try:
            import pytorch_msssim  # noqa: F401
        except ImportError as exc:
            return f"pytorch_msssim is not installed ({exc})"
        return None

    def applicable(self, frames: int, height: int, width: int) -> str | None:
        ok = min(height, width) >= MIN_SIDE
        return None if ok else f"frames must be at least {MIN_SIDE} px on the short side, got {width}x{height}"

    def per_frame(self, ref: np.ndarray, test: np.ndarray) -> np.ndarray:
        from pytorch_msssim import ms_ssim

        return batched(lambda a, b: ms_ssim(a, b, data_range=1.0, size_average=False), ref, test, device=self.device)
