"""Combine the weights of two training runs of the same model, stage by stage.

The intra and inter stages train disjoint parameter sets (model/train/config.py TRAINABLE), so when they run in
parallel their results can be joined: every parameter of `--base` except those the `--stage` trains, which come
from `--take`. Either source may be a save_pretrained folder or a training checkpoint folder.

    python -m model.train.merge --base runs/tiny-intra/final --take runs/tiny-inter/checkpoints/step_00001000 \
        --stage inter -o runs/tiny-merged [--dtype float16]

Several `--take` folders (checkpoints of one run) give the stage's parameters as their mean: weight averaging,
which smooths the checkpoint-to-checkpoint noise of a small-batch run.
"""
from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from model.train.config import TRAINABLE, TrainConfig, is_trainable
from model.train.loop import build_model


def load_any(folder: str | Path) -> torch.nn.Module:
    """A model from a save_pretrained folder or from a checkpoint folder of a run (its train_config.json says
    which model it trained)."""
    return build_model(TrainConfig(init_from=str(folder)))


def merge(base: torch.nn.Module, take: torch.nn.Module | Sequence[torch.nn.Module], stage: str) -> int:
    """Copy the parameters trained by `stage` from `take` (or their mean over several models) into `base`;
    returns how many tensors were copied."""
    patterns = [re.compile(p) for p in TRAINABLE[stage]]
    takes = [take] if isinstance(take, torch.nn.Module) else list(take)
    if not takes:
        raise ValueError("merge needs at least one model to take from")
    sources = [dict(t.named_parameters()) for t in takes]
    copied = 0
    with torch.no_grad():
        for name, param in base.named_parameters():
            if is_trainable(name, patterns):
                param.copy_(torch.stack([s[name] for s in sources]).mean(0))
                copied += 1
    base.invalidate_hash()
    return copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.train.merge", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True)
    parser.add_argument("--take", required=True, nargs="+", help="one folder, or several to average")
    parser.add_argument("--stage", required=True, choices=sorted(TRAINABLE))
    parser.add_argument("-o", "--out", required=True)
    parser.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32")
    args = parser.parse_args(argv)
    base = load_any(args.base)
    count = merge(base, [load_any(folder) for folder in args.take], args.stage)
    base.save_pretrained(args.out, dtype=getattr(torch, args.dtype))
    what = args.take[0] if len(args.take) == 1 else f"the mean of {len(args.take)} models ({', '.join(args.take)})"
    print(f"{count} tensors of stage {args.stage!r} taken from {what}; written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
