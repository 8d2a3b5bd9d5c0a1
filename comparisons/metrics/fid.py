"""Patch FID (FID/N after Mentzer et al. 2020, S2VC_ARCHITECTURE.md section 5), clip-level only.

Non-overlapping N x N patches from the top-left (remainder dropped), plus a second grid offset by N/2 when both
sides are >= 1.5 N; reference patches "real", decoded patches "fake"; torchmetrics' FrechetInceptionDistance
(2048-d, uint8 input). Needs torchmetrics with torch-fidelity and the FID Inception weights
``weights-inception-2015-12-05-6726825d.pth`` in ``$TORCH_HOME/hub/checkpoints/``; offline they are missing and
the metric reports itself unavailable.
"""
from __future__ import annotations

import importlib.util

import numpy as np
import torch

from comparisons.metrics.base import Metric, MetricValue, check_pair, hub_checkpoint, missing_weights

INCEPTION = "weights-inception-2015-12-05-6726825d.pth"


def patches(frames: np.ndarray, size: int) -> torch.Tensor:
    """uint8 ``[N,3,size,size]`` patches of ``[T,H,W,3]`` frames on the aligned grid and the half-offset grid."""
    t, h, w = frames.shape[:3]
    out = []
    offsets = [0] + ([size // 2] if min(h, w) >= size + size // 2 else [])
    for off in offsets:
        rows, cols = (h - off) // size, (w - off) // size
        grid = frames[:, off: off + rows * size, off: off + cols * size]
        grid = grid.reshape(t, rows, size, cols, size, 3).transpose(0, 1, 3, 5, 2, 4).reshape(-1, 3, size, size)
        out.append(torch.from_numpy(np.ascontiguousarray(grid)))
    return torch.cat(out)


class PatchFID(Metric):
    patch = 128
    name = f"fid_patch{patch}"
    variant = (f"patch FID: {patch}x{patch} patches (aligned grid + {patch // 2}-px offset grid), torchmetrics "
               "FrechetInceptionDistance 2048-d; clip-level only")
    higher_is_better = False

    @classmethod
    def availability(cls) -> str | None:
        for module, pip in (("torchmetrics", "torchmetrics"), ("torch_fidelity", "torch-fidelity")):
            if importlib.util.find_spec(module) is None:
                return f"the {pip} package is not installed (and the Inception weights {INCEPTION} are needed)"
        return None if hub_checkpoint(INCEPTION) else missing_weights("FID Inception", INCEPTION)

    def applicable(self, frames: int, height: int, width: int) -> str | None:
        ok = min(height, width) >= self.patch
        return None if ok else f"frames must be at least {self.patch} px on the short side, got {width}x{height}"

    def per_frame(self, ref: np.ndarray, test: np.ndarray) -> np.ndarray:
        return np.full(len(ref), np.nan)

    def evaluate(self, ref: np.ndarray, test: np.ndarray) -> MetricValue:
        check_pair(ref, test)
        from torchmetrics.image.fid import FrechetInceptionDistance

        fid = FrechetInceptionDistance(feature=2048)
        fid.update(patches(ref, self.patch), real=True)
        fid.update(patches(test, self.patch), real=False)
        return MetricValue(None, float(fid.compute()))
