"""Weight loading: the official release folders, our own safetensors + config.json format, strict reports.

Official layout (S2VC_ARCHITECTURE.md §6)::

    ROOT/I_ckpts/onedc_lmbda{1.8,2.9,4.6,7.4,12.2}/model_1.safetensors   IntraCodec, strict
    ROOT/P_ckpts/lmbda{L}/model_1.safetensors                             InterCodec
    ROOT/P_ckpts/lmbda{L}/model.safetensors                               OneStepUNet (peft-wrapped, both adapters)
    ROOT/SD_ckpts/stable-diffusion-v1-5/                                  SD1.5 (base U-Net weights, fallback only)
    ROOT/SD_ckpts/stable-diffusion-2-1/vae/                               SD2.1 VAE (diffusers folder)

Every load is strict: a missing or unexpected key or a wrong shape raises CheckpointError naming the file and
the keys. Nothing is ever partially loaded in silence.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from .errors import CheckpointError

# video lambda -> the I-frame checkpoint the release pairs it with (larger lambda: fewer bits)
VIDEO_TO_INTRA_LAMBDA = {
    "0.2": "1.8", "0.4": "1.8", "0.6": "1.8", "1.2": "2.9",
    "1.8": "2.9", "2.6": "4.6", "3.7": "7.4", "5.2": "12.2",
}
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def _preview(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... (+{len(keys) - limit} more)" if len(keys) > limit else "")


def check_state_dict(
    module: nn.Module, state: dict[str, torch.Tensor], source: str, allow_missing: set[str] | None = None
) -> None:
    """Raise CheckpointError unless `state` matches `module`'s keys and shapes exactly.

    `allow_missing` lists keys that another file already provided (reported nowhere as missing).
    """
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state) - (allow_missing or set()))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [
        f"{k} (file {tuple(state[k].shape)}, model {tuple(expected[k].shape)})"
        for k in sorted(set(state) & set(expected))
        if tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {_preview(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {_preview(unexpected)}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches: {_preview(mismatched, 3)}")
    if problems:
        raise CheckpointError(f"{source}: " + "; ".join(problems))


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises several types for damaged files
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None


def load_strict(module: nn.Module, path: Path, allow_missing: set[str] | None = None) -> None:
    """Load a safetensors file into `module`, strictly (see check_state_dict)."""
    state = read_safetensors(path)
    check_state_dict(module, state, str(path), allow_missing)
    module.load_state_dict(state, strict=not allow_missing, assign=_is_meta(module))


def _is_meta(module: nn.Module) -> bool:
    return any(p.is_meta for p in module.parameters())


def official_rate_points(root: str | Path) -> list[str]:
    """Video lambdas present under ROOT/P_ckpts, ordered from fewest bits (largest lambda) to most."""
    p_dir = Path(root) / "P_ckpts"
    if not p_dir.is_dir():
        raise CheckpointError(f"{root}: not an official S2VC folder (no P_ckpts/ inside)")
    found = [m.group(1) for d in p_dir.iterdir() if (m := re.fullmatch(r"lmbda([0-9.]+)", d.name)) and d.is_dir()]
    if not found:
        raise CheckpointError(f"{p_dir}: no lmbda*/ folders")
    return sorted(found, key=float, reverse=True)


def official_files(root: str | Path, video_lambda: str) -> dict[str, Path]:
    """The files that make up one official rate point, checked for existence."""
    root = Path(root)
    intra_lambda = VIDEO_TO_INTRA_LAMBDA.get(video_lambda)
    if intra_lambda is None:
        raise CheckpointError(
            f"video lambda {video_lambda} has no I-frame pairing; known: {', '.join(VIDEO_TO_INTRA_LAMBDA)}"
        )
    files = {
        "intra": root / "I_ckpts" / f"onedc_lmbda{intra_lambda}" / "model_1.safetensors",
        "inter": root / "P_ckpts" / f"lmbda{video_lambda}" / "model_1.safetensors",
        "unet": root / "P_ckpts" / f"lmbda{video_lambda}" / "model.safetensors",
        "vae": root / "SD_ckpts" / "stable-diffusion-2-1" / "vae",
        "sd15": root / "SD_ckpts" / "stable-diffusion-v1-5",
    }
    for name in ("intra", "inter", "unet"):
        if not files[name].is_file():
            raise CheckpointError(f"missing official checkpoint file for lambda {video_lambda}: {files[name]}")
    return files


def weights_fingerprint(module: nn.Module) -> bytes:
    """16 bytes identifying a model's weights: names, shapes, dtypes and a strided sample of every tensor.

    Sampling keeps this fast for the 1.7 B-parameter official model while any retraining changes it.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        flat = tensor.detach().reshape(-1)
        step = max(1, flat.numel() // 1024)
        sample = flat[::step][:1024].to("cpu", torch.float32).contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(sample.numpy().tobytes())
    return digest.digest()[:16]


# --------------------------------------------------------------------------------------------- our own format
def save_pretrained(model: nn.Module, directory: str | Path, dtype: torch.dtype | None = None) -> Path:
    """Write `config.json` and `model.safetensors` (optionally cast floating tensors to `dtype`)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {}
    for key, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu()
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        state[key] = tensor.contiguous().clone()
    model.config.save(directory / CONFIG_NAME)
    save_file(state, str(directory / WEIGHTS_NAME), metadata={"format": "s2vc", "preset": model.config.preset})
    return directory


def is_official_folder(path: str | Path) -> bool:
    return (Path(path) / "P_ckpts").is_dir() and (Path(path) / "I_ckpts").is_dir()


def is_pretrained_folder(path: str | Path) -> bool:
    return (Path(path) / CONFIG_NAME).is_file() and (Path(path) / WEIGHTS_NAME).is_file()


def load_pretrained_state(model: nn.Module, directory: str | Path) -> None:
    """Load our own format strictly, casting stored tensors to the model's dtypes."""
    path = Path(directory) / WEIGHTS_NAME
    state = read_safetensors(path)
    check_state_dict(model, state, str(path))
    own = model.state_dict()
    state = {k: v.to(own[k].dtype) for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=_is_meta(model))


# --------------------------------------------------------------------------------------------- official release
class OfficialRateSwitcher:
    """Loads the I/P/U-Net weights of one official rate point on demand (each rate point is a separate folder).

    Installed as `S2VC.rate_switcher`; rate index i refers to `lambdas[i]` (fewest bits first).
    """

    def __init__(self, root: str | Path, lambdas: list[str]):
        self.root = Path(root)
        self.lambdas = lambdas
        self.loaded: int | None = None

    def __call__(self, model: nn.Module, rate: int) -> None:
        if rate == self.loaded:
            return
        files = official_files(self.root, self.lambdas[rate])
        load_strict(model.intra, files["intra"])
        load_strict(model.inter, files["inter"])
        load_official_unet(model.unet, files["unet"], files["sd15"])
        model.invalidate_hash()
        self.loaded = rate


def load_official_unet(unet: nn.Module, path: Path, sd15_dir: Path) -> None:
    """Load P_ckpts/lmbda*/model.safetensors. If the file lacks only the base SD 1.5 weights (the release does not
    say whether it holds them), they come from SD_ckpts/stable-diffusion-v1-5; any other gap is an error."""
    state = read_safetensors(path)
    own = unet.state_dict()
    missing = set(own) - set(state)
    base_missing = {k for k in missing if not _is_added_key(k)}
    if missing and missing == base_missing and sd15_dir.is_dir():
        from .generator import load_sd15_weights

        load_sd15_weights(unet, str(sd15_dir), local_files_only=True)
        check_state_dict(unet, state, str(path), allow_missing=base_missing)
        unet.load_state_dict(state, strict=False, assign=_is_meta(unet))
        return
    check_state_dict(unet, state, str(path))
    unet.load_state_dict(state, strict=True, assign=_is_meta(unet))


def _is_added_key(key: str) -> bool:
    """Keys S2VC adds on top of SD 1.5: LoRA adapters, conv_in, vae_reduction, TCG fusion blocks."""
    return any(part in key for part in (".lora_A.", ".lora_B.", "pframe_motion_fusion")) or key.startswith(
        ("conv_in.", "vae_reduction.")
    )
