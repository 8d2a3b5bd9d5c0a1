"""Speed of the TAEF2 decoder (the tiny preset's decoder) on this CPU: 1 and 2 threads, 416x240 and 640x360.

    python bench/bench_taef2.py [--repeats 5] [--taef2 DIR]

For each setting: milliseconds per frame (best of ``--repeats``) as the model runs it (channels_last on a CPU,
`model.taesd.ChannelsLastOnCPU`) against the default contiguous layout measured in the same run, their ratio and the
largest difference of the outputs. Also the TAEF2 encoder at the same sizes. Weights: $S2VC_TAEF2_DIR or ../shared
(random weights with --random, same speed). Asserts nothing.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from model.taesd import TinyAutoencoder, load_taef2  # noqa: E402

SIZES = ((416, 240), (640, 360))


def best_ms(run, x: torch.Tensor, repeats: int) -> tuple[float, torch.Tensor]:
    with torch.inference_mode():
        out = run(x)  # warm-up (oneDNN picks its kernels)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            out = run(x)
            times.append(time.perf_counter() - start)
    return 1000 * min(times), out


def compare(name: str, module: nn.Sequential, x: torch.Tensor, repeats: int) -> str:
    shipped, a = best_ms(module, x, repeats)
    baseline, b = best_ms(lambda t: nn.Sequential.forward(module, t), x, repeats)
    return (f"{name}: {shipped:7.0f} ms per frame against {baseline:7.0f} ms contiguous ({baseline / shipped:.2f}x), "
            f"max difference {(a - b).abs().max().item():.1e}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--taef2", default=None, help="TAEF2 weights folder (default $S2VC_TAEF2_DIR or ../shared)")
    parser.add_argument("--random", action="store_true", help="random weights (no TAEF2 files needed)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model = TinyAutoencoder(32, 64, 3).eval() if args.random else load_taef2(args.taef2)
    print(f"torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}, "
          f"{'random' if args.random else 'TAEF2'} weights")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for w, h in SIZES:
            z = torch.randn(1, 32, h // 8, w // 8)
            image = torch.rand(1, 3, h, w)
            print(f"{threads} thread(s) {w}x{h}  " + compare("decoder", model.decoder, z, args.repeats))
            print(f"{threads} thread(s) {w}x{h}  " + compare("encoder", model.encoder, image, args.repeats))


if __name__ == "__main__":
    main()
