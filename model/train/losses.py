"""Rate-distortion losses: loss = lambda_r * D + R, with R in bits per pixel and one lambda per rate point.

D = pixel_weight * (MSE or L1 on [0,1] pixels) + perceptual_weight * ST-LPIPS + latent_weight * latent MSE
    (+ adversarial_weight * generator hinge loss when a discriminator is used).
With `decode` off only the latent term is available (the autoencoder's decoder is skipped, which is much cheaper).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from model.compat import patch_torchvision


def bits_from_likelihoods(likelihoods: dict[str, torch.Tensor]) -> torch.Tensor:
    """-log2 of every likelihood tensor, summed per batch item -> [B]."""
    return sum(-torch.log2(lik.clamp_min(1e-9)).flatten(1).sum(dim=1) for lik in likelihoods.values())


def frame_bits(out: dict) -> torch.Tensor:
    """Estimated bits [B] of one coded frame: its `bits`, else the sum over its likelihoods."""
    if out.get("bits") is not None:
        return out["bits"]
    if out.get("likelihoods"):
        return bits_from_likelihoods(out["likelihoods"])
    raise KeyError("frame output has neither 'bits' nor 'likelihoods'")


def psnr(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-item PSNR [B] in dB of [-1,1] images, measured on [0,1] after clamping."""
    mse = ((x_hat.detach().clamp(-1, 1) - x) / 2).pow(2).flatten(1).mean(dim=1)
    return -10 * torch.log10(mse.clamp_min(1e-10))


class STLPIPS(nn.Module):
    """Shift-tolerant LPIPS (AlexNet, weights shipped by `stlpips-pytorch`), frozen; inputs in [-1,1] -> [B]."""

    def __init__(self):
        super().__init__()
        patch_torchvision()
        from stlpips_pytorch import stlpips

        self.net = stlpips.LPIPS(net="alex", variant="shift_tolerant", verbose=False).eval().requires_grad_(False)

    def train(self, mode: bool = True) -> "STLPIPS":
        return super().train(False)  # dropout stays off

    def forward(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.net(x_hat.float(), x.float()).flatten()


class PatchDiscriminator(nn.Module):
    """A small PatchGAN (spectral-normalised convs) on [-1,1] images; returns one logit map per image."""

    def __init__(self, width: int = 64, layers: int = 3):
        super().__init__()
        sn = nn.utils.spectral_norm
        blocks: list[nn.Module] = [sn(nn.Conv2d(3, width, 4, 2, 1)), nn.LeakyReLU(0.2)]
        ch = width
        for _ in range(layers - 1):
            blocks += [sn(nn.Conv2d(ch, ch * 2, 4, 2, 1)), nn.LeakyReLU(0.2)]
            ch *= 2
        blocks += [sn(nn.Conv2d(ch, 1, 3, 1, 1))]
        self.net = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def discriminator_loss(disc: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Hinge loss of the discriminator (`fake` is detached here)."""
    return F.relu(1 - disc(real)).mean() + F.relu(1 + disc(fake.detach())).mean()


def generator_adv_loss(disc: nn.Module, fake: torch.Tensor) -> torch.Tensor:
    """Per-item hinge generator loss [B]."""
    return -disc(fake).flatten(1).mean(dim=1)


@dataclass(frozen=True)
class LossWeights:
    pixel: str = "mse"  # "mse" or "l1"
    pixel_weight: float = 1.0
    perceptual_weight: float = 0.0
    latent_weight: float = 0.0
    adversarial_weight: float = 0.0


class RateDistortionLoss(nn.Module):
    """Per-frame RD loss with a lambda per rate point. Call once per coded frame, average over frames."""

    def __init__(self, lambdas: tuple[float, ...], weights: LossWeights, discriminator: nn.Module | None = None):
        super().__init__()
        if weights.pixel not in ("mse", "l1"):
            raise ValueError(f"pixel loss must be 'mse' or 'l1', got {weights.pixel!r}")
        if weights.adversarial_weight > 0 and discriminator is None:
            raise ValueError("adversarial_weight > 0 needs a discriminator")
        self.register_buffer("lambdas", torch.tensor(lambdas, dtype=torch.float32), persistent=False)
        self.weights = weights
        self.perceptual = STLPIPS() if weights.perceptual_weight > 0 else None
        self.discriminator = discriminator

    def forward(self, out: dict, target: torch.Tensor, rate: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """out: one frame's model output; target [B,3,H,W] in [-1,1]; rate [B]. -> (loss [B], detached terms)."""
        w = self.weights
        bpp = frame_bits(out).float() / (target.shape[-2] * target.shape[-1])
        dist = torch.zeros_like(bpp)
        terms: dict[str, torch.Tensor] = {"bpp": bpp.detach()}
        x_hat = out.get("x_hat")
        if x_hat is not None:
            x_hat = x_hat.float()
            err = (x_hat - target) / 2  # on the [0,1] scale
            pix = err.pow(2) if w.pixel == "mse" else err.abs()
            pix = pix.flatten(1).mean(dim=1)
            dist = dist + w.pixel_weight * pix
            terms[w.pixel] = pix.detach()
            terms["psnr"] = psnr(x_hat, target)
            if self.perceptual is not None:
                lp = self.perceptual(x_hat, target)
                dist = dist + w.perceptual_weight * lp
                terms["stlpips"] = lp.detach()
            if w.adversarial_weight > 0:
                adv = generator_adv_loss(self.discriminator, x_hat)
                dist = dist + w.adversarial_weight * adv
                terms["adv"] = adv.detach()
        elif w.pixel_weight > 0 or w.perceptual_weight > 0 or w.adversarial_weight > 0:
            raise ValueError("pixel, perceptual and adversarial losses need decoded frames (x_hat)")
        if w.latent_weight > 0:
            lat = (out["latent_hat"].float() - out["latent"].float().detach()).pow(2).flatten(1).mean(dim=1)
            dist = dist + w.latent_weight * lat
            terms["latent_mse"] = lat.detach()
        terms["distortion"] = dist.detach()
        loss = self.lambdas[rate] * dist + bpp
        return loss, terms
