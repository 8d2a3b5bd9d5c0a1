"""The learned distances: LPIPS-Alex (lpips package), ST-LPIPS (stlpips-pytorch) and DISTS (DISTS_pytorch).

Their networks come from `comparisons.metrics.nets` (one per process and device; ImageNet backbones from the torch
hub cache, fetched there on first use when online: see `comparisons.metrics.weights`). Frames go through in
batches on the metric's device.
"""
from __future__ import annotations

import importlib.util

import numpy as np

from comparisons.metrics import nets
from comparisons.metrics.base import Metric, batched
from comparisons.metrics.weights import ALEXNET, VGG16, status


def package_missing(module: str, pip: str) -> str | None:
    return None if importlib.util.find_spec(module) else f"the {pip} package is not installed"


class DeepMetric(Metric):
    """A learned distance on RGB frames of at least 32x32, evaluated in batches; subclasses give `distance()`."""

    learned = True
    batch = 8

    def applicable(self, frames: int, height: int, width: int) -> str | None:
        return None if min(height, width) >= 32 else f"frames must be at least 32x32, got {width}x{height}"

    def distance(self):  # -> callable(a, b) on [B,3,H,W] tensors in [0,1]
        raise NotImplementedError

    def per_frame(self, ref: np.ndarray, test: np.ndarray) -> np.ndarray:
        return batched(self.distance(), ref, test, self.batch, self.device)


class LPIPSAlex(DeepMetric):
    name = "lpips_alex"
    variant = "LPIPS v0.1, AlexNet backbone (ImageNet), lpips package, RGB mapped to [-1,1] (normalize=True)"
    higher_is_better = False

    @classmethod
    def availability(cls) -> str | None:
        return package_missing("lpips", "lpips") or status(ALEXNET)

    def distance(self):
        net = nets.lpips_alex(self.device)
        return lambda a, b: net(a, b, normalize=True)


class STLPIPS(DeepMetric):
    name = "st_lpips_alex"
    variant = "ST-LPIPS (shift-tolerant LPIPS, AlexNet variant, weights bundled in stlpips-pytorch vST0.0)"
    higher_is_better = False

    @classmethod
    def availability(cls) -> str | None:
        return package_missing("stlpips_pytorch", "stlpips-pytorch") or package_missing("torchsummary", "torchsummary")

    def distance(self):
        net = nets.st_lpips_alex(self.device)
        return lambda a, b: net(a, b, normalize=True)


class DISTS(DeepMetric):
    name = "dists"
    variant = "DISTS (DISTS_pytorch defaults, VGG16 ImageNet backbone), RGB in [0,1]"
    higher_is_better = False
    batch = 4

    @classmethod
    def availability(cls) -> str | None:
        return package_missing("DISTS_pytorch", "dists-pytorch") or status(VGG16)

    def distance(self):
        return nets.dists_vgg(self.device)
