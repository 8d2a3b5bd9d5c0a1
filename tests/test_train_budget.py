"""The time budget and the GPU efficiency options of the training loop, on the CPU with a tiny model."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
import torch

from model.codec import S2VC
from model.config import tiny
from model.entropy_models import BitEstimator, gaussian_likelihood
from model.train.budget import TimeBudget
from model.train.loop import Trainer, checkpoints
from tests.test_train import SMALL, _items, _small_config


@pytest.fixture
def init_model(tmp_path: Path) -> Path:
    """A save_pretrained folder of the small model (random weights)."""
    small = {k: tuple(v) if isinstance(v, list) else v for k, v in SMALL.items()}
    folder = tmp_path / "init"
    S2VC(tiny().replace(**small)).save_pretrained(folder)
    return folder


def _config(tmp_path: Path, init: Path, **changes):
    return _small_config(tmp_path, model_overrides={}, init_from=str(init), **changes)


def _log(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]


def test_budget_plans_with_measured_costs(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    budget = TimeBudget.seconds_from_now(60.0)
    assert budget.room_for_step() and budget.planned_steps(0, 1000) == 1000  # nothing measured yet
    budget.record_step(2.0)
    budget.record_step(4.0)
    budget.record("checkpoint", 5.0)
    budget.record("checkpoint", 3.0)  # the largest cost is kept
    budget.record("eval", 10.0)
    assert budget.reserve() == 20.0  # checkpoint + final (bounded by a checkpoint) + evaluation
    now[0] = 100.0 + 60.0 - 1.25 * (4.0 + 20.0)  # exactly room for the slowest step and the reserve
    assert budget.room_for_step()
    now[0] += 0.01
    assert not budget.room_for_step()
    now[0] = 100.0
    assert budget.planned_steps(7, 1000) == 7 + int((60.0 / 1.25 - 20.0) / 3.0)  # median step 3 s
    assert budget.planned_steps(7, 10) == 10
    assert TimeBudget(None).room_for_step() and TimeBudget(None).planned_steps(3, 50) == 50
    with pytest.raises(ValueError, match="positive"):
        TimeBudget.seconds_from_now(0)


def test_time_budget_ends_the_run_checkpointed_evaluated_and_final_in_time(tmp_path: Path, init_model: Path) -> None:
    torch.set_num_threads(1)
    cfg = _config(tmp_path, init_model, max_steps=100000, val_fraction=0.5, eval_samples=1)
    trainer = Trainer(cfg, items=_items())
    assert [it.key for it in trainer.val_items] == ["synthetic/still"]
    budget = TimeBudget.seconds_from_now(20.0)
    final = trainer.run(budget=budget)
    assert time.monotonic() <= budget.at
    rows = _log(tmp_path)
    summary = next(r for r in rows if r.get("split") == "summary")
    assert summary["split"] == "summary" and summary["stopped"] == "time_budget"
    steps = summary["step"]
    assert steps >= 2 and summary["steps"] == steps and summary["crops_per_sec"] > 0
    assert summary["crops_per_sec"] == pytest.approx(summary["steps_per_sec"] * cfg.batch_size * cfg.num_frames,
                                                     abs=0.01)  # both rounded in the log
    assert [r["step"] for r in rows if "split" not in r] == list(range(1, steps + 1))
    val_steps = sorted({r["step"] for r in rows if r.get("split") == "val"})
    assert val_steps == [1, steps]  # measured after the first step, then the end of the held-out curve
    assert len([r for r in rows if r.get("split") == "val"]) == 2 * 5  # every rate point each time
    assert checkpoints(tmp_path / "run")[-1].name == f"step_{steps:08d}"
    assert final == tmp_path / "run" / "final" and S2VC.from_pretrained(final).config.num_rates == 5
    assert 0 < trainer.horizon < cfg.max_steps  # the cosine was planned over the steps that fit


def test_a_spent_budget_trains_nothing_and_passes_the_model_on(tmp_path: Path, init_model: Path) -> None:
    torch.set_num_threads(1)
    trainer = Trainer(_config(tmp_path, init_model, max_steps=100, val_fraction=0.5), items=_items())
    final = trainer.run(budget=TimeBudget(time.monotonic() - 1.0))
    assert not [r for r in _log(tmp_path) if r.get("split") == "val"]
    summary = next(r for r in _log(tmp_path) if r.get("split") == "summary")
    assert summary["steps"] == 0 and summary["stopped"] == "time_budget"
    assert not checkpoints(tmp_path / "run")  # nothing trained: no checkpoint, no evaluation, only final/
    start, out = S2VC.from_pretrained(init_model).state_dict(), S2VC.from_pretrained(final).state_dict()
    assert all(torch.equal(start[k], out[k]) for k in start)


def test_optimizer_kernels_take_the_same_step(tmp_path: Path, init_model: Path) -> None:
    torch.set_num_threads(1)
    params = {}
    for kernel in ("fused", "foreach", "for-loop"):
        trainer = Trainer(_config(tmp_path / kernel, init_model, optimizer_kernel=kernel), items=_items())
        defaults = trainer.optimizer.optimizer.defaults
        assert bool(defaults["fused"]) == (kernel == "fused") and bool(defaults["foreach"]) == (kernel == "foreach")
        trainer.run(steps=1)
        params[kernel] = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    for kernel in ("foreach", "for-loop"):
        for name, value in params["fused"].items():
            assert torch.allclose(value, params[kernel][name], atol=1e-6), (kernel, name)
    with pytest.raises(ValueError, match="optimizer_kernel"):
        _config(tmp_path, init_model, optimizer_kernel="apex")


def test_channels_last_trains_saves_and_resumes_like_nchw(tmp_path: Path, init_model: Path) -> None:
    torch.set_num_threads(1)
    losses = {}
    for layout in (False, True):
        cfg = _config(tmp_path / str(layout), init_model, channels_last=layout)
        trainer = Trainer(cfg, items=_items())
        weights = [m.weight for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d)]
        fmt = torch.channels_last if layout else torch.contiguous_format
        assert weights and all(w.is_contiguous(memory_format=fmt) for w in weights)
        final = trainer.run()  # two steps, a checkpoint and final/ (safetensors wants NCHW)
        assert final is not None and S2VC.from_pretrained(final)
        losses[layout] = [r["loss"] for r in _log(tmp_path / str(layout)) if "loss" in r]
        resumed = Trainer(cfg, items=_items())
        assert resumed.resume() and resumed.state.step == 2
        assert all(torch.equal(p, q) for p, q in zip(resumed.model.parameters(), trainer.model.parameters()))
    assert losses[True][0] == pytest.approx(losses[False][0], rel=1e-4)  # same weights, another memory layout
    # after one Adam step: its first update divides by sqrt(v) ~ |g|, so float noise in near-zero gradients becomes
    # full-size steps of either sign; the losses stay close, not equal
    assert losses[True][1] == pytest.approx(losses[False][1], rel=5e-2)


def test_compile_and_pinned_memory_skip_clearly_on_cpu(tmp_path: Path, init_model: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    torch.set_num_threads(1)
    caplog.set_level(logging.INFO, logger="model.train.loop")
    trainer = Trainer(_config(tmp_path, init_model, compile_modules=["unet", "vae.model.decoder"], pin_memory=True),
                      items=_items())
    assert trainer.compiled == [] and "compile_modules ['unet', 'vae.model.decoder'] skipped" in caplog.text
    assert trainer.make_loader().pin_memory is False and "pin_memory skipped" in caplog.text
    trainer.run(steps=1)
    assert _log(tmp_path)[0]["step"] == 1
    with pytest.raises(ValueError, match="compile_modules names unknown sub-modules"):
        _config(tmp_path, init_model, compile_modules=["vae"])


def test_loader_workers_give_the_same_batches(tmp_path: Path, init_model: Path) -> None:
    torch.set_num_threads(1)
    batches = []
    for workers in (0, 1):
        trainer = Trainer(_config(tmp_path / str(workers), init_model, num_workers=workers, batch_size=2),
                          items=_items())
        batches.append(next(iter(trainer.make_loader())))
    assert batches[0].shape == (2, 4, 3, 64, 64) and torch.equal(batches[0], batches[1])


def test_likelihoods_stay_fp32_under_bf16_autocast() -> None:
    torch.manual_seed(0)
    q = torch.randn(2, 8, 4, 4).mul(3).round().bfloat16()
    std = torch.rand(2, 8, 4, 4).add(0.1).bfloat16()
    reference = gaussian_likelihood(q.float(), std.float())
    estimator = BitEstimator(8, qp_num=2)
    index = torch.tensor([0, 1])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gauss = gaussian_likelihood(q, std)
        factorized = estimator.likelihood(q, index)
    assert gauss.dtype == torch.float32 and torch.equal(gauss, reference)
    assert factorized.dtype == torch.float32 and torch.equal(factorized, estimator.likelihood(q.float(), index))


def test_init_from_a_pretrained_folder_needs_no_taef2_files(tmp_path: Path, init_model: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from model.errors import CheckpointError
    from model.taesd import TAEF2_ENV

    torch.set_num_threads(1)
    monkeypatch.setenv(TAEF2_ENV, str(tmp_path / "no-taef2-here"))
    for stage, frames in (("cascade", 4), ("decoder", 1)):  # the decoder stage encodes with the folder's encoder
        cfg = _config(tmp_path / stage, init_model, stage=stage, num_frames=frames)
        Trainer(cfg, items=_items()).run(steps=1)
        assert _log(tmp_path / stage)[0]["step"] == 1
    with pytest.raises(CheckpointError, match=TAEF2_ENV):  # a fresh model does need them
        Trainer(_small_config(tmp_path / "fresh"), items=_items())
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        Trainer(_config(tmp_path / "missing", tmp_path / "nowhere"), items=_items())


def test_cli_refuses_a_bad_budget_or_override_in_one_line(capsys: pytest.CaptureFixture) -> None:
    from model.train.__main__ import main

    for argv, message in ((["--time-budget", "0"], "--time-budget must be positive"),
                          (["--set", "nope=1"], "unknown training config keys: nope"),
                          (["--set", "compile_modules=[\"vae\"]"], "compile_modules names unknown sub-modules")):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
