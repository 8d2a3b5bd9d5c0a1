"""The latent autoencoder the generator decodes through: SD 2.1 KL-f8 VAE (windowed mid-block attention) or TAEF2.

`LatentVAE.encode` maps [-1, 1] pixels to *scaled* latents (times config.vae_scaling_factor); `decode` inverts it.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from model.compat import patch_torchvision
from model.config import S2VCConfig
from model.taesd import TinyAutoencoder, load_taef2_weights

patch_torchvision()

from diffusers import AutoencoderKL  # noqa: E402
from diffusers.models.attention_processor import Attention, AttnProcessor2_0  # noqa: E402

SD21_VAE_ENV = "S2VC_SD21_VAE"


def _spans(size: int, window: int) -> list[tuple[int, int, int]]:
    """(start, window count, window size) of the whole windows along one axis, then of the smaller edge window."""
    whole = size // window
    spans = [(0, whole, window)] if whole else []
    return spans + ([(whole * window, 1, size - whole * window)] if size % window else [])


class WindowedAttnProcessor:
    """Evaluates a spatial self-attention module window by window (non-overlapping, raster order).

    Each window of `window` x `window` pixels (smaller at the right/bottom edges) goes through the module's own
    GroupNorm, attention and residual independently, so normalisation statistics are per window.
    On an accelerator (`stacked` None: any device but the CPU) windows of the same size are stacked along the
    batch dimension and evaluated in one call (at most four: the whole windows, the right edge, the bottom edge,
    the corner) instead of one call per window (135 at 1080p); the per-window values are the same (bit for bit on
    a CPU). On the CPU the window loop stays: one window's working set fits in cache, and stacking measured slower
    there (official mid-block attention at 1080p, one thread: 4.0 s stacked against 2.8 s).
    """

    def __init__(self, window: int, stacked: bool | None = None):
        if window <= 0:
            raise ValueError(f"attention window must be positive, got {window}")
        self.window = window
        self.stacked = stacked
        self.inner = AttnProcessor2_0()

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if encoder_hidden_states is not None or attention_mask is not None:
            raise ValueError("windowed attention is self-attention only (no context, no mask)")
        if hidden_states.ndim != 4:
            raise ValueError(f"windowed attention expects [B,C,H,W], got {tuple(hidden_states.shape)}")
        batch, channels, height, width = hidden_states.shape
        if height <= self.window and width <= self.window:
            return self.inner(attn, hidden_states, temb=temb)
        out = torch.empty_like(hidden_states)
        stacked = hidden_states.device.type != "cpu" if self.stacked is None else self.stacked
        if not stacked:
            w = self.window
            for top in range(0, height, w):
                for left in range(0, width, w):
                    tile = hidden_states[..., top : top + w, left : left + w].contiguous()
                    out[..., top : top + w, left : left + w] = self.inner(attn, tile, temb=temb)
            return out
        for top, rows, wh in _spans(height, self.window):
            for left, cols, ww in _spans(width, self.window):
                region = hidden_states[..., top : top + rows * wh, left : left + cols * ww]
                tiles = region.reshape(batch, channels, rows, wh, cols, ww).permute(0, 2, 4, 1, 3, 5)
                tiles = tiles.reshape(batch * rows * cols, channels, wh, ww).contiguous()
                tiles = self.inner(attn, tiles, temb=temb)
                tiles = tiles.reshape(batch, rows, cols, channels, wh, ww).permute(0, 3, 1, 4, 2, 5)
                out[..., top : top + rows * wh, left : left + cols * ww] = tiles.reshape(batch, channels, rows * wh,
                                                                                        cols * ww)
        return out


def window_mid_attention(vae: AutoencoderKL, window: int) -> None:
    """Make the encoder and decoder mid-block attentions windowed (window <= 0 keeps full-frame attention).

    Calling `vae.set_attn_processor` / `set_default_attn_processor` afterwards would undo this.
    """
    for coder in (vae.encoder, vae.decoder):
        for attn in coder.mid_block.attentions:
            if attn is not None:
                attn.set_processor(WindowedAttnProcessor(window) if window > 0 else AttnProcessor2_0())


def sd_vae_kwargs(config: S2VCConfig) -> dict:
    """AutoencoderKL arguments of the SD 2.1 VAE (KL-f8), taken from the config so no hub is needed."""
    n = len(config.vae_block_out_channels)
    return {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ("DownEncoderBlock2D",) * n,
        "up_block_types": ("UpDecoderBlock2D",) * n,
        "block_out_channels": tuple(config.vae_block_out_channels),
        "layers_per_block": config.vae_layers_per_block,
        "act_fn": "silu",
        "latent_channels": config.latent_channels,
        "norm_num_groups": config.norm_groups,
        "sample_size": 768,
        "scaling_factor": config.vae_scaling_factor,
    }


def sd_vae_source(config: S2VCConfig, source: str | Path | None = None) -> tuple[str, str | None]:
    """(path or hub id, subfolder): explicit folder, else env var S2VC_SD21_VAE, else config.vae_id + "vae"."""
    local = source or os.environ.get(SD21_VAE_ENV)
    if local:
        return str(local), None
    return config.vae_id, "vae"


class LatentVAE(nn.Module):
    """Pixels [-1, 1] <-> scaled latents, for either `config.vae_type` ("sd" or "taesd").

    The weights start random; use `load_weights()` for the real SD 2.1 VAE or TAEF2 files.
    """

    def __init__(self, config: S2VCConfig):
        super().__init__()
        self.config = config
        self.scaling_factor = config.vae_scaling_factor
        if config.vae_type == "sd":
            self.model: nn.Module = AutoencoderKL(**sd_vae_kwargs(config))
            window_mid_attention(self.model, config.vae_attn_window)
        elif config.vae_type == "taesd":
            self.model = TinyAutoencoder(config.latent_channels, *_tiny_shape(config),
                                         decoder_widths=config.vae_decoder_widths or None,
                                         decoder_blocks=config.vae_decoder_blocks or None)
        else:
            raise ValueError(f"unknown vae_type {config.vae_type!r}; expected 'sd' or 'taesd'")

    def load_weights(self, source: str | Path | None = None, local_files_only: bool = False) -> None:
        """Load pretrained weights: SD 2.1 VAE via diffusers (hub id or folder), or the TAEF2 .pth files."""
        if self.config.vae_type == "sd":
            path, subfolder = sd_vae_source(self.config, source)
            vae = AutoencoderKL.from_pretrained(
                path, subfolder=subfolder, torch_dtype=torch.float32, local_files_only=local_files_only
            )
            self.model.load_state_dict(vae.state_dict(), strict=True)
        else:
            load_taef2_weights(self.model, source)

    def encode(self, x: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """[-1, 1] pixels -> scaled fp32 latent.

        `sample` draws from the KL posterior (SD only, as the official I-frame does); TAEF2 is deterministic.
        """
        if self.config.vae_type == "sd":
            dist = self.model.encode(x).latent_dist
            z = dist.sample(generator) if sample else dist.mode()
        else:
            z = self.model.encode((x + 1) / 2)
        return (z * self.scaling_factor).float()

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Scaled latent -> pixels, nominally in [-1, 1] (not clamped), fp32."""
        z = latent / self.scaling_factor
        if self.config.vae_type == "sd":
            return self.model.decode(z).sample.float()
        return (self.model.decode(z) * 2 - 1).float()


def _tiny_shape(config: S2VCConfig) -> tuple[int, int]:
    """(width, blocks per stage) of the tiny autoencoder; TAESD-style nets use one width everywhere."""
    widths = set(config.vae_block_out_channels)
    if len(widths) != 1:
        raise ValueError(f"taesd needs equal vae_block_out_channels, got {config.vae_block_out_channels}")
    return widths.pop(), config.vae_layers_per_block
