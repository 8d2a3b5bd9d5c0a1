"""Entropy coding of official-preset 1080p frames, this tree against a baseline revision, in one run.

Each tree is measured by `bench/entropy_frames.py` in its own process (the two `model` packages cannot share one),
the baseline first. Printed per frame type: encode and decode ms split into distributions and coder, the stream
sizes, whether both decoded the same latents; then the headline line (code + decode, I and P frames averaged).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FRAMES = Path(__file__).resolve().parent / "entropy_frames.py"
REPO = FRAMES.parents[1]


def measure(root: Path, repeats: int) -> dict:
    """entropy_frames.py's figures for the model/ package at `root` (seconds, per frame type)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(FRAMES), "--root", str(root), "--repeats", str(repeats)],
                          capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"entropy_frames.py failed for {root}:\n{done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def frame_ms(figures: dict) -> float:
    """Code + decode ms per frame, I and P frames averaged."""
    return 1000 * sum(f["encode"] + f["decode"] for f in figures.values()) / len(figures)


def describe(f: dict, stage: str) -> str:
    total, coder = 1000 * f[stage], 1000 * f[f"{stage} coder"]
    return f"{total:7.0f} ms (distributions {total - coder:5.0f}, coder {coder:5.0f})"


def report(new: dict, old: dict | None, name: str | None, repeats: int) -> None:
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"entropy coding, official entropy shapes at 1920x1080 (networks replaced by seeded random tensors), "
          f"1 thread, best of {repeats}; " + (f"this tree against {name}; " if name else "") + f"load average {load}")
    for kind, f in new.items():
        for stage in ("encode", "decode"):
            line = f"  {kind}-frame {stage}: {describe(f, stage)}"
            if old is not None:
                o = old[kind]
                line += f" against {describe(o, stage)}: {o[stage] / f[stage]:.2f}x"
            print(line)
        sizes = f"  {kind}-frame stream: {f['bytes']} bytes"
        if old is not None:
            same = "the same" if f["latents"] == old[kind]["latents"] else "DIFFERENT"
            sizes += f" against {old[kind]['bytes']} bytes; decoded latents {same} as the baseline's"
        print(sizes)
    if old is None:
        print(f"entropy coding 1080p: {frame_ms(new):.0f} ms per frame")
    else:
        print(f"entropy coding 1080p: {frame_ms(new):.0f} ms per frame against {frame_ms(old):.0f} ms "
              f"({frame_ms(old) / frame_ms(new):.2f}x)")


def run(baseline: tuple[Path, str] | None, repeats: int) -> None:
    """Measure the baseline tree (if any), then this one, and print the comparison."""
    old = measure(baseline[0], repeats) if baseline else None
    new = measure(REPO, repeats)
    report(new, old, baseline[1] if baseline else None, repeats)
