"""One configuration object for every S2VC model, and the named presets built from it.

`official` reproduces the released architecture exactly (S2VC_ARCHITECTURE.md); `tiny` uses the same classes
with small widths and the TAEF2 tiny autoencoder so that it runs on a CPU.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SD15_DOWN_BLOCKS = ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D")
SD15_UP_BLOCKS = ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D")


@dataclass(frozen=True)
class S2VCConfig:
    """Every width and constant of an S2VC model. Derived widths are properties, not fields."""

    preset: str = "official"

    # --- latent autoencoder (the VAE the generator decodes through) ---
    vae_type: str = "sd"  # "sd": AutoencoderKL with windowed mid-block attention; "taesd": tiny autoencoder
    latent_channels: int = 4
    vae_scaling_factor: float = 0.18215
    vae_block_out_channels: tuple[int, ...] = (128, 256, 512, 512)
    vae_layers_per_block: int = 2
    vae_attn_window: int = 16  # latent pixels per mid-block attention window (0 = full frame)
    vae_decoder_widths: tuple[int, ...] = ()  # taesd only: per-stage decoder widths, 1/8 -> 1/1 (empty: TAEF2's)
    vae_decoder_blocks: tuple[int, ...] = ()  # taesd only: per-stage decoder block counts (empty: TAEF2's)

    # --- one-step generator (SD 1.5 U-Net) ---
    unet_block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280)
    unet_layers_per_block: int = 2
    unet_attention_head_dim: int = 8
    unet_norm_num_groups: int = 32
    unet_down_block_types: tuple[str, ...] = SD15_DOWN_BLOCKS
    unet_up_block_types: tuple[str, ...] = SD15_UP_BLOCKS
    semantic_channels: int = 768  # CSG token width = U-Net cross_attention_dim
    lora_rank: int = 64
    lora_alpha: int = 8
    motion_channels: int = 160  # zero placeholder channels inside each TCG fusion block
    fusion_levels: int = 3  # down blocks 0..fusion_levels-1 get a TCG fusion block
    timestep: int = 999
    beta_start: float = 0.00085
    beta_end: float = 0.012
    num_train_timesteps: int = 1000

    # --- I-frame codec (IntraNoAR) ---
    intra_pix_channels: int = 192
    intra_unet_channels: tuple[int, int, int] = (512, 768, 768)  # analysis U-Net; [0] is the internal width
    intra_unet_attention_head_dim: int = 8
    intra_y_channels: int = 128  # N
    fsq_levels: tuple[int, ...] = (4, 4, 4, 4, 4, 4, 4)

    # --- P-frame codec (DMC_OneDC) ---
    inter_channels: int = 384
    inter_y_channels: int = 128
    inter_z_channels: int = 64
    # not in the release: the P encoder also sees the autoencoder's latent of the frame (as the I encoder does),
    # through a zero-initialised 1x1 `latent_emb` added to `pix_emb` (encoder side only: the bitstream is unchanged)
    inter_latent_input: bool = False
    # not in the release: a P-frame's x0 is the generator's x0 plus `x0_skip` (a per-channel gain, starting at zero)
    # times its reference x0 latent, which the decoder holds too (the bitstream is unchanged): the P side can start
    # from copying its reference and code what changed, as the closed-loop latent residual of the naive floor does
    inter_x0_skip: bool = False

    # --- shared ---
    norm_groups: int = 32  # GroupNorm groups of ResnetBlock / AttnBlock / vae_reduction
    num_rates: int = 1  # >1: one model, several rate points selected by an index (variable-rate preset)
    rate_names: tuple[str, ...] = ("default",)
    reset_interval: int = 32
    pad_multiple: int = 64

    # --- where external weights come from (overridable by path or environment variable) ---
    sd15_id: str = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    vae_id: str = "stabilityai/stable-diffusion-2-1"
    extra: dict[str, Any] = field(default_factory=dict)

    # derived widths
    @property
    def ctrl_channels(self) -> int:
        """Width of the decoded feature f_pix that drives the generator (its conv_in width)."""
        return self.unet_block_out_channels[0]

    @property
    def fusion_channels(self) -> tuple[int, ...]:
        return self.unet_block_out_channels[: self.fusion_levels]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "S2VCConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown S2VC config keys: {', '.join(unknown)}")
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**kwargs)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "S2VCConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def replace(self, **changes: Any) -> "S2VCConfig":
        return dataclasses.replace(self, **changes)


def official() -> S2VCConfig:
    """The released architecture, one rate point per checkpoint folder."""
    return S2VCConfig()


def tiny() -> S2VCConfig:
    """Small widths, five rate points in one model; the TAEF2 tiny autoencoder (32 latent channels), encoder and
    decoder both pretrained (the decoder is the one pretrained, generative part of this preset: a narrower decoder
    of our own lost 9 dB and 10x ST-LPIPS before a bit was coded), and one attention head per U-Net transformer
    (8 heads of width 6 cost ~4x more on a CPU for the same weights)."""
    return S2VCConfig(
        preset="tiny",
        vae_type="taesd",
        latent_channels=32,
        vae_scaling_factor=1.0,
        vae_block_out_channels=(64, 64, 64, 64),
        vae_layers_per_block=3,
        vae_attn_window=0,
        unet_block_out_channels=(48, 64, 96, 96),  # ctrl 48 != latent 32: vae_reduction has a 1x1 short_cut
        unet_layers_per_block=1,
        unet_attention_head_dim=1,  # diffusers' legacy name: the number of heads
        unet_norm_num_groups=8,
        semantic_channels=64,
        lora_rank=4,
        lora_alpha=4,
        motion_channels=8,
        intra_pix_channels=32,
        intra_unet_channels=(64, 96, 96),
        intra_unet_attention_head_dim=8,
        intra_y_channels=32,
        inter_channels=64,
        inter_y_channels=32,
        inter_z_channels=16,
        norm_groups=8,
        num_rates=5,
        rate_names=("q0", "q1", "q2", "q3", "q4"),
    )


PRESETS = {"official": official, "tiny": tiny}


def preset(name: str) -> S2VCConfig:
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
