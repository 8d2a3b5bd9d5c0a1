"""Training throughput: steps/s and crops/s of a training preset at several batch sizes, with each efficiency
option against the preset as it is, all measured in the same run.

    python bench/bench_train.py --preset tiny-gpu-intra --batch 16,128,512            # on a GPU
    python bench/bench_train.py --preset tiny-gpu-cascade --batch 8,32 --variants base,channels_last,compile
    python bench/bench_train.py --preset tiny-cpu-intra --batch 1,2 --steps 3 --variants base,for-loop,channels_last

Every (batch, variant) builds the preset's Trainer from `--init-from` (default: the bundled model) in a temporary
folder, runs `--warmup` untimed steps (compilation, allocator and cuDNN warm-up), then `--steps` timed steps
(synchronised on CUDA). A crop is one `crop`x`crop` frame: crops/s = batch x frames per clip x steps/s. The ratio
is crops/s against the `base` variant at the same batch; peak memory is torch.cuda.max_memory_allocated on CUDA,
the process's peak RSS on a CPU.
"""
from __future__ import annotations

import argparse
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.loading import DEFAULT_MODEL_DIR
from model.train.config import COMPILABLE, TrainConfig, parse_overrides, preset
from model.train.loop import Trainer

VARIANTS = {
    "base": {},
    "fp32": {"mixed_precision": "no"},
    "fused": {"optimizer_kernel": "fused"},
    "foreach": {"optimizer_kernel": "foreach"},
    "for-loop": {"optimizer_kernel": "for-loop"},
    "channels_last": {"channels_last": True},
    "compile": {"compile_modules": ["unet"]},
    "compile-all": {"compile_modules": list(COMPILABLE)},
}


def peak_memory_mib(cuda: bool) -> float:
    if cuda:
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(cfg: TrainConfig, warmup: int, steps: int) -> tuple[float, float]:
    """(steps/s over the timed steps, peak memory in MiB) of one configuration."""
    cuda = torch.cuda.is_available()
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer = Trainer(cfg)
    batches = iter(trainer.make_loader())
    for _ in range(warmup):
        trainer.train_step(next(batches))
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(next(batches))
    sync()
    return steps / (time.perf_counter() - start), peak_memory_mib(cuda)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny-gpu-intra")
    parser.add_argument("--batch", default="16,128,512", help="comma-separated batch sizes")
    parser.add_argument("--variants", default="base,fused,foreach,channels_last",
                        help=f"comma-separated, 'base' first; among {', '.join(VARIANTS)}")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--init-from", default=str(DEFAULT_MODEL_DIR))
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides for all")
    args = parser.parse_args(argv)
    variants = args.variants.split(",")
    if variants[0] != "base" or set(variants) - set(VARIANTS):
        parser.error(f"--variants must start with base and name only {', '.join(VARIANTS)}")
    try:
        batches = [int(b) for b in args.batch.split(",")]
        base = preset(args.preset).overridden({**parse_overrides(args.set), "init_from": args.init_from})
    except ValueError as err:
        parser.error(str(err))
    logging.basicConfig(level=logging.WARNING)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"{args.preset} on {device}: {base.crop}px crops, {base.num_frames} frame(s) a clip, "
          f"{args.warmup} warm-up + {args.steps} timed steps each")
    print(f"{'batch':>6} {'variant':14s} {'steps/s':>9} {'crops/s':>10} {'vs base':>8} {'peak MiB':>9}")
    for batch in batches:
        reference = None
        for name in variants:
            with tempfile.TemporaryDirectory() as tmp:
                cfg = base.overridden({**VARIANTS[name], "batch_size": batch, "out_dir": tmp})
                rate, memory = measure(cfg, args.warmup, args.steps)
            crops = rate * batch * cfg.num_frames
            reference = reference or crops
            print(f"{batch:6d} {name:14s} {rate:9.3f} {crops:10.1f} {crops / reference:8.2f} {memory:9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
