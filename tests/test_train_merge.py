"""Joining the results of stage runs that trained disjoint parameter sets."""
from __future__ import annotations

from pathlib import Path

import torch

from model import S2VC, tiny
from model.train.merge import load_any, main, merge

SMALL = dict(
    unet_block_out_channels=(16, 16, 32, 32), intra_unet_channels=(16, 32, 32), intra_pix_channels=8,
    intra_y_channels=8, inter_channels=16, inter_y_channels=8, inter_z_channels=4, semantic_channels=16,
    norm_groups=4, unet_norm_num_groups=4, motion_channels=4,
)


def test_merge_takes_exactly_the_stage_parameters(tmp_path: Path) -> None:
    torch.manual_seed(0)
    a, b = S2VC(tiny().replace(**SMALL)), S2VC(tiny().replace(**SMALL))
    a.save_pretrained(tmp_path / "a")
    b.save_pretrained(tmp_path / "b")
    base, take = load_any(tmp_path / "a"), load_any(tmp_path / "b")
    copied = merge(base, take, "inter")
    assert copied > 0
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    for name, param in base.named_parameters():
        from_b = name.startswith("inter.") or (name.startswith("unet.") and "pframe" in name)
        expected = pb[name] if from_b else pa[name]
        assert torch.equal(param, expected), name
    assert base.weights_hash not in (a.weights_hash, b.weights_hash)


def test_merge_averages_several_takes(tmp_path: Path) -> None:
    torch.manual_seed(0)
    a, b, c = (S2VC(tiny().replace(**SMALL)) for _ in range(3))
    for name, model in zip("abc", (a, b, c)):
        model.save_pretrained(tmp_path / name)
    assert main(["--base", str(tmp_path / "a"), "--take", str(tmp_path / "b"), str(tmp_path / "c"),
                 "--stage", "decoder", "-o", str(tmp_path / "m")]) == 0
    merged = dict(load_any(tmp_path / "m").named_parameters())
    pb, pc = dict(b.named_parameters()), dict(c.named_parameters())
    decoder = [name for name in merged if name.startswith("vae.model.decoder.")]
    assert decoder
    for name, param in a.named_parameters():
        expected = (pb[name] + pc[name]) / 2 if name in decoder else param
        torch.testing.assert_close(merged[name], expected, rtol=0, atol=1e-6, msg=name)


def test_a_checkpoint_loads_as_the_model_its_run_trained(tmp_path: Path) -> None:
    """A run from a save_pretrained folder with model_overrides: its checkpoint folder holds the overridden model
    (load_any), and a next run started from that checkpoint adds its own overrides on top (build_model)."""
    from safetensors.torch import save_file

    from model.train.config import TrainConfig
    from model.train.loop import build_model

    torch.manual_seed(0)
    S2VC(tiny().replace(**SMALL)).save_pretrained(tmp_path / "init")
    run = tmp_path / "run"
    TrainConfig(init_from=str(tmp_path / "init"), model_overrides={"inter_x0_skip": True}).save(
        _mkdir(run) / "train_config.json")
    trained = build_model(TrainConfig.load(run / "train_config.json"))
    with torch.no_grad():
        trained.inter.x0_skip.fill_(0.5)
    checkpoint = _mkdir(run / "checkpoints" / "step_00000001")
    state = trained.state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(checkpoint / "model.safetensors"))

    loaded = load_any(checkpoint)
    assert loaded.config.inter_x0_skip and not loaded.config.inter_latent_input
    assert all(torch.equal(v, state[k]) for k, v in loaded.state_dict().items())

    following = build_model(TrainConfig(init_from=str(checkpoint), model_overrides={"inter_latent_input": True}))
    assert following.config.inter_x0_skip and following.config.inter_latent_input
    assert torch.equal(following.inter.x0_skip, trained.inter.x0_skip)
    assert not following.inter.latent_emb.weight.any()


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path
