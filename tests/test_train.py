"""Training pipeline: data shapes and the evaluation-clip exclusion, losses, one training step, checkpoint/resume."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model.train.config import TrainConfig, preset
from model.train.data import ClipDataset, StepSampler, motion_clip, video_clip
from model.train.losses import LossWeights, PatchDiscriminator, RateDistortionLoss, bits_from_likelihoods, psnr
from model.train.sources import ClipItem, EvalDataError, load_source, load_sources, split_items


def _noise_video(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)


@pytest.fixture
def source_dir(tmp_path: Path) -> Path:
    """A PNG frame folder, a still image folder and a raw I420 file, all tiny."""
    frames = tmp_path / "clipA"
    frames.mkdir()
    for i, f in enumerate(_noise_video(5, 80, 96)):
        Image.fromarray(f).save(frames / f"{i:03d}.png")
    stills = tmp_path / "stills"
    stills.mkdir()
    for i in range(2):
        Image.fromarray(_noise_video(1, 90, 120, seed=i)[0]).save(stills / f"img{i}.png")
    (tmp_path / "tiny_96x64.i420").write_bytes(bytes(96 * 64 * 3 // 2 * 4))
    return tmp_path


# ----------------------------------------------------------------------------------------------- data


def test_sources_and_shapes(source_dir: Path, tmp_path: Path) -> None:
    items = load_sources([f"frames:{source_dir / 'clipA'}", f"images:{source_dir / 'stills'}",
                          f"yuv:{source_dir / 'tiny_96x64.i420'}"], tmp_path / "cache")
    shapes = {it.key: (it.frames.shape, it.still) for it in items}
    assert shapes["clipA/"] == ((5, 80, 96, 3), False)
    assert shapes["stills/img0.png"] == ((1, 90, 120, 3), True)
    assert shapes[f"{source_dir.name}/tiny_96x64.i420"] == ((4, 64, 96, 3), False)
    again = load_source(f"frames:{source_dir / 'clipA'}", tmp_path / "cache")  # served from the cache
    assert isinstance(again[0].frames, np.memmap)
    ds = ClipDataset(items, num_frames=3, crop=64, seed=1)
    for i in range(6):
        x = ds[i]
        assert x.shape == (3, 3, 64, 64) and x.dtype == torch.float32
        assert -1.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert torch.equal(ds[3], ds[3])  # a pure function of (seed, index)


def test_cache_survives_a_concurrent_writer(source_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """Data-parallel ranks may decode the same clip into the same cache at once: another writer finishing
    between this one's write and its rename must not break it, and no temporary file is left."""
    from model.train import sources

    spec, cache = f"frames:{source_dir / 'clipA'}", tmp_path / "cache"
    real_save, calls, nested = np.save, [], []

    def save_then_let_another_writer_finish(file, array):
        real_save(file, array)
        calls.append(file)
        if len(calls) == 1:  # the other writer runs its whole fill now
            nested.append(load_source(spec, cache)[0].frames.shape)

    monkeypatch.setattr(sources.np, "save", save_then_let_another_writer_finish)
    assert load_source(spec, cache)[0].frames.shape == (5, 80, 96, 3)
    assert nested == [(5, 80, 96, 3)]
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".npy")] == []


def test_clips_move() -> None:
    rng = np.random.default_rng(0)
    image = np.asarray(Image.fromarray(_noise_video(1, 120, 160)[0]).resize((160, 120)))
    clip = motion_clip(image, 4, 64, rng, max_speed=2.0)
    assert clip.shape == (4, 3, 64, 64)
    assert float((clip[1:] - clip[:-1]).abs().mean()) > 0  # the camera moved
    video = video_clip(_noise_video(10, 70, 90), 4, 64, rng)
    assert video.shape == (4, 3, 64, 64)


def test_evaluation_clip_is_refused(tmp_path: Path) -> None:
    clip = tmp_path / "videos" / "BasketballPass_416x240_100f_png"
    clip.mkdir(parents=True)
    Image.fromarray(_noise_video(1, 64, 64)[0]).save(clip / "f001.png")
    with pytest.raises(EvalDataError):
        load_source(f"frames:{clip}", tmp_path / "cache")
    with pytest.raises(EvalDataError):
        ClipDataset([ClipItem("video/basketballpass.mp4", _noise_video(4, 64, 64), still=False)], 2, 64)
    # a folder scan skips it instead of training on it
    other = tmp_path / "videos" / "ok_clip"
    other.mkdir()
    Image.fromarray(_noise_video(1, 64, 64)[0]).save(other / "f001.png")
    keys = [it.key for it in load_source(f"frames:{tmp_path / 'videos'}", tmp_path / "cache")]
    assert keys == ["ok_clip/"]


def test_split_is_deterministic_by_name() -> None:
    items = [ClipItem(f"folder/clip{i}.mp4", np.zeros((1, 1, 1, 3), np.uint8), False) for i in range(200)]
    train, val = split_items(items, 0.1)
    assert len(train) + len(val) == 200 and 5 < len(val) < 40
    assert [it.key for it in split_items(list(reversed(items)), 0.1)[1]] == [it.key for it in reversed(val)]


def test_step_sampler_resumes_where_it_stopped() -> None:
    full = iter(StepSampler(batch_size=2, start_step=0, rank=1, world_size=2))
    first = [next(full) for _ in range(6)]
    resumed = iter(StepSampler(batch_size=2, start_step=2, rank=1, world_size=2))
    assert first == [2, 3, 6, 7, 10, 11] and [next(resumed) for _ in range(2)] == first[4:]


# ----------------------------------------------------------------------------------------------- losses


def test_rate_distortion_loss() -> None:
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    lik = {"y": torch.full((2, 4, 4, 4), 0.5), "z": torch.full((2, 1, 2, 2), 0.25)}
    assert torch.allclose(bits_from_likelihoods(lik), torch.tensor([64.0 + 8.0, 72.0]))
    out = {"x_hat": x + 0.1, "bits": torch.tensor([1024.0, 2048.0]), "latent": torch.zeros(2, 4, 4, 4),
           "latent_hat": torch.ones(2, 4, 4, 4)}
    crit = RateDistortionLoss((10.0, 100.0), LossWeights(pixel_weight=1.0, latent_weight=0.5))
    loss, terms = crit(out, x, torch.tensor([0, 1]))
    bpp = torch.tensor([1.0, 2.0])
    mse = (0.05**2)
    assert torch.allclose(terms["bpp"], bpp)
    assert torch.allclose(loss, torch.tensor([10.0, 100.0]) * (mse + 0.5) + bpp, rtol=1e-4)
    assert torch.allclose(psnr(out["x_hat"], x), torch.full((2,), -10 * np.log10(mse)), atol=0.2)
    with pytest.raises(ValueError):
        RateDistortionLoss((1.0,), LossWeights()).forward({"bits": torch.ones(1)}, x[:1], torch.zeros(1).long())


def test_perceptual_and_adversarial_terms() -> None:
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    x_hat = (x + 0.2 * torch.randn_like(x)).requires_grad_(True)
    disc = PatchDiscriminator(width=8, layers=2)
    crit = RateDistortionLoss((1.0,), LossWeights(perceptual_weight=1.0, adversarial_weight=0.1), disc)
    loss, terms = crit({"x_hat": x_hat, "bits": torch.zeros(1)}, x, torch.zeros(1, dtype=torch.long))
    assert float(terms["stlpips"]) > 0 and "adv" in terms
    loss.sum().backward()
    assert x_hat.grad is not None and float(x_hat.grad.abs().sum()) > 0
    assert not any(p.requires_grad for p in crit.perceptual.parameters())


# ----------------------------------------------------------------------------------------------- config


def test_config_round_trip(tmp_path: Path) -> None:
    cfg = preset("tiny-cpu-cascade")
    cfg.save(tmp_path / "c.json")
    assert TrainConfig.load(tmp_path / "c.json") == cfg
    with pytest.raises(ValueError, match="unknown"):
        TrainConfig.from_dict({"nope": 1})
    with pytest.raises(ValueError, match="reset"):
        TrainConfig(stage="cascade", num_frames=4, cascade_reset_interval=4)


# ----------------------------------------------------------------------------------------------- training

SMALL = {  # the tiny preset, narrower still, so that a step takes about a second on one CPU core
    "unet_block_out_channels": [16, 32, 32, 32], "semantic_channels": 32, "lora_rank": 2, "lora_alpha": 2,
    "motion_channels": 4, "intra_pix_channels": 16, "intra_unet_channels": [32, 48, 48], "intra_y_channels": 16,
    "inter_channels": 32, "inter_y_channels": 16, "inter_z_channels": 8,
}


def _small_config(tmp_path: Path, **changes) -> TrainConfig:
    base = dict(
        stage="cascade", model_overrides=SMALL, out_dir=str(tmp_path / "run"), num_frames=4, crop=64,
        cascade_reset_interval=2, batch_size=1, max_steps=2, warmup_steps=1, checkpoint_every=100, eval_every=0,
        val_fraction=0.0, lambdas=(1.0, 2.0, 4.0, 8.0, 16.0), loss=LossWeights(latent_weight=0.05),
    )
    return TrainConfig(**{**base, **changes})


@pytest.fixture
def taef2_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Randomly initialised TAEF2-layout weight files, so that a fresh model's autoencoder loads without
    ../shared (training from scratch loads the TAEF2 files through S2VC_TAEF2_DIR)."""
    from model.taesd import DECODER_FILE, ENCODER_FILE, TAEF2_ENV, TinyAutoencoder

    folder = tmp_path / "taef2"
    folder.mkdir()
    torch.manual_seed(0)
    model = TinyAutoencoder()
    torch.save(model.encoder.state_dict(), folder / ENCODER_FILE)
    torch.save(model.decoder.state_dict(), folder / DECODER_FILE)
    monkeypatch.setenv(TAEF2_ENV, str(folder))
    return folder


def _items() -> list[ClipItem]:
    return [ClipItem("synthetic/clip", _noise_video(6, 72, 80), still=False),
            ClipItem("synthetic/still", _noise_video(1, 96, 96, seed=1), still=True)]


def test_one_step_then_resume(tmp_path: Path, taef2_files: Path) -> None:
    from model.train.loop import Trainer, checkpoints

    torch.set_num_threads(1)
    cfg = _small_config(tmp_path, trainable=[r"^inter\.", r"^unet\."], gradient_checkpointing=True)
    trainer = Trainer(cfg, items=_items())
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    assert trainer.run(steps=1) is None  # one step, then a checkpoint (not finished: max_steps is 2)
    after = dict(trainer.model.named_parameters())
    changed = [n for n in before if not torch.equal(before[n], after[n])]
    assert any(n.startswith("inter.") for n in changed) and any(n.startswith("unet.") for n in changed)
    assert not any(n.startswith(("vae.", "intra.")) for n in changed)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[0]["step"] == 1 and np.isfinite(log[0]["loss"]) and log[0]["bpp"] > 0
    assert [p.name for p in checkpoints(tmp_path / "run")] == ["step_00000001"]

    resumed = Trainer(cfg, items=_items())
    assert resumed.resume() and resumed.state.step == 1
    for name, param in resumed.model.named_parameters():
        assert torch.equal(param, after[name]), name
    assert resumed.optimizer.state_dict()["state"]  # Adam moments came back too


def test_ema_weights_resume_and_go_to_final(tmp_path: Path, taef2_files: Path) -> None:
    from model.codec import S2VC
    from model.train.loop import Trainer

    torch.set_num_threads(1)
    cfg = _small_config(tmp_path, ema_decay=0.5)
    trainer = Trainer(cfg, items=_items())
    trainer.run(steps=1)
    live1 = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}

    resumed = Trainer(cfg, items=_items())
    final = resumed.run()  # resumes at step 1, trains step 2, writes final/
    assert final is not None and resumed.ema.optimization_step == 2  # the average came back from the checkpoint
    live2 = dict(resumed.model.named_parameters())
    saved = dict(S2VC.from_pretrained(final).named_parameters())
    decay = 2 / 11  # diffusers' warm-up (1 + n) / (10 + n) at n = 1, below the 0.5 cap; step 1 copied the weights
    moved = [n for n in live1 if not torch.equal(live1[n], live2[n])]
    assert moved
    for name in moved:
        expected = decay * live1[name] + (1 - decay) * live2[name].detach()
        assert torch.allclose(saved[name], expected, atol=1e-6), name
        assert not torch.equal(saved[name], live2[name].detach()), name
    frozen = next(n for n, p in resumed.model.named_parameters() if not p.requires_grad)
    assert torch.equal(saved[frozen], live2[frozen].detach())
    with pytest.raises(ValueError, match="ema_decay"):
        _small_config(tmp_path, ema_decay=1.0)


def test_p_stage_evaluation_sets_the_p_frames_beside_copying_their_reference(tmp_path: Path, taef2_files: Path) -> None:
    from model.train.loop import Trainer, copy_latent_mse

    gen = torch.Generator().manual_seed(0)
    latents = [torch.randn(2, 4, 3, 3, generator=gen) for _ in range(3)]
    outs = [{"frame_type": kind, "latent": lat, "latent_hat": lat + 0.5}
            for kind, lat in zip(("I", "reset", "P"), latents)]
    expected = torch.stack([(latents[t - 1] + 0.5 - latents[t]).pow(2).flatten(1).mean(1) for t in (1, 2)]).mean(0)
    assert torch.allclose(copy_latent_mse(outs), expected)
    with pytest.raises(ValueError, match="no P-frame"):
        copy_latent_mse(outs[:1])

    torch.set_num_threads(1)
    trainer = Trainer(_small_config(tmp_path, val_fraction=0.5, eval_samples=1), items=_items())
    rows = trainer.evaluate()
    assert [r["rate"] for r in rows] == [0, 1, 2, 3, 4]
    assert all(r["copy_latent_mse"] > 0 and r["latent_mse"] > 0 for r in rows)
    assert all("copy_latent_mse" not in r for r in Trainer(_small_config(
        tmp_path, stage="intra", num_frames=1, val_fraction=0.5, eval_samples=1), items=_items()).evaluate())


def test_stages_train_the_right_parts() -> None:
    from model.codec import S2VC
    from model.config import tiny
    from model.train.config import TRAINABLE
    from model.train.loop import select_trainable

    model = S2VC(tiny().replace(**{k: tuple(v) if isinstance(v, list) else v for k, v in SMALL.items()}))
    select_trainable(model, TRAINABLE["intra"])
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {"unet.conv_in.weight", "unet.vae_reduction.short_cut.weight"} <= names
    assert any(n.startswith("intra.") for n in names) and any("lora_A.iframe" in n for n in names)
    assert not any(n.startswith(("inter.", "vae.")) or "pframe" in n for n in names)
    select_trainable(model, TRAINABLE["inter"])
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("pframe_motion_fusion" in n for n in names) and any("lora_A.pframe" in n for n in names)
    assert all(n.startswith("inter.") or "pframe" in n for n in names)


@pytest.mark.parametrize("decoder_input", ["autoencoder", "generator"])
def test_decoder_stage_trains_only_the_decoder(tmp_path: Path, decoder_input: str, taef2_files: Path) -> None:
    from model.train.loop import Trainer

    torch.set_num_threads(1)
    cfg = _small_config(tmp_path, stage="decoder", decoder_input=decoder_input, num_frames=3 if decoder_input ==
                        "generator" else 1, loss=LossWeights(pixel_weight=1.0), cascade_reset_interval=4)
    trainer = Trainer(cfg, items=_items())
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.run(steps=1)
    after = dict(trainer.model.named_parameters())
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    decoder = {n for n in before if n.startswith("vae.model.decoder.")}
    assert changed and changed <= decoder
    row = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[0])
    assert np.isfinite(row["loss"]) and row["mse"] > 0 and "psnr" in row
    with pytest.raises(ValueError, match="decode must be on"):
        TrainConfig(stage="decoder", decode=False)


def test_overrides_on_a_pretrained_model_keep_every_fitting_weight(tmp_path: Path) -> None:
    from model.codec import S2VC
    from model.config import tiny
    from model.train.loop import with_overrides

    small = {k: tuple(v) if isinstance(v, list) else v for k, v in SMALL.items()}
    old = S2VC(tiny().replace(**small, vae_decoder_widths=(), vae_decoder_blocks=(), unet_attention_head_dim=8))
    new = with_overrides(old, {"vae_decoder_widths": [64, 32, 16, 8], "unet_attention_head_dim": 1})
    assert new.config.vae_decoder_widths == (64, 32, 16, 8) and new.config.unet_attention_head_dim == 1
    old_state = old.state_dict()
    for key, value in new.state_dict().items():
        if not key.startswith("vae.model.decoder."):
            assert torch.equal(value, old_state[key]), key
    # a new decoder layout starts fresh, even where a tensor's shape happens to fit (the first conv: 32 -> 64)
    assert new.state_dict()["vae.model.decoder.1.weight"].shape == old_state["vae.model.decoder.1.weight"].shape
    assert not torch.equal(new.state_dict()["vae.model.decoder.1.weight"], old_state["vae.model.decoder.1.weight"])
    with pytest.raises(ValueError, match="outside the decoder"):
        with_overrides(old, {"inter_channels": 48})


def test_overrides_may_add_the_p_side_s_zero_started_options() -> None:
    from model.codec import S2VC
    from model.config import tiny
    from model.train.loop import with_overrides

    small = {k: tuple(v) if isinstance(v, list) else v for k, v in SMALL.items()}
    old = S2VC(tiny().replace(**small))
    new = with_overrides(old, {"inter_latent_input": True})
    old_state, new_state = old.state_dict(), new.state_dict()
    assert sorted(set(new_state) - set(old_state)) == ["inter.latent_emb.bias", "inter.latent_emb.weight"]
    assert all(torch.equal(new_state[k], v) for k, v in old_state.items())
    assert not new_state["inter.latent_emb.weight"].any() and not new_state["inter.latent_emb.bias"].any()
    with pytest.raises(ValueError, match="outside the decoder"):  # removing it would drop trained weights
        with_overrides(new, {"inter_latent_input": False})
    skip = with_overrides(old, {"inter_x0_skip": True}).state_dict()
    assert sorted(set(skip) - set(old_state)) == ["inter.x0_skip"] and not skip["inter.x0_skip"].any()


def test_lr_scale_gives_matching_parameters_their_own_learning_rate() -> None:
    from model.codec import S2VC
    from model.config import tiny
    from model.train.loop import param_groups, select_trainable

    small = {k: tuple(v) if isinstance(v, list) else v for k, v in SMALL.items()}
    model = S2VC(tiny().replace(**small, inter_latent_input=True))
    params = select_trainable(model, (r"^inter\.",))
    groups = param_groups(model, params, 1e-4, {r"^inter\.latent_emb\.": 100})
    assert [g["lr"] for g in groups] == [1e-4, pytest.approx(1e-2)]
    assert groups[1]["params"] == [model.inter.latent_emb.weight, model.inter.latent_emb.bias]
    assert sum(len(g["params"]) for g in groups) == len(params)
    assert param_groups(model, params, 1e-4, {}) == [{"params": params, "lr": 1e-4}]
    with pytest.raises(ValueError, match=r"match no trained parameter: \['\^intra'\]"):
        param_groups(model, params, 1e-4, {"^intra": 10})  # intra is not trained here


def test_overrides_back_to_taef2_s_decoder_layout_load_its_pretrained_decoder(shared_data: Path) -> None:
    from model.codec import S2VC
    from model.config import tiny
    from model.taesd import DECODER_FILE, taef2_dir
    from model.train.loop import with_overrides

    if not (taef2_dir() / DECODER_FILE).is_file():
        pytest.skip(f"TAEF2 weights not found in {taef2_dir()}")
    small = {k: tuple(v) if isinstance(v, list) else v for k, v in SMALL.items()}
    narrow = S2VC(tiny().replace(**small, vae_decoder_widths=(64, 32, 16, 8), vae_decoder_blocks=(1, 1, 1, 1)))
    new = with_overrides(narrow, {"vae_decoder_widths": [], "vae_decoder_blocks": []})
    assert new.vae.model.has_taef2_decoder
    stored = torch.load(taef2_dir() / DECODER_FILE, map_location="cpu", weights_only=True)
    decoder = new.vae.model.decoder.state_dict()
    assert set(decoder) == set(stored)
    assert all(torch.equal(decoder[k], stored[k].float()) for k in stored)
