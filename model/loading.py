"""`load_model`: the one entry point that turns a folder (or nothing) into a ready S2VC model."""
from __future__ import annotations

import os
from pathlib import Path

import torch
from accelerate import init_empty_weights

from .checkpoints import (
    OfficialRateSwitcher,
    is_official_folder,
    is_pretrained_folder,
    load_pretrained_state,
    official_rate_points,
)
from .codec import S2VC
from .config import S2VCConfig, official, preset as preset_config
from .errors import CheckpointError

CHECKPOINT_ENV = "S2VC_CHECKPOINT"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "assets" / "models" / "s2vc-tiny"


def default_checkpoint() -> Path:
    """The bundled default model, unless S2VC_CHECKPOINT names another folder."""
    return Path(os.environ.get(CHECKPOINT_ENV) or DEFAULT_MODEL_DIR)


def load_model(
    checkpoint: str | Path | None = None,
    preset: str | None = None,
    device: str | torch.device = "cpu",
    config: S2VCConfig | None = None,
) -> S2VC:
    """Load an S2VC model.

    checkpoint: our format (config.json + model.safetensors), an official release folder (I_ckpts/, P_ckpts/,
    SD_ckpts/), or None for the bundled default (env var S2VC_CHECKPOINT overrides it).
    preset / config: the architecture of an official folder (default `official`); checked against our format.
    """
    path = Path(checkpoint) if checkpoint is not None else default_checkpoint()
    if not path.exists():
        raise CheckpointError(f"checkpoint folder not found: {path}")
    if is_pretrained_folder(path):
        model = from_pretrained(path)
        if preset is not None and model.config.preset != preset:
            raise CheckpointError(f"{path} holds a {model.config.preset!r} model, not {preset!r}")
    elif is_official_folder(path):
        model = from_official(path, config or (preset_config(preset) if preset else official()))
    else:
        raise CheckpointError(
            f"{path}: not an S2VC checkpoint (expected config.json + model.safetensors, or I_ckpts/ and P_ckpts/)"
        )
    return model.to(device)


def from_pretrained(directory: str | Path) -> S2VC:
    """Our own format: config.json + model.safetensors."""
    directory = Path(directory)
    try:
        config = S2VCConfig.load(directory / "config.json")
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{directory / 'config.json'}: invalid S2VC config ({exc})") from None
    with init_empty_weights():  # parameters on meta, buffers real
        model = S2VC(config)
    load_pretrained_state(model, directory)
    _materialise(model)
    return model.eval()


def from_official(root: str | Path, config: S2VCConfig) -> S2VC:
    """An official release folder; all rate points found under P_ckpts/ become selectable rate indices.

    The SD 2.1 VAE comes from SD_ckpts/stable-diffusion-2-1/vae; the first rate point's weights load now, the
    others when first used.
    """
    root = Path(root)
    lambdas = official_rate_points(root)
    vae_dir = root / "SD_ckpts" / "stable-diffusion-2-1" / "vae"
    if not vae_dir.is_dir():
        raise CheckpointError(f"missing official VAE folder: {vae_dir}")
    config = config.replace(rate_names=tuple(f"lmbda{l}" for l in lambdas))
    with init_empty_weights():
        model = S2VC(config)
    model.vae.to_empty(device="cpu")
    model.vae.load_weights(vae_dir, local_files_only=True)
    model.rate_switcher = OfficialRateSwitcher(root, lambdas)
    model.rate_switcher(model, 0)
    _materialise(model)
    return model.eval()


def _materialise(model: S2VC) -> None:
    """Fail loudly if any tensor is still on the meta device (never a silent partial load), and copy the tensors
    safetensors left at addresses that are not 64-byte aligned: CPU kernels round differently on unaligned weights
    (measured: a pixel off by one at 90x70), so aligned copies make every loaded model compute identically."""
    left = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if left:
        raise CheckpointError(f"{len(left)} tensors were not loaded: {', '.join(left[:5])}")
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.data_ptr() % 64:
                tensor.data = tensor.data.clone()
