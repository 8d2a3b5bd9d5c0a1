"""Initialisation for training a model from scratch (the tiny preset); never used when weights are loaded.

The one-step formula x0 = (r - sqrt(1 - abar) * eps) / sqrt(abar) amplifies its inputs about 14.6x at t = 999, so
randomly initialised networks start with x0 latents far larger than the autoencoder's (latent MSE ~75 instead of
~1). Zeroing the U-Net's `conv_out` (eps = 0 at the start) and scaling `vae_reduction`'s output by sqrt(abar)
makes x0 start as a plain function of the decoded feature f_pix (a further 0.1 keeps it below the latents'
scale, since random decoders emit features of std ~5); the U-Net then learns a residual
correction. The architecture is unchanged.
"""
from __future__ import annotations

import math

import torch
from torch import nn


@torch.no_grad()
def init_one_step_for_scratch(model: nn.Module) -> None:
    """Apply the initialisation above to `model.unet` (an OneStepUNet)."""
    unet = model.unet
    nn.init.zeros_(unet.conv_out.weight)
    nn.init.zeros_(unet.conv_out.bias)
    scale = 0.1 * math.sqrt(unet.alpha_bar)
    reduction = unet.vae_reduction
    for layer in (reduction.blocks[-1], reduction.short_cut):
        if isinstance(layer, nn.Conv2d):
            layer.weight.mul_(scale)
            if layer.bias is not None:
                layer.bias.mul_(scale)
