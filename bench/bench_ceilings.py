"""Where does a model lose quality? Ceilings of each stage, measured on one clip.

    python bench/bench_ceilings.py --model assets/models/s2vc-tiny --frames 8

Rows, each the mean over the clip's first `--frames` frames (PSNR-RGB in dB, ST-LPIPS AlexNet shift-tolerant,
latent MSE against the autoencoder encoder's latent of the input, bits per pixel of the entropy-model estimate):
- the autoencoder alone: its encoder's latent decoded by the model's decoder (the best any coded frame can look
  through that decoder), and, for TAEF2-based models, by TAEF2's own decoder (reference);
- every rate point coded through the buffers: the generator's x0 latents decoded by the model's decoder (what
  the codec delivers) and by TAEF2's decoder, with the latent error of the I-frame and of the P-frames apart, and
  the latent error that x0 would have without the U-Net's noise prediction (x0 = r / sqrt(abar), r the
  `vae_reduction` of the control feature; same buffers): close to the coded error, the U-Net contributes little.
If the latent error does not fall as the bits rise, the transforms, not the bits, limit the codec.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model import load_model
from model.codec import to_model_frames
from model.dpb import FRAME_I, DecodedPictureBuffer
from model.train.losses import STLPIPS
from model.video_io import read_video

BASKETBALL = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "BasketballPass_416x240_100f_png"


def _taef2_decoder(model, path: str | None):  # -> callable latent -> [-1, 1] pixels, or None with a reason
    """TAEF2's own decoder for a TAEF2-based model, or (None, why)."""
    if model.config.vae_type != "taesd" or model.config.latent_channels != 32:
        return None, "the model's autoencoder is not TAEF2"
    from model.errors import CheckpointError
    from model.taesd import load_taef2

    try:
        taef2 = load_taef2(path)
    except CheckpointError as err:
        return None, f"TAEF2 weights not found ({err}); pass --taef2 DIR"
    return (lambda z: taef2.decode(z) * 2 - 1), None


class Scores:
    """PSNR-RGB and ST-LPIPS of decoded frames ([-1, 1], padded) against the input, cropped to h x w."""

    def __init__(self, x: torch.Tensor, h: int, w: int):
        self.ref, self.h, self.w = x[..., :h, :w], h, w
        self.lpips = STLPIPS()

    def __call__(self, y: torch.Tensor) -> tuple[float, float]:
        y = y[..., : self.h, : self.w].clamp(-1, 1)
        y = torch.round((y + 1) * 127.5) / 127.5 - 1  # as delivered: uint8 pictures
        mse = ((y - self.ref) ** 2).flatten(1).mean(1)
        psnr = float((10 * torch.log10(4.0 / mse)).mean())
        return psnr, float(self.lpips(y, self.ref).mean())


def code_clip(model, x: torch.Tensor, rate: int) -> tuple[torch.Tensor, torch.Tensor, list[str], list[float]]:
    """The clip coded at `rate` through the buffers: x0 latents [T, C, h, w], the same frames' x0 without the
    U-Net's noise term (r / sqrt(abar); the buffers still get the real x0), frame types and estimated bits."""
    unet, without_eps = model.unet, []
    predict = unet.predict_x0

    def recording(eps: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        without_eps.append(predict(torch.zeros_like(eps), r))
        return predict(eps, r)

    unet.predict_x0 = recording  # an instance attribute shadows the method for this clip only
    try:
        dpb = DecodedPictureBuffer(model.config.reset_interval)
        outs = [model.code_frame(dpb, rate, x=x[t : t + 1]) for t in range(x.shape[0])]
    finally:
        del unet.predict_x0
    latents = torch.cat([o["latent"] for o in outs])
    return latents, torch.cat(without_eps), [o["frame_type"] for o in outs], [o["bits"] for o in outs]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model folder (default: the bundled model)")
    parser.add_argument("--clip", default=str(BASKETBALL))
    parser.add_argument("--fps", type=float, default=50.0)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--taef2", help="folder of the TAEF2 weights (default: the model package's lookup)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.frames < 2:
        parser.error("--frames must be at least 2 (an I-frame and a P-frame)")
    clip = Path(args.clip)
    if not clip.exists():
        parser.error(f"clip not found: {clip} (pass --clip)")
    frames, _ = read_video(clip, frames=args.frames, fps=args.fps)
    model = load_model(args.model).eval()
    h, w = frames.shape[1:3]
    x = to_model_frames(frames, model.config.pad_multiple)
    score = Scores(x, h, w)
    taef2_decode, why = _taef2_decoder(model, args.taef2)

    print(f"model {args.model or 'bundled'}, {clip.name}, first {len(frames)} frames ({w}x{h})")
    print(f"{'stage':<44} {'PSNR-RGB':>8} {'ST-LPIPS':>8} {'lat.MSE I':>9} {'lat.MSE P':>9} {'no U-Net':>9}"
          f" {'bpp':>7}")
    row = "{:<44} {:>8.2f} {:>8.3f} {:>9} {:>9} {:>9} {:>7}"
    with torch.no_grad():
        target = model.vae.encode(x)
        print(f"(latent variance of the input: {float(target.var()):.3f})")
        blank = ("-",) * 4
        print(row.format("autoencoder -> model decoder", *score(model.vae.decode(target)), *blank))
        if taef2_decode is None:
            print(f"autoencoder -> TAEF2 decoder: skipped, {why}")
        else:
            print(row.format("autoencoder -> TAEF2 decoder (reference)", *score(taef2_decode(target)), *blank))
        for r, name in enumerate(model.rate_names):
            latents, without_eps, types, bits = code_clip(model, x, r)
            err = ((latents - target) ** 2).flatten(1).mean(1)
            is_i = torch.tensor([t == FRAME_I for t in types])
            lat_i, lat_p = f"{float(err[is_i].mean()):.3f}", f"{float(err[~is_i].mean()):.3f}"
            no_unet = f"{float(((without_eps - target) ** 2).mean()):.3f}"
            bpp = f"{sum(bits) / len(bits) / (h * w):.4f}"
            errors = (lat_i, lat_p, no_unet, bpp)
            print(row.format(f"{name} coded -> model decoder", *score(model.vae.decode(latents)), *errors))
            if taef2_decode is not None:
                print(row.format(f"{name} coded -> TAEF2 decoder", *score(taef2_decode(latents)), *errors),
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
