"""Train S2VC: `python -m model.train --preset tiny-cpu-intra` (one process, CPU or one GPU), or on many GPUs:
`accelerate launch --multi_gpu --num_processes 8 -m model.train --config run.json`.

A run resumes from the latest checkpoint in its `out_dir`; `--steps N` stops after N more steps (CPU sessions);
`--time-budget S` stops so that the last checkpoint, a held-out evaluation and final/ are written within S seconds
of the start.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from model.train.budget import TimeBudget
from model.train.config import PRESETS, TrainConfig, parse_overrides, preset


def make_config(args: argparse.Namespace) -> TrainConfig:
    cfg = TrainConfig.load(args.config) if args.config else preset(args.preset)
    changes = parse_overrides(args.set)
    if args.out:
        changes["out_dir"] = args.out
    return cfg.overridden(changes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--config", help="a training config JSON file (see --print-config)")
    source.add_argument("--preset", default="tiny-cpu-intra", choices=sorted(PRESETS))
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override config fields, e.g. --set batch_size=8 'lambdas=[8,32,128,512]'")
    parser.add_argument("--out", help="output folder (checkpoints, log.jsonl, final/)")
    parser.add_argument("--steps", type=int, help="stop after this many more steps (checkpointed, resumable)")
    parser.add_argument("--time-budget", type=float, metavar="SECONDS",
                        help="stop in time to checkpoint, evaluate and write final/ within this many seconds")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    args = parser.parse_args(argv)
    if args.time_budget is not None and args.time_budget <= 0:
        parser.error(f"--time-budget must be positive, got {args.time_budget}")
    budget = TimeBudget.seconds_from_now(args.time_budget)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        cfg = make_config(args)
    except (ValueError, TypeError) as err:
        parser.error(str(err))
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    from model.train.loop import Trainer

    trainer = Trainer(cfg)
    final = trainer.run(args.steps, budget)
    if final is not None and trainer.accelerator.is_main_process:
        print(f"final model written to {final}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
