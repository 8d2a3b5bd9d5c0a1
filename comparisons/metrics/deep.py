"""The learned distances: LPIPS-Alex (lpips package), ST-LPIPS (stlpips-pytorch) and DISTS (DISTS_pytorch).

Backbone ImageNet weights are loaded only from the torch hub cache, never downloaded:
  LPIPS-Alex: ``alexnet-owt-7be5be79.pth``; DISTS: ``vgg16-397923af.pth`` (torchvision's file names),
in ``$TORCH_HOME/hub/checkpoints/`` (``~/.cache/torch/hub/checkpoints`` by default). ST-LPIPS ships all its weights.
Models are built once per process.
"""
from __future__ import annotations

import functools
import importlib.util

import numpy as np

from comparisons.metrics.base import Metric, batched, hub_checkpoint, missing_weights

ALEXNET = "alexnet-owt-7be5be79.pth"
VGG16 = "vgg16-397923af.pth"


def _package(module: str, pip: str) -> str | None:
    return None if importlib.util.find_spec(module) else f"the {pip} package is not installed"


@functools.lru_cache(maxsize=None)
def lpips_alex():  # -> lpips.LPIPS
    from model.compat import patch_torchvision

    patch_torchvision()
    import lpips

    return lpips.LPIPS(net="alex", version="0.1", verbose=False).eval()


@functools.lru_cache(maxsize=None)
def st_lpips_alex():  # -> stlpips_pytorch.stlpips.LPIPS
    from model.compat import patch_torchvision

    patch_torchvision()
    from stlpips_pytorch import stlpips

    return stlpips.LPIPS(net="alex", variant="shift_tolerant", verbose=False).eval()


@functools.lru_cache(maxsize=None)
def dists_vgg():  # -> DISTS_pytorch.DISTS
    from model.compat import patch_torchvision

    patch_torchvision()
    from DISTS_pytorch import DISTS

    return DISTS().eval()


class DeepMetric(Metric):
    """A learned distance on RGB frames of at least 32x32, evaluated in batches; subclasses give `distance()`."""

    def applicable(self, frames: int, height: int, width: int) -> str | None:
        return None if min(height, width) >= 32 else f"frames must be at least 32x32, got {width}x{height}"

    def distance(self):  # -> callable(a, b) on [B,3,H,W] tensors in [0,1]
        raise NotImplementedError

    def per_frame(self, ref: np.ndarray, test: np.ndarray) -> np.ndarray:
        return batched(self.distance(), ref, test)


class LPIPSAlex(DeepMetric):
    name = "lpips_alex"
    variant = "LPIPS v0.1, AlexNet backbone (ImageNet), lpips package, RGB mapped to [-1,1] (normalize=True)"
    higher_is_better = False

    @classmethod
    def availability(cls) -> str | None:
        return _package("lpips", "lpips") or (None if hub_checkpoint(ALEXNET) else missing_weights("AlexNet ImageNet", ALEXNET))

    def distance(self):
        net = lpips_alex()
        return lambda a, b: net(a, b, normalize=True)


class STLPIPS(DeepMetric):
    name = "st_lpips_alex"
    variant = "ST-LPIPS (shift-tolerant LPIPS, AlexNet variant, weights bundled in stlpips-pytorch vST0.0)"
    higher_is_better = False

    @classmethod
    def availability(cls) -> str | None:
        return _package("stlpips_pytorch", "stlpips-pytorch") or _package("torchsummary", "torchsummary")

    def distance(self):
        net = st_lpips_alex()
        return lambda a, b: net(a, b, normalize=True)


class DISTS(DeepMetric):
    name = "dists"
    variant = "DISTS (DISTS_pytorch defaults, VGG16 ImageNet backbone), RGB in [0,1]"
    higher_is_better = False

    @classmethod
    def availability(cls) -> str | None:
        return (_package("DISTS_pytorch", "dists-pytorch")
                or (None if hub_checkpoint(VGG16) else missing_weights("VGG16 ImageNet", VGG16)))

    def distance(self):
        return dists_vgg()
