"""The one-command recipe: every stage in sequence within one time budget, each from the previous one's output."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model.codec import S2VC
from model.train import recipe
from model.train.config import TrainConfig
from model.train.recipe import RECIPE, run_recipe, run_stage, split_overrides, stage_configs
from model.train.budget import TimeBudget
from tests.test_train_budget import init_model  # noqa: F401 (fixture)


@pytest.fixture
def sources(tmp_path: Path) -> list[str]:
    rng = np.random.default_rng(0)
    clip, stills = tmp_path / "data" / "clip", tmp_path / "data" / "stills"
    clip.mkdir(parents=True)
    stills.mkdir()
    base = rng.integers(0, 256, (80, 112, 3), dtype=np.uint8)
    for t in range(8):
        Image.fromarray(np.roll(base, 2 * t, axis=1)).save(clip / f"{t:02d}.png")
    Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(stills / "a.png")
    return [f"frames:{clip}", f"images:{stills}"]


def _changes(tmp_path: Path, sources: list[str], **more) -> dict:
    return {"sources": sources, "cache_dir": str(tmp_path / "cache"), "crop": 64, "batch_size": 1, "num_workers": 0,
            "val_fraction": 0.0, "lambdas": [1.0, 2.0, 4.0, 8.0, 16.0], "cascade.num_frames": 4,
            "cascade.cascade_reset_interval": 2, **more}


def _params(folder: Path) -> dict[str, torch.Tensor]:
    return S2VC.from_pretrained(folder).state_dict()


def _changed(a: dict, b: dict) -> set[str]:
    return {k.split(".")[0] + (".decoder" if k.startswith("vae.model.decoder") else "")
            for k in a if not torch.equal(a[k], b[k])}


def test_recipe_trains_every_stage_in_turn_within_the_budget(tmp_path: Path, init_model: Path,
                                                             sources: list[str]) -> None:
    torch.set_num_threads(1)
    out, budget = tmp_path / "run", 150.0  # far more than two steps a stage take: each stage ends at max_steps
    start = time.monotonic()
    final = run_recipe(out, budget, init_model, _changes(tmp_path, sources, max_steps=2))
    elapsed = time.monotonic() - start
    report = json.loads((out / "recipe.json").read_text())
    assert [s["name"] for s in report["stages"]] == [s.name for s in RECIPE]
    assert all(s["steps"] == 2 and s["stopped"] == "max_steps" for s in report["stages"]), report["stages"]
    assert elapsed <= budget and report["used_s"] <= budget
    assert all(s["share_s"] > 0 and s["crops_per_sec"] > 0 for s in report["stages"])
    previous = init_model
    for stage in RECIPE:
        cfg = TrainConfig.load(out / stage.name / "train_config.json")
        assert cfg.init_from == str(previous) and cfg.crop == 64
        previous = out / stage.name / "final"
    assert TrainConfig.load(out / "cascade" / "train_config.json").num_frames == 4
    assert TrainConfig.load(out / "inter" / "train_config.json").num_frames == 3  # the preset's
    models = {"init": _params(init_model), **{s.name: _params(out / s.name / "final") for s in RECIPE}}
    assert _changed(models["init"], models["intra"]) == {"intra", "unet"}
    assert _changed(models["intra"], models["intra-ft"]) == {"intra", "unet"}
    assert _changed(models["intra-ft"], models["inter"]) == {"inter", "unet"}
    assert _changed(models["inter"], models["cascade"]) == {"inter", "unet"}
    assert _changed(models["cascade"], models["decoder-ft"]) == {"vae.decoder"}
    assert final == out / "final" and not _changed(models["decoder-ft"], _params(final))


def test_a_tiny_budget_ends_the_recipe_with_the_model_passed_on(tmp_path: Path, init_model: Path,
                                                               sources: list[str]) -> None:
    torch.set_num_threads(1)
    out = tmp_path / "run"
    final = run_recipe(out, 0.5, init_model, _changes(tmp_path, sources, max_steps=100))  # less than a build
    report = json.loads((out / "recipe.json").read_text())
    assert [(s["name"], s["steps"], s["stopped"]) for s in report["stages"]] == [("intra", 0, "time_budget")]
    assert not (out / "intra" / "checkpoints").exists() and not (out / "intra-ft").exists()
    assert not _changed(_params(init_model), _params(final))


def test_stage_overrides_reach_only_their_stage(tmp_path: Path) -> None:
    configs = stage_configs(tmp_path, tmp_path / "init", {"batch_size": 3, "cascade.batch_size": 5,
                                                         "intra.loss": {"latent_weight": 0.5}})
    assert [c.batch_size for c in configs] == [3, 3, 3, 5, 3]
    assert configs[0].loss.latent_weight == 0.5 and configs[2].loss.latent_weight == 0.05
    assert [c.out_dir for c in configs] == [str(tmp_path / s.name) for s in RECIPE]
    with pytest.raises(ValueError, match="no stage 'decoder'"):
        split_overrides({"decoder.lr": 1.0}, RECIPE)
    with pytest.raises(ValueError, match="unknown training config keys"):
        stage_configs(tmp_path, tmp_path / "init", {"inter.nope": 1})


def test_a_stage_out_of_memory_restarts_with_half_the_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    tried = []

    class Trainer:  # a stand-in whose step fits in memory up to `fits` samples
        fits = 2

        def __init__(self, cfg: TrainConfig):
            self.cfg = cfg

        def run(self, budget: TimeBudget) -> Path:
            tried.append(self.cfg.batch_size)
            if self.cfg.batch_size > self.fits:
                raise torch.OutOfMemoryError("CUDA out of memory")
            return Path("final")

    monkeypatch.setattr("model.train.loop.Trainer", Trainer)
    assert run_stage(TrainConfig(batch_size=12), TimeBudget(None)) == Path("final") and tried == [12, 6, 3, 1]
    tried.clear()
    Trainer.fits = 0
    with pytest.raises(torch.OutOfMemoryError):
        run_stage(TrainConfig(batch_size=2), TimeBudget(None))
    assert tried == [2, 1]


def test_cli_refuses_bad_arguments_in_one_line(tmp_path: Path, init_model: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        recipe.main(["--out", str(tmp_path / "o"), "--time-budget", "10", "--set", "nostage.lr=1"])
    assert "no stage 'nostage'" in capsys.readouterr().err
    assert recipe.main(["--out", str(tmp_path / "o"), "--time-budget", "10", "--init-from", str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip().startswith("error: --init-from")
    assert not (tmp_path / "o").exists()
