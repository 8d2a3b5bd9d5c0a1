"""The floor: a naive, non-learned code of TAEF2 latents that every learned S2VC model should beat (issue #23).

Method: one PCA over the latent channels, fitted on the clip's latents; frame 0 intra (its PCA coefficients
quantised); frame t codes its coefficients minus the previous *reconstructed* frame's (closed loop, no motion);
one uniform mid-tread quantiser step for every component; the rate is the ideal code length of a static histogram
per component and frame type fitted on the clip itself (the histograms' own cost is not counted, so the rate is
slightly optimistic). Everything here works on latents `[T, C, h, w]`; `bench/bench_floor.py` adds the TAEF2
encoder / decoder and the metrics.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

INTRA, INTER = "I", "P"


@dataclass(frozen=True)
class ChannelPCA:
    """An orthonormal rotation of the channel axis: coefficients = (z - mean) @ basis, components by falling variance."""

    mean: torch.Tensor  # [C] float64
    basis: torch.Tensor  # [C, C] float64, column k = component k
    variance: torch.Tensor  # [C] float64, the variance of each component on the fitted latents

    @classmethod
    def fit(cls, latents: torch.Tensor) -> "ChannelPCA":
        """Fit on every latent vector of `latents` [T, C, h, w]."""
        if latents.ndim != 4:
            raise ValueError(f"latents must be [T, C, h, w], got {tuple(latents.shape)}")
        vectors = latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1]).double()
        mean = vectors.mean(0)
        centred = vectors - mean
        variance, basis = torch.linalg.eigh(centred.T @ centred / len(centred))
        order = torch.argsort(variance, descending=True)
        return cls(mean, basis[:, order], variance[order].clamp_min(0))

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        """[T, C, h, w] latents -> [T, C, h, w] float64 coefficients."""
        vectors = latents.double().permute(0, 2, 3, 1) - self.mean
        return (vectors @ self.basis).permute(0, 3, 1, 2)

    def inverse(self, coefficients: torch.Tensor) -> torch.Tensor:
        """[T, C, h, w] coefficients -> [T, C, h, w] float32 latents."""
        vectors = coefficients.double().permute(0, 2, 3, 1) @ self.basis.T + self.mean
        return vectors.permute(0, 3, 1, 2).float()


def quantise(x: torch.Tensor, step: float) -> torch.Tensor:
    """Uniform mid-tread quantiser: the integer index round(x / step) (int64)."""
    if step <= 0:
        raise ValueError(f"quantiser step must be positive, got {step}")
    return torch.round(x / step).long()


def closed_loop_encode(coefficients: torch.Tensor, step: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Code [T, C, h, w] coefficients: frame 0 intra, frame t its residual against the previous reconstruction.

    Returns (symbols int64 [T, C, h, w], the encoder's reconstructed coefficients float64 [T, C, h, w]).
    """
    symbols = torch.empty(coefficients.shape, dtype=torch.long)
    recon = torch.empty(coefficients.shape, dtype=torch.float64)
    previous = torch.zeros(coefficients.shape[1:], dtype=torch.float64)
    for t, frame in enumerate(coefficients.double()):
        symbols[t] = quantise(frame - previous, step)
        previous = recon[t] = previous + symbols[t].double() * step
    return symbols, recon


def closed_loop_decode(symbols: torch.Tensor, step: float) -> torch.Tensor:
    """The decoder's side: [T, C, h, w] symbols -> reconstructed coefficients, from the symbols alone."""
    recon = torch.empty(symbols.shape, dtype=torch.float64)
    previous = torch.zeros(symbols.shape[1:], dtype=torch.float64)
    for t, frame in enumerate(symbols):
        previous = recon[t] = previous + frame.double() * step
    return recon


def frame_types(frames: int) -> list[str]:
    """"I" for frame 0, "P" for the rest."""
    return [INTRA] + [INTER] * (frames - 1)


def ideal_bits(symbols: torch.Tensor) -> np.ndarray:
    """Per-frame bits [T] of [T, C, h, w] symbols under static histograms, one per component and frame type,
    fitted on these symbols: -log2 of each symbol's relative frequency in its histogram."""
    types = np.array(frame_types(len(symbols)))
    bits = np.zeros(len(symbols))
    for kind in (INTRA, INTER):
        chosen = np.flatnonzero(types == kind)
        if chosen.size == 0:
            continue
        group = symbols[chosen].numpy()  # [n, C, h, w]
        for c in range(group.shape[1]):
            values, inverse, counts = np.unique(group[:, c], return_inverse=True, return_counts=True)
            cost = -np.log2(counts / counts.sum())[inverse.reshape(group[:, c].shape)]
            bits[chosen] += cost.reshape(len(chosen), -1).sum(1)
    return bits


@dataclass(frozen=True)
class FloorPoint:
    """One quantiser step's result: per-frame bits [T] and the decoded latents [T, C, h, w] (float32)."""

    step: float
    bits: np.ndarray
    latents: torch.Tensor


def code_latents(latents: torch.Tensor, steps: list[float]) -> list[FloorPoint]:
    """The naive code of a clip's latents [T, C, h, w] at each quantiser step (one PCA fitted on them)."""
    pca = ChannelPCA.fit(latents)
    coefficients = pca.forward(latents)
    points = []
    for step in steps:
        symbols, recon = closed_loop_encode(coefficients, step)
        points.append(FloorPoint(step, ideal_bits(symbols), pca.inverse(recon)))
    return points


def pad_to_multiple(frames: np.ndarray, multiple: int = 8) -> np.ndarray:
    """uint8 [T, H, W, 3] padded at the bottom / right by edge replication to a multiple of `multiple`."""
    h, w = frames.shape[1:3]
    pad = ((0, 0), (0, -h % multiple), (0, -w % multiple), (0, 0))
    return np.pad(frames, pad, mode="edge") if any(p[1] for p in pad) else frames


@torch.inference_mode()
def encode_frames(autoencoder: nn.Module, frames: np.ndarray, batch: int = 4) -> torch.Tensor:
    """uint8 [T, H, W, 3] -> unscaled TAEF2-style latents [T, C, ceil(H/8), ceil(W/8)] (float32)."""
    padded = pad_to_multiple(frames)
    out = []
    for i in range(0, len(padded), batch):
        x = torch.from_numpy(np.ascontiguousarray(padded[i : i + batch])).permute(0, 3, 1, 2).float() / 255
        out.append(autoencoder.encode(x).float())
    return torch.cat(out)


@torch.inference_mode()
def decode_frames(autoencoder: nn.Module, latents: torch.Tensor, height: int, width: int,
                  batch: int = 4) -> np.ndarray:
    """Latents [T, C, h, w] -> uint8 [T, height, width, 3] (clamped to [0, 1], rounded, cropped)."""
    out = []
    for i in range(0, len(latents), batch):
        x = autoencoder.decode(latents[i : i + batch]).clamp(0, 1)[..., :height, :width]
        out.append(torch.round(x * 255).to(torch.uint8).permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)
