"""Train every stage in sequence on one GPU (or CPU) within one wall-clock budget:

    intra -> intra-ft -> inter -> cascade -> decoder-ft

each stage starting from the previous stage's `final/` (the first from `--init-from`, by default the bundled
model) and stopping, checkpointed and evaluated on the held-out items, when its share of the time left is spent.
A stage's share is recomputed from the time actually left when it starts, so an early overrun shortens the later
stages instead of the deadline. `OUT/final/` is the result; `OUT/recipe.json` sums every stage up.

    python -m model.train.recipe --out runs/gpu --time-budget 540 --set 'sources=["pack:train_pack","skimage"]'

`--set KEY=VALUE` changes every stage, `--set STAGE.KEY=VALUE` one stage (e.g. `cascade.batch_size=16`). A stage
that runs out of GPU memory is restarted with half its batch.
"""
from __future__ import annotations

import argparse
import gc
import json
import logging
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from model.train.budget import TimeBudget
from model.train.config import TrainConfig, parse_overrides, preset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    name: str
    preset: str
    share: float  # relative weight of its part of the budget


RECIPE = (
    Stage("intra", "tiny-gpu-intra", 0.25),
    Stage("intra-ft", "tiny-gpu-intra-ft", 0.15),
    Stage("inter", "tiny-gpu-inter", 0.15),
    Stage("cascade", "tiny-gpu-cascade", 0.30),
    Stage("decoder-ft", "tiny-gpu-decoder-ft", 0.15),
)


def split_overrides(changes: dict[str, Any], stages: tuple[Stage, ...]) -> tuple[dict, dict[str, dict]]:
    """`--set` changes for every stage, and those prefixed `STAGE.` for one stage."""
    names = {s.name for s in stages}
    common: dict[str, Any] = {}
    per_stage: dict[str, dict] = {name: {} for name in names}
    for key, value in changes.items():
        stage, dot, field = key.partition(".")
        if dot and stage in names:
            per_stage[stage][field] = value
        elif dot:
            raise ValueError(f"--set {key}: no stage {stage!r} in the recipe ({', '.join(sorted(names))})")
        else:
            common[key] = value
    return common, per_stage


def stage_configs(out: Path, init_from: Path, changes: dict[str, Any],
                  stages: tuple[Stage, ...] = RECIPE) -> list[TrainConfig]:
    """Every stage's config (checked now, before any training): its preset, the changes, its own out_dir, and
    init_from the previous stage's final/."""
    common, per_stage = split_overrides(changes, stages)
    configs, previous = [], init_from
    for stage in stages:
        cfg = preset(stage.preset).overridden(
            {**common, **per_stage[stage.name], "out_dir": str(out / stage.name), "init_from": str(previous)})
        configs.append(cfg)
        previous = out / stage.name / "final"
    return configs


def run_stage(cfg: TrainConfig, budget: TimeBudget) -> Path | None:
    """Train one stage to its budget; out of GPU memory, start it again with half the batch."""
    from model.train.loop import Trainer

    while True:
        try:
            return Trainer(cfg).run(budget=budget)
        except torch.OutOfMemoryError:
            if cfg.batch_size == 1:
                raise
            log.warning("%s: out of memory at batch %d, restarting at %d", cfg.out_dir, cfg.batch_size,
                        cfg.batch_size // 2)
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            cfg = cfg.replace(batch_size=cfg.batch_size // 2)


def stage_summary(out_dir: Path) -> dict[str, Any]:
    """The last summary line of a stage's log and its last held-out figures."""
    rows = [json.loads(line) for line in (out_dir / "log.jsonl").read_text().splitlines()]
    summary = [r for r in rows if r.get("split") == "summary"][-1]
    val = [r for r in rows if r.get("split") == "val"]
    last = [r for r in val if r["step"] == val[-1]["step"]] if val else []
    return {**summary, "val": last}


def run_recipe(out: Path, seconds: float, init_from: Path, changes: dict[str, Any],
               stages: tuple[Stage, ...] = RECIPE) -> Path:
    """Train the stages in sequence within `seconds`; returns `out/final` (the last stage's model)."""
    deadline = time.monotonic() + seconds
    configs = stage_configs(out, init_from, changes, stages)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"time_budget_s": seconds, "init_from": str(init_from), "stages": []}
    result = init_from
    for i, (stage, cfg) in enumerate(zip(stages, configs)):
        left = deadline - time.monotonic()
        share = left * stage.share / sum(s.share for s in stages[i:])
        if share <= 0:
            log.warning("recipe: no time left for %s and the stages after it", stage.name)
            break
        log.info("recipe: %s gets %.1f s of the %.1f s left", stage.name, share, left)
        started = time.monotonic()
        final = run_stage(cfg, TimeBudget(started + share))
        if final is None:  # stopped by a signal: the later stages would start from an unfinished one
            log.warning("recipe: %s stopped before its end; the recipe stops here", stage.name)
            break
        result = final
        report["stages"].append({"name": stage.name, "preset": stage.preset, "share_s": round(share, 2),
                                 "used_s": round(time.monotonic() - started, 2), **stage_summary(Path(cfg.out_dir))})
    if result == init_from:
        raise RuntimeError("the recipe trained no stage: the time budget is too short")
    final = out / "final"
    if final.exists():
        shutil.rmtree(final)
    shutil.copytree(result, final)
    report.update(final=str(final), used_s=round(seconds - (deadline - time.monotonic()), 2))
    (out / "recipe.json").write_text(json.dumps(report, indent=1) + "\n")
    return final


def main(argv: list[str] | None = None) -> int:
    from model.loading import DEFAULT_MODEL_DIR

    parser = argparse.ArgumentParser(prog="python -m model.train.recipe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder: one sub-folder per stage, final/, recipe.json")
    parser.add_argument("--time-budget", type=float, required=True, metavar="SECONDS",
                        help="wall-clock seconds for all the stages together")
    parser.add_argument("--init-from", default=str(DEFAULT_MODEL_DIR), help="the model to start from "
                        "(a save_pretrained folder; default: the bundled model)")
    parser.add_argument("--set", nargs="*", default=[], metavar="[STAGE.]KEY=VALUE",
                        help="override config fields of every stage, or of one stage with a STAGE. prefix")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.time_budget <= 0:
        parser.error(f"--time-budget must be positive, got {args.time_budget}")
    try:
        changes = parse_overrides(args.set)
        stage_configs(Path(args.out), Path(args.init_from), changes)
    except (ValueError, TypeError) as err:
        parser.error(str(err))
    if not (Path(args.init_from) / "model.safetensors").is_file():
        print(f"error: --init-from {args.init_from}: no model.safetensors there", file=sys.stderr)
        return 1
    final = run_recipe(Path(args.out), args.time_budget, Path(args.init_from), changes)
    report = json.loads((Path(args.out) / "recipe.json").read_text())
    for s in report["stages"]:
        print(f"{s['name']:11s} {s['steps']:6d} steps  {s['steps_per_sec']:8.3f} steps/s  "
              f"{s['crops_per_sec']:9.1f} crops/s  {s['used_s']:7.1f} of {s['share_s']:7.1f} s  {s['stopped']}")
    print(f"final model written to {final} ({report['used_s']:.1f} s of {args.time_budget:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
