"""Does a model code a region as well inside a large frame as on its own? (Training crop size vs coding size.)

    python bench/bench_crop_size.py --model assets/models/s2vc-tiny --rate 1 --frames 4

Takes BasketballPass's bottom-right 128x128 region (first `--frames` frames) and codes it (a) on its own,
(b) as a 2x2 tiling of itself (same content, larger frame), (c) inside bottom-right crops of growing size up to
the whole 416x240 frame. Prints ST-LPIPS (AlexNet, shift-tolerant) of that region per frame (frame 0 is the
I-frame) and the mean over the P-frames. A size-invariant codec gives the same figures in every row.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.clips import BASKETBALL, read_clip
from model import load_model
from model.train.data import to_tensor
from model.train.losses import STLPIPS

REGION = 128
SIZES = ((128, 256), (240, 128), (240, 256), (240, 416))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model folder (default: the bundled model)")
    parser.add_argument("--clip", default=str(BASKETBALL))
    parser.add_argument("--fps", type=float, default=50.0)
    parser.add_argument("--rate", type=int, default=1)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    frames = read_clip(parser, args.clip, args.frames, args.fps)
    h, w = frames.shape[1:3]
    if h < REGION or w < REGION:
        parser.error(f"the clip is {w}x{h}; it needs at least {REGION}x{REGION}")
    model = load_model(args.model).eval()
    if not 0 <= args.rate < len(model.rate_names):
        parser.error(f"--rate must be 0..{len(model.rate_names) - 1} (rate points {model.rate_names})")
    lpips = STLPIPS()
    region = frames[:, h - REGION :, w - REGION :]

    cases = [(f"region alone ({REGION}x{REGION})", region),
             (f"2x2 tiling of the region ({2 * REGION}x{2 * REGION})", np.tile(region, (1, 2, 2, 1)))]
    cases += [(f"bottom-right {cw}x{ch} crop (WxH)", frames[:, h - ch :, w - cw :])
              for ch, cw in SIZES if ch <= h and cw <= w]
    print(f"model {args.model or 'bundled'}, rate {model.rate_names[args.rate]}, {clip.name}, "
          f"first {args.frames} frames; ST-LPIPS (Alex, shift-tolerant) of the bottom-right {REGION}x{REGION} region")
    for name, content in cases:
        rec, _ = model.reconstruct(np.ascontiguousarray(content), args.rate)
        with torch.no_grad():
            scores = lpips(to_tensor(rec[:, -REGION:, -REGION:]), to_tensor(region)).numpy()
        frame_cols = " ".join(f"{s:.3f}" for s in scores)
        print(f"{name:>32}: P-frames {scores[1:].mean():.3f}   per frame {frame_cols}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
