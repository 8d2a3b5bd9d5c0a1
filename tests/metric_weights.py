"""Test helper: seeded random weight files with the upstream keys and shapes, written into a torch hub cache."""
from __future__ import annotations

from pathlib import Path
from unittest import mock

import torch

from comparisons.metrics.weights import WEIGHT_FILES


def random_state_dict(key: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """The state dict of the network behind ``WEIGHT_FILES[key]``, built with seeded random weights."""
    from model.compat import patch_torchvision

    patch_torchvision()
    torch.manual_seed(seed)
    if key == "inception":
        from torch_fidelity import feature_extractor_inceptionv3 as fe

        # its constructor always loads weights: let it load nothing, keep the random initialisation
        with mock.patch.object(fe, "load_state_dict_from_url", return_value=None), \
                mock.patch.object(fe.FeatureExtractorInceptionV3, "load_state_dict", return_value=None):
            net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
        return net.state_dict()
    from torchvision import models
    from torchvision.models import optical_flow

    build = {"alexnet": models.alexnet, "vgg16": models.vgg16, "raft_large": optical_flow.raft_large}[key]
    return build(weights=None).state_dict()


BIG = 1 << 20  # elements: the ImageNet classifier layers, which no metric uses


def _small(tensor: torch.Tensor) -> torch.Tensor:
    """A tensor of over `BIG` elements becomes its first value broadcast to its shape: same key and shape, and
    torch.save stores one element (AlexNet's file shrinks from 244 MB to 10 MB, VGG16's from 553 MB to 59 MB)."""
    return tensor.flatten()[:1].clone().expand(tensor.shape) if tensor.numel() > BIG else tensor


def write_weights(torch_home: Path, keys: tuple[str, ...] = tuple(WEIGHT_FILES), seed: int = 0) -> dict[str, Path]:
    """Save each key's random state dict under its upstream file name in ``torch_home/hub/checkpoints``."""
    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for key in keys:
        paths[key] = folder / WEIGHT_FILES[key].filename
        torch.save({k: _small(v) for k, v in random_state_dict(key, seed).items()}, paths[key])
    return paths
