"""Combine the weights of two training runs of the same model, stage by stage.

The intra and inter stages train disjoint parameter sets (model/train/config.py TRAINABLE), so when they run in
parallel their results can be joined: every parameter of `--base` except those the `--stage` trains, which come
from `--take`. Either source may be a save_pretrained folder or a training checkpoint folder.

    python -m model.train.merge --base runs/tiny-intra/final --take runs/tiny-inter/checkpoints/step_00001000 \
        --stage inter -o runs/tiny-merged [--dtype float16]
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import torch

from model.train.config import TRAINABLE, TrainConfig, is_trainable
from model.train.loop import build_model


def load_any(folder: str | Path) -> torch.nn.Module:
    """A model from a save_pretrained folder or from a checkpoint folder of a run (its train_config.json)."""
    folder = Path(folder)
    run_config = folder.parent.parent / "train_config.json"
    cfg = TrainConfig.load(run_config) if run_config.is_file() else TrainConfig()
    return build_model(cfg.replace(init_from=str(folder)))


def merge(base: torch.nn.Module, take: torch.nn.Module, stage: str) -> int:
    """Copy the parameters trained by `stage` from `take` into `base`; returns how many tensors were copied."""
    patterns = [re.compile(p) for p in TRAINABLE[stage]]
    source = dict(take.named_parameters())
    copied = 0
    with torch.no_grad():
        for name, param in base.named_parameters():
            if is_trainable(name, patterns):
                param.copy_(source[name])
                copied += 1
    base.invalidate_hash()
    return copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.train.merge", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True)
    parser.add_argument("--take", required=True)
    parser.add_argument("--stage", required=True, choices=sorted(TRAINABLE))
    parser.add_argument("-o", "--out", required=True)
    parser.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32")
    args = parser.parse_args(argv)
    base, take = load_any(args.base), load_any(args.take)
    count = merge(base, take, args.stage)
    base.save_pretrained(args.out, dtype=getattr(torch, args.dtype))
    print(f"{count} tensors of stage {args.stage!r} taken from {args.take}; written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
