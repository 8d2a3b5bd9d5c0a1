"""Codec speed: encode and decode frames/s, peak memory, and where the time goes.

    python bench/bench_codec.py                    # tiny preset on CPU, 416x240, 16 frames (+ official on CUDA)
    python bench/bench_codec.py --threads 2 --only cpu
    python bench/bench_codec.py --entropy-1080p --baseline 03340b0   # entropy coding at 1080p against a revision
    python bench/bench_codec.py --cpu-side --baseline 03340b0        # every CPU-side figure against a revision

CPU: the bundled default model (tiny preset; random tiny weights if it cannot load) on BasketballPass (first frames) when
../shared is present, else a synthetic clip. CUDA (when present): the official preset with random weights, built
directly on the GPU, at 1920x1080, I-frame under bf16 autocast and P-frames in fp32 as the release runs them.
Time split: entropy coding = every SymbolEncoder / SymbolDecoder call (wrapped and timed; on CUDA after a
synchronise, so waiting for the networks is not counted); VAE decode = S2VC.decode_picture; networks = the rest
(the codec networks, the one-step U-Net, the encoder's VAE encode, and the glue). Peak memory: max RSS of the process
(CPU), torch.cuda.max_memory_allocated (CUDA). One untimed warm-up frame runs first.
--entropy-1080p: the official preset's entropy coding of one 1920x1080 I-frame and P-frame on the CPU, networks
replaced by seeded random tensors (bench/entropy_1080p.py). --cpu-side: that, plus host waits per frame and the LoRA
adapter switch cost (bench/cpu_side.py). --baseline REV measures the code of revision REV in the same run (a
temporary `git archive` export) and prints each CPU-side figure against it (after the speed benchmarks, when run).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import resource
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import cpu_side, entropy_1080p
from bench.baseline_tree import baseline_tree
from bench.clips import BASKETBALL
from model import S2VC, entropy_coder, load_model, official, tiny
from model.video_io import read_video

CODER_METHODS = {
    entropy_coder.SymbolEncoder: ("encode_gaussian", "encode_gaussian_indexed", "encode_categorical", "encode_bits",
                                  "finish"),
    entropy_coder.SymbolDecoder: ("__init__", "decode_gaussian", "decode_gaussian_indexed", "decode_categorical",
                                  "decode_bits", "check_exhausted"),
}


@dataclass
class Timer:
    """Seconds spent inside wrapped calls, by category (nested calls of the same category count once)."""

    sync: Callable[[], None]
    seconds: dict[str, float] = field(default_factory=dict)
    depth: dict[str, int] = field(default_factory=dict)

    def wrap(self, category: str, fn: Callable) -> Callable:
        def timed(*args, **kwargs):
            if self.depth.get(category, 0):
                return fn(*args, **kwargs)
            self.sync()
            self.depth[category] = 1
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.sync()
                self.seconds[category] = self.seconds.get(category, 0.0) + time.perf_counter() - start
                self.depth[category] = 0

        return timed


@contextlib.contextmanager
def instrumented(timer: Timer) -> Iterator[None]:
    """Time the entropy coder and the VAE decode by wrapping them for the duration."""
    saved = []
    targets = [(cls, name, "entropy coding") for cls, names in CODER_METHODS.items() for name in names]
    targets.append((S2VC, "decode_picture", "VAE decode"))
    for owner, name, category in targets:
        original = owner.__dict__[name]
        saved.append((owner, name, original))
        setattr(owner, name, timer.wrap(category, original))
    try:
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def synthetic_clip(frames: int, height: int, width: int) -> np.ndarray:
    """A moving smooth pattern with noise, uint8 RGB [T, H, W, 3]."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    out = []
    for t in range(frames):
        base = np.stack([np.sin(x / 37 + 0.2 * t), np.cos(y / 23 - 0.2 * t), np.sin((x + y) / 51)], axis=-1)
        out.append(np.clip(127.5 + 100 * base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8))
    return np.stack(out)


def cpu_clip(frames: int) -> tuple[np.ndarray, str]:
    if BASKETBALL.is_dir():
        return read_video(BASKETBALL, frames=frames, fps=50)[0], f"BasketballPass 416x240, first {frames} frames"
    return synthetic_clip(frames, 240, 416), f"synthetic 416x240 clip, {frames} frames (BasketballPass not found)"


def peak_memory(device: str) -> str:
    if device == "cuda":
        return f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB (torch.cuda.max_memory_allocated)"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB (process max RSS)"


def run_pass(
    model: S2VC, frames: np.ndarray, rate: int, decode: bytes | None, sync
) -> tuple[float, float, Timer, bytes]:
    """Encode (decode=None) or decode; returns (wall seconds, process CPU seconds, timer, bitstream)."""
    timer = Timer(sync)
    with instrumented(timer):
        cpu = time.process_time()
        start = time.perf_counter()
        if decode is None:
            data = model.compress(frames, rate, 25.0)
        else:
            data = decode
            for _ in model.iter_decode(decode)[1]:
                pass
        sync()
        seconds = time.perf_counter() - start
    return seconds, time.process_time() - cpu, timer, data


def report(what: str, frames: int, seconds: float, cpu: float, timer: Timer, device: str) -> None:
    parts = {k: timer.seconds.get(k, 0.0) for k in ("entropy coding", "VAE decode")}
    parts = {"networks + glue": seconds - sum(parts.values()), **parts}
    split = ", ".join(f"{k} {v:.2f} s ({100 * v / seconds:.0f}%)" for k, v in parts.items())
    print(f"  {what}: {frames / seconds:.2f} frames/s ({seconds:.2f} s for {frames} frames, process CPU time "
          f"{cpu / frames:.2f} s per frame); {split}; peak memory {peak_memory(device)}")


def bench(model: S2VC, frames: np.ndarray, rate: int, device: str, trained: bool) -> None:
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    model.compress(frames[:1], rate, 25.0)  # warm-up: kernel selection, allocator, lazy initialisation
    for _ in model.iter_decode(model.compress(frames[:1], rate, 25.0))[1]:
        pass
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds, cpu, timer, data = run_pass(model, frames, rate, None, sync)
    report("encode", len(frames), seconds, cpu, timer, device)
    seconds, cpu, timer, _ = run_pass(model, frames, rate, data, sync)
    report("decode", len(frames), seconds, cpu, timer, device)
    t, h, w = frames.shape[:3]
    note = "" if trained else " (random weights: not a quality figure)"
    print(f"  stream: {len(data)} bytes, {8 * len(data) / (t * h * w):.4f} bpp{note}")


def bench_cpu(frames: int, rate: int) -> None:
    try:
        model, trained = load_model().eval(), True
        weights = f"model {os.environ['S2VC_CHECKPOINT']}" if os.environ.get("S2VC_CHECKPOINT") else \
            "bundled default model"
    except Exception as exc:  # noqa: BLE001 (the same architecture with random weights runs at the same speed)
        torch.manual_seed(0)
        model, weights, trained = S2VC(tiny()).eval(), f"random weights (bundled model not loaded: {exc})", False
    clip, source = cpu_clip(frames)
    print(f"{model.config.preset} preset, CPU, {torch.get_num_threads()} threads, rate {rate}, {weights}; {source}; "
          f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    bench(model, clip, rate, "cpu", trained)


def bench_cuda(frames: int) -> None:
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = S2VC(official()).eval()
    print(f"official preset, {torch.cuda.get_device_name()}, random weights, 1920x1080, {frames} frames, "
          "I-frame bf16 autocast, P-frames fp32")
    bench(model, synthetic_clip(frames, 1080, 1920), 0, "cuda", trained=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("cpu", "cuda"), help="run one of the two benchmarks")
    parser.add_argument("--frames", type=int, default=16, help="frames per clip (default 16)")
    parser.add_argument("--gpu-frames", type=int, default=8, help="1080p frames on CUDA (default 8)")
    parser.add_argument("--rate", type=int, default=1, help="tiny rate point (default 1)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--entropy-1080p", action="store_true",
                        help="only the entropy coding of official-preset 1080p frames (CPU)")
    parser.add_argument("--cpu-side", action="store_true",
                        help="only the CPU-side figures: host waits, adapter switching, 1080p entropy coding")
    parser.add_argument("--baseline", metavar="REV", help="also measure revision REV in the same run, for ratios")
    parser.add_argument("--repeats", type=int, default=3, help="--entropy-1080p: best of this many runs (default 3)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not (args.entropy_1080p or args.cpu_side):
        if args.only != "cuda":
            bench_cpu(args.frames, args.rate)
        if args.only != "cpu":
            if torch.cuda.is_available():
                bench_cuda(args.gpu_frames)
            else:
                print("official preset on CUDA: skipped (no CUDA device)")
        if not args.baseline:
            return
    with contextlib.ExitStack() as stack:
        baseline = stack.enter_context(baseline_tree(args.baseline)) if args.baseline else None
        if not args.entropy_1080p:
            old = cpu_side.measure(baseline[0]) if baseline else None
            cpu_side.report(cpu_side.measure(cpu_side.REPO), old, baseline[1] if baseline else None)
        entropy_1080p.run(baseline, args.repeats)


if __name__ == "__main__":
    main()
