"""The learned networks behind the metrics, built once per process and device from the cached weights.

LPIPS-Alex (lpips package, v0.1 heads bundled; AlexNet ImageNet backbone from the hub cache), ST-LPIPS Alex
(stlpips-pytorch, all weights bundled), DISTS (DISTS_pytorch, alpha/beta bundled; VGG16 ImageNet backbone from the
hub cache), RAFT-large (torchvision, Raft_Large_Weights.DEFAULT from the hub cache) and the FID Inception v3
(torch-fidelity's, through torchmetrics). The backbones' files are fetched by `comparisons.metrics.weights` when
missing and online; the libraries' own loaders then read them from the cache, never from the network.
"""
from __future__ import annotations

import functools

import torch

from comparisons.metrics.weights import ALEXNET, INCEPTION, RAFT_LARGE, VGG16, ensure


def resolve_device(device: str | None) -> str:
    """``auto`` -> ``cuda`` when a GPU is present, else ``cpu``; ``cuda`` without a GPU is a one-line error."""
    device = device or "cpu"
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA GPU here (use --device cpu or auto)")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"unknown device {device!r}; use auto, cpu or cuda[:N]")
    return device


def _torchvision() -> None:
    from model.compat import patch_torchvision

    patch_torchvision()


def _ready(net: torch.nn.Module, device: str) -> torch.nn.Module:
    net.requires_grad_(False)
    return net.eval().to(device)


@functools.lru_cache(maxsize=None)
def lpips_alex(device: str = "cpu"):  # -> lpips.LPIPS
    ensure(ALEXNET)
    _torchvision()
    import lpips

    return _ready(lpips.LPIPS(net="alex", version="0.1", verbose=False), device)


@functools.lru_cache(maxsize=None)
def st_lpips_alex(device: str = "cpu"):  # -> stlpips_pytorch.stlpips.LPIPS
    _torchvision()
    from stlpips_pytorch import stlpips

    return _ready(stlpips.LPIPS(net="alex", variant="shift_tolerant", verbose=False), device)


@functools.lru_cache(maxsize=None)
def dists_vgg(device: str = "cpu"):  # -> DISTS_pytorch.DISTS
    ensure(VGG16)
    _torchvision()
    from DISTS_pytorch import DISTS

    return _ready(DISTS(), device)


@functools.lru_cache(maxsize=None)
def raft_large(device: str = "cpu"):  # -> torchvision.models.optical_flow.RAFT
    path = ensure(RAFT_LARGE)
    _torchvision()
    from torchvision.models.optical_flow import raft_large as build

    net = build(weights=None, progress=False)
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return _ready(net, device)


def fid_inception(device: str = "cpu"):  # -> torchmetrics FrechetInceptionDistance, fresh (it accumulates)
    path = ensure(INCEPTION)
    _torchvision()
    from torchmetrics.image.fid import FrechetInceptionDistance

    return FrechetInceptionDistance(feature=2048, feature_extractor_weights_path=str(path)).to(device)
