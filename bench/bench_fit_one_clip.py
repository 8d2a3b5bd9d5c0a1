"""Can a model's P side learn at all? Train it on ONE clip and watch its P-frames against copying their reference.

`python bench/bench_fit_one_clip.py --model runs/x/final --clip some_training_clip.mp4 --steps 100 --lr 3e-4`

Trains the `cascade` stage's parameters (as `python -m model.train` would: same Trainer, loss and lambdas; latent
loss only unless `--set` says otherwise) on the first `--frames` frames of one clip, the same crop every step, a
random rate point each step, and every `--every` steps prints, at the lowest and the highest rate point (eval
mode, rounding as in coding), the P-frames' mean latent MSE, the latent MSE of copying each P-frame's reference
(the previous x0) and their bpp. A P side that cannot get below the copy even on the one clip it trains on has a
broken gradient path; one that can, but does not on held-out clips after a real run, lacks data and steps rather
than a working gradient. The run's folder is a temporary one, removed at the end; the model is not changed.
Use a training clip, not an evaluation one.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.clips import HELD_OUT, read_clip
from model.train.config import LATENT_ONLY, TrainConfig, parse_overrides
from model.train.loop import Trainer, copy_latent_mse
from model.train.sources import ClipItem


def p_frame_figures(model, clip: torch.Tensor, rate: int) -> tuple[float, float, float]:
    """(mean latent MSE of the P-frames, of copying their references, their mean bpp) of `clip` at `rate`."""
    with torch.no_grad():
        outs = model.forward_frames(clip, rate, decode=False)
    p_frames = [o for o in outs if o["frame_type"] != "I"]
    mse = np.mean([float((o["latent_hat"] - o["latent"]).pow(2).mean()) for o in p_frames])
    pixels = clip.shape[-1] * clip.shape[-2]
    bpp = np.mean([float(o["bits"].sum()) / pixels for o in p_frames])
    return float(mse), float(copy_latent_mse(outs).mean()), float(bpp)


def fit(trainer: Trainer, clip: torch.Tensor, steps: int, every: int, rates: tuple[int, ...]) -> Iterator[dict]:
    """Train `steps` steps on `clip` [1,T,3,H,W]; yields the figures at `rates` at step 0 and every `every` steps."""
    model = trainer.model
    for step in range(steps + 1):
        if step:
            trainer.train_step(clip)
            trainer.state.step += 1
        if step % every == 0 or step == steps:
            model.eval()
            row = {"step": step}
            for rate in rates:
                row[rate] = p_frame_figures(model, clip, rate)
            trainer.set_modes()
            yield row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model folder (a save_pretrained folder)")
    parser.add_argument("--clip", default=str(HELD_OUT), help="a training clip (default: the held-out bikes clip)")
    parser.add_argument("--frames", type=int, default=6, help="frames of the clip (>= 3: a reset lands inside)")
    parser.add_argument("--crop", default="128x128", help="centred WxH window (multiples of 64)")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--every", type=int, default=25)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="TrainConfig overrides")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.frames < 3:
        parser.error("--frames must be at least 3 (I-frame, reset P-frame, P-frame)")
    if args.steps < 1 or args.every < 1:
        parser.error("--steps and --every must be positive")
    if not (Path(args.model) / "config.json").is_file():
        parser.error(f"--model {args.model}: no config.json there (a save_pretrained folder)")
    torch.set_num_threads(args.threads)
    frames = read_clip(parser, args.clip, args.frames, 25.0, args.crop)  # any rate: training ignores it
    if frames.shape[1] % 64 or frames.shape[2] % 64:
        parser.error(f"--crop {args.crop}: width and height must be multiples of 64")
    with tempfile.TemporaryDirectory(prefix="s2vc-fit-") as out_dir:
        base = dict(stage="cascade", init_from=args.model, out_dir=out_dir, num_frames=args.frames,
                    crop=frames.shape[1], cascade_reset_interval=args.frames - 2, batch_size=1, lr=args.lr,
                    warmup_steps=min(5, args.steps), max_steps=10**9, val_fraction=0.0, decode=False,
                    loss=LATENT_ONLY, eval_every=0, checkpoint_every=10**9)
        try:
            cfg = TrainConfig(**base).overridden(parse_overrides(args.set))
        except (TypeError, ValueError) as err:
            parser.error(str(err))
        trainer = Trainer(cfg, items=[ClipItem(Path(args.clip).name, frames, still=False)])
        clip = torch.from_numpy(frames).permute(0, 3, 1, 2).float()[None] / 127.5 - 1
        print(f"model {args.model}, {Path(args.clip).name}, {args.frames} frames {frames.shape[2]}x{frames.shape[1]},"
              f" lr {args.lr}; P-frames: latent MSE / copy of the reference / bpp")
        top = trainer.num_rates - 1
        names = trainer.model.rate_names
        print(f"{'step':>5}  {names[0]:^26}  {names[top]:^26}")
        for row in fit(trainer, clip, args.steps, args.every, (0, top)):
            cells = "  ".join("{:.3f} / {:.3f} / {:.4f}".format(*row[r]).center(26) for r in (0, top))
            print(f"{row['step']:>5}  {cells}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
