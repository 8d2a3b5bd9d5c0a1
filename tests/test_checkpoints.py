"""Checkpoint loading: a fake official release folder (small random tensors in the official key layout) through
`from_official`, its error cases, and our own format (config.json + model.safetensors) with its errors."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL
from safetensors.torch import load_file, save_file

from model import S2VC, CheckpointError, from_official, from_pretrained, load_model, tiny
from model.checkpoints import OfficialRateSwitcher, load_pretrained_state
from model.config import S2VCConfig
from model.vae import sd_vae_kwargs
from tests.test_codec import tiny_model
from tests.test_entropy_models import single_thread  # noqa: F401 (autouse)

LAMBDA = "0.4"  # video lambda; the release pairs it with I-frame lambda 1.8
FILES = {
    "intra": "I_ckpts/onedc_lmbda1.8/model_1.safetensors",
    "inter": f"P_ckpts/lmbda{LAMBDA}/model_1.safetensors",
    "unet": f"P_ckpts/lmbda{LAMBDA}/model.safetensors",
}


def official_like() -> S2VCConfig:
    """Tiny widths with the official kind of VAE: an SD-style AutoencoderKL, 4 latent channels."""
    return tiny().replace(
        preset="official", vae_type="sd", latent_channels=4, vae_scaling_factor=0.18215,
        vae_block_out_channels=(32, 32), vae_layers_per_block=1, norm_groups=8, num_rates=1, rate_names=("x",),
    )


@pytest.fixture(scope="module")
def source() -> S2VC:
    torch.manual_seed(1)
    return S2VC(official_like()).eval()


def write_release(source: S2VC, root: Path) -> Path:
    """ROOT/{I_ckpts,P_ckpts,SD_ckpts} in the official key layout, written from `source`'s weights (any device)."""
    for name, relative in FILES.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in getattr(source, name).state_dict().items()}
        save_file(state, str(root / relative))
    vae = AutoencoderKL(**sd_vae_kwargs(source.config))
    vae.load_state_dict(source.vae.model.state_dict())
    vae.save_pretrained(root / "SD_ckpts" / "stable-diffusion-2-1" / "vae")
    return root


@pytest.fixture(scope="module")
def release(source: S2VC, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A release folder written from `source`'s random weights."""
    return write_release(source, tmp_path_factory.mktemp("release"))


@pytest.fixture
def copy_of(release: Path, tmp_path: Path):
    """A copy of the release (files symlinked) in which some files can be replaced."""
    root = tmp_path / "release"
    shutil.copytree(release, root, copy_function=os.symlink)
    return root


def edit(root: Path, name: str, change) -> Path:
    """Replace one checkpoint file of `root` by `change(state)`; returns its path."""
    path = root / FILES[name]
    state = change(dict(load_file(str(path))))
    path.unlink()
    save_file(state, str(path))
    return path


# ----------------------------------------------------------------------------------------------- official layout
def test_from_official_loads_every_weight(source, release):
    model = from_official(release, official_like())
    assert model.rate_names == [f"lmbda{LAMBDA}"]
    expected, loaded = source.state_dict(), model.state_dict()
    assert expected.keys() == loaded.keys()
    assert all(torch.equal(expected[k], loaded[k]) for k in expected)
    assert model.weights_hash == source.weights_hash


def test_missing_folders(release, copy_of, tmp_path):
    with pytest.raises(CheckpointError, match=f"{tmp_path / 'nowhere'}: not an official S2VC folder"):
        from_official(tmp_path / "nowhere", official_like())
    shutil.rmtree(copy_of / "SD_ckpts")
    with pytest.raises(CheckpointError, match="missing official VAE folder: .*stable-diffusion-2-1/vae"):
        from_official(copy_of, official_like())


def test_missing_file(copy_of):
    (copy_of / FILES["inter"]).unlink()
    with pytest.raises(CheckpointError, match=f"missing official checkpoint file for lambda {LAMBDA}: .*model_1"):
        from_official(copy_of, official_like())


def _switch(root: Path, model: S2VC) -> None:
    """What from_official does after building the model: load rate point 0's three files strictly."""
    OfficialRateSwitcher(root, [LAMBDA])(model, 0)


@pytest.mark.parametrize(
    "name, change, message",
    [
        ("intra", lambda s: {**s, "extra.weight": torch.zeros(2)}, "1 unexpected keys: extra.weight"),
        ("inter", lambda s: {k: v for k, v in s.items() if k != "pix_emb.weight"}, "1 missing keys: pix_emb.weight"),
        ("unet", lambda s: {**s, "conv_in.weight": torch.zeros(1, 2, 3, 3)}, "1 shape mismatches: conv_in.weight"),
    ],
)
def test_bad_tensors_name_file_and_key(source, copy_of, name, change, message):
    path = edit(copy_of, name, change)
    with pytest.raises(CheckpointError, match=f"^{re.escape(str(path))}: .*{message}"):
        _switch(copy_of, source)  # the strict checks run before any tensor is loaded


def test_unpaired_lambda(source, release):
    with pytest.raises(CheckpointError, match="video lambda 9.9 has no I-frame pairing"):
        OfficialRateSwitcher(release, ["9.9"])(source, 0)


# ----------------------------------------------------------------------------------------------- our format
@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model().save_pretrained(tmp_path_factory.mktemp("ours") / "tiny")


def test_own_format_round_trip(saved):
    model = load_model(saved, preset="tiny")
    original = tiny_model()
    assert model.config == original.config and model.weights_hash == original.weights_hash
    loaded = model.state_dict()
    assert all(torch.equal(v, loaded[k]) for k, v in original.state_dict().items())


def test_own_format_errors(saved, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(saved, broken)
    (broken / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json: invalid S2VC config"):
        from_pretrained(broken)
    (broken / "config.json").write_text('{"preset": "tiny", "bogus": 1}')
    with pytest.raises(CheckpointError, match="unknown S2VC config keys: bogus"):
        from_pretrained(broken)
    weights = broken / "model.safetensors"
    weights.write_bytes((saved / "model.safetensors").read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="model.safetensors: not a readable safetensors file"):
        load_pretrained_state(tiny_model(), broken)
    weights.unlink()
    with pytest.raises(CheckpointError, match="not an S2VC checkpoint"):
        load_model(broken)
    with pytest.raises(CheckpointError, match="checkpoint folder not found"):
        load_model(tmp_path / "nowhere")
