"""Tiny autoencoder whose layout fits the TAEF2 (FLUX.2 tiny autoencoder, MIT) encoder/decoder state dicts.

Both halves are flat `nn.Sequential`s so that their indices are the keys of `taef2_encoder.pth` and
`taef2_decoder.pth`. Images are in [0, 1] on this module's side; `model.vae.LatentVAE` maps from [-1, 1].
Encoder: conv, 1 block, then three stages of (stride-2 conv, `blocks` blocks) -> 8x down; the last stage's blocks
carry the mid-block GroupNorm branch. Decoder: the mirror image with nearest 2x upsampling, the first stage's
blocks carrying the GroupNorm branch and the last stage holding a single block.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from model.errors import CheckpointError

TAEF2_ENV = "S2VC_TAEF2_DIR"
REPO = Path(__file__).resolve().parents[1]
DEFAULT_TAEF2_DIR = REPO.parent / "shared" / "data" / "weights" / "taef2_flux2_tiny_autoencoder"
ENCODER_FILE = "taef2_encoder.pth"
DECODER_FILE = "taef2_decoder.pth"


def conv3x3(cin: int, cout: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=bias)


class SoftClamp(nn.Module):
    """Smoothly limits latents to (-3, 3): 3 * tanh(x / 3)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


class TinyBlock(nn.Module):
    """Three 3x3 convs with ReLUs plus identity, ReLU after the sum.

    With `mid_gn`, a GroupNorm branch (`pool`: 1x1 to 4x width, GroupNorm(4), ReLU, 1x1 back, no biases) is first
    added to the input: x <- x + pool(x).
    """

    def __init__(self, channels: int, mid_gn: bool = False):
        super().__init__()
        self.conv = nn.Sequential(
            conv3x3(channels, channels), nn.ReLU(), conv3x3(channels, channels), nn.ReLU(), conv3x3(channels, channels)
        )
        wide = 4 * channels
        self.pool = (
            nn.Sequential(
                nn.Conv2d(channels, wide, 1, bias=False),
                nn.GroupNorm(4, wide),
                nn.ReLU(),
                nn.Conv2d(wide, channels, 1, bias=False),
            )
            if mid_gn
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return torch.relu(self.conv(x) + x)


class ChannelsLastOnCPU(nn.Sequential):
    """A conv stack that runs in channels_last on a CPU, where oneDNN's NHWC convolutions are 1.2-1.4x faster
    (`bench/bench_taef2.py`); the result equals the default layout's within float noise and is returned contiguous.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or x.dim() != 4:
            return super().forward(x)
        return super().forward(x.contiguous(memory_format=torch.channels_last)).contiguous()


class TinyEncoder(ChannelsLastOnCPU):
    """[0, 1] image -> latent at 1/8 resolution."""

    def __init__(self, latent_channels: int = 32, width: int = 64, blocks: int = 3, mid_gn: bool = True):
        layers: list[nn.Module] = [conv3x3(3, width), TinyBlock(width)]
        for stage in range(3):
            layers.append(conv3x3(width, width, stride=2, bias=False))
            layers += [TinyBlock(width, mid_gn=mid_gn and stage == 2) for _ in range(blocks)]
        layers.append(conv3x3(width, latent_channels))
        super().__init__(*layers)


TAEF2_DECODER = ((64, 64, 64, 64), (3, 3, 3, 1))  # (widths, blocks) of the TAEF2 decoder


class TinyDecoder(ChannelsLastOnCPU):
    """Latent -> [0, 1] image (not clamped) at 8x resolution.

    `widths` and `blocks` give each of the four stages (1/8, 1/4, 1/2, 1/1 resolution) its width and block count;
    the default is the TAEF2 decoder (width 64 everywhere, 3/3/3/1 blocks). A stage's first conv after the
    upsampling changes the width, so every layout keeps TAEF2's module indices.
    """

    def __init__(self, latent_channels: int = 32, widths: tuple[int, ...] = TAEF2_DECODER[0],
                 blocks: tuple[int, ...] = TAEF2_DECODER[1], mid_gn: bool = True):
        if len(widths) != 4 or len(blocks) != 4 or min(widths) < 1 or min(blocks) < 0:
            raise ValueError(f"decoder needs 4 positive widths and 4 block counts, got {widths} and {blocks}")
        layers: list[nn.Module] = [SoftClamp(), conv3x3(latent_channels, widths[0]), nn.ReLU()]
        layers += [TinyBlock(widths[0], mid_gn=mid_gn) for _ in range(blocks[0])]
        for stage in range(1, 4):
            layers += [nn.Upsample(scale_factor=2), conv3x3(widths[stage - 1], widths[stage], bias=False)]
            layers += [TinyBlock(widths[stage]) for _ in range(blocks[stage])]
        layers.append(conv3x3(widths[3], 3))
        super().__init__(*layers)


class TinyAutoencoder(nn.Module):
    """TAEF2-layout encoder + decoder; `encode`/`decode` work on [0, 1] images and unscaled latents.

    `decoder_widths` / `decoder_blocks` (None: TAEF2's) give a narrower decoder of one's own (see TinyDecoder).
    """

    def __init__(self, latent_channels: int = 32, width: int = 64, blocks: int = 3, mid_gn: bool = True,
                 decoder_widths: tuple[int, ...] | None = None, decoder_blocks: tuple[int, ...] | None = None):
        super().__init__()
        self.encoder = TinyEncoder(latent_channels, width, blocks, mid_gn)
        self.decoder_layout = (tuple(decoder_widths or (width,) * 4), tuple(decoder_blocks or (blocks,) * 3 + (1,)))
        self.decoder = TinyDecoder(latent_channels, *self.decoder_layout, mid_gn=mid_gn)

    @property
    def has_taef2_decoder(self) -> bool:
        """Whether the decoder has TAEF2's layout (so taef2_decoder.pth fits it)."""
        return self.decoder_layout == TAEF2_DECODER

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)


def taef2_dir(path: str | Path | None = None) -> Path:
    """Weights folder: explicit argument, else env var S2VC_TAEF2_DIR, else ../shared/... next to the repo."""
    return Path(path or os.environ.get(TAEF2_ENV) or DEFAULT_TAEF2_DIR)


def _keys(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return f"{shown}, ... ({len(names)} in all)" if len(names) > limit else shown


def _load_strict(module: nn.Module, file: Path) -> None:
    if not file.is_file():
        raise CheckpointError(f"TAEF2 weights not found: {file} (set {TAEF2_ENV} to the folder holding them)")
    state = torch.load(file, map_location="cpu", weights_only=True)
    own = module.state_dict()
    problems = []
    if missing := sorted(set(own) - set(state)):
        problems.append(f"missing keys [{_keys(missing)}]")
    if unexpected := sorted(set(state) - set(own)):
        problems.append(f"unexpected keys [{_keys(unexpected)}]")
    wrong = sorted(f"{k} {tuple(state[k].shape)}!={tuple(v.shape)}" for k, v in own.items()
                   if k in state and state[k].shape != v.shape)
    if wrong:
        problems.append(f"shape mismatches file!=model [{_keys(wrong)}]")
    if problems:
        raise CheckpointError(f"{file} does not fit {type(module).__name__}: {'; '.join(problems)}")
    module.load_state_dict(state)


def load_taef2_weights(model: TinyAutoencoder, path: str | Path | None = None) -> None:
    """Load taef2_encoder.pth (and taef2_decoder.pth when the decoder has TAEF2's layout; a decoder of one's own
    keeps its weights) strictly into `model` (fp16 files -> fp32)."""
    folder = taef2_dir(path)
    _load_strict(model.encoder, folder / ENCODER_FILE)
    if model.has_taef2_decoder:
        _load_strict(model.decoder, folder / DECODER_FILE)


def load_taef2(path: str | Path | None = None) -> TinyAutoencoder:
    """A TinyAutoencoder in the TAEF2 shape (32 latent channels, width 64, 3 blocks) with the TAEF2 weights."""
    model = TinyAutoencoder(32, 64, 3, mid_gn=True)
    load_taef2_weights(model, path)
    return model.eval()
