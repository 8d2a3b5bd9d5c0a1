"""CPU-side costs of every coded frame for the model/ package of a checkout; prints one JSON line.

    python bench/cpu_side.py --root REPO     # bench_codec.py --cpu-side --baseline REV compares two trees

* host waits per frame (bench/host_waits.py): the tiny preset (seeded random weights) encoding and decoding a 3-frame
  64x96 clip (I, reset P, P frames), on the CPU; the same calls wait for the device on a GPU;
* adapter switching: the official U-Net (built on the meta device: no weights, peft's adapter walk is the same)
  selecting its LoRA adapter as `generate` does for each frame of a 12-frame clip (I + 11 P), ms per frame,
  best of 3.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
FRAME_TYPES = ["iframe"] + ["pframe"] * 11
KINDS = ("I", "reset P", "P")


def host_waits() -> dict[str, list[int]]:
    from host_waits import per_frame
    from model import S2VC, tiny

    torch.manual_seed(0)
    model = S2VC(tiny()).eval()
    frames = np.random.default_rng(0).integers(0, 256, (3, 64, 96, 3), dtype=np.uint8)
    data = model.compress(frames, 1, 25.0)  # also the warm-up (lazily built tables and caches)
    return {"encode": per_frame(S2VC, "_code_frame", lambda: model.compress(frames, 1, 25.0)),
            "decode": per_frame(S2VC, "_code_frame", lambda: model.decompress(data))}


def adapter_switch_ms() -> float:
    from model import official
    from model.generator import OneStepUNet

    with torch.device("meta"):
        unet = OneStepUNet(official())
    best = float("inf")
    for _ in range(3):
        unet.set_mode("pframe")
        start = time.perf_counter()
        for mode in FRAME_TYPES:
            unet.set_mode(mode)
        best = min(best, (time.perf_counter() - start) / len(FRAME_TYPES))
    return 1000 * best


def measure(root: Path) -> dict:
    """This script's figures for the model/ package at `root`, run in its own process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, __file__, "--root", str(root)], capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"cpu_side.py failed for {root}:\n{done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(new: dict, old: dict | None, name: str | None) -> None:
    """Host waits per frame type and the adapter switch cost, against the baseline's when given."""
    against = f" against {name}" if name else ""
    print(f"host waits per frame{against} (tiny preset, 64x96, frames {', '.join(KINDS)}; bench/host_waits.py):")
    for stage in ("encode", "decode"):
        counts = "/".join(str(c) for c in new["host waits"][stage])
        if old is None:
            print(f"  {stage}: {counts}")
            continue
        before = "/".join(str(c) for c in old["host waits"][stage])
        ratio = sum(old["host waits"][stage]) / max(1, sum(new["host waits"][stage]))
        print(f"  {stage}: {counts} against {before} ({ratio:.1f}x fewer)")
    ms = new["adapter switch ms"]
    line = f"adapter switching, official U-Net, 12-frame clip (I + 11 P): {ms:.2f} ms per frame"
    if old is not None:
        line += f" against {old['adapter switch ms']:.2f} ms ({old['adapter switch ms'] / ms:.1f}x)"
    print(line)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="repository checkout whose model/ is measured")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(args.root.resolve()))
    sys.path.insert(1, str(Path(__file__).resolve().parent))  # host_waits.py of this tree
    torch.set_num_threads(1)
    print(json.dumps({"host waits": host_waits(), "adapter switch ms": adapter_switch_ms()}))


if __name__ == "__main__":
    main()
