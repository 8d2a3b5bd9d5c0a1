"""Where does a model lose quality? Ceilings of each stage, measured on one clip.

    python bench/bench_ceilings.py --model assets/models/s2vc-tiny --frames 8

Rows, each the mean over the clip's first `--frames` frames (PSNR-RGB in dB, ST-LPIPS AlexNet shift-tolerant,
latent MSE against the autoencoder encoder's latent of the input, bits per pixel of the entropy-model estimate):
- the autoencoder alone: its encoder's latent decoded by the model's decoder (the best any coded frame can look
  through that decoder), and, for TAEF2-based models, by TAEF2's own decoder (reference);
- every rate point coded through the buffers: the generator's x0 latents decoded by the model's decoder (what
  the codec delivers) and, for a model with a decoder of its own, by TAEF2's decoder, with the latent error of
  the I-frame and of the P-frames apart, and the latent error that x0 would have without the U-Net's noise
  prediction (x0 = r / sqrt(abar), r the `vae_reduction` of the control feature; same buffers);
- per rate point, that x0 without the noise prediction decoded by the model's decoder ("no eps" rows): what the
  frames would look like if the one-step U-Net's output were dropped. Close to the coded row: the U-Net
  contributes little.
If the latent error does not fall as the bits rise, the transforms, not the bits, limit the codec.

`--optimise N` then splits the I-frame's latent error at the top rate point between the codec's parts, by gradient
descent (Adam, N steps) on the frame's own intermediate tensors with every network frozen:
- the best continuous y_hat for the I-frame decoder (same semantic map): what the synthesis side can reach;
- the best control feature f_pix for the one-step generator: what the U-Net and `vae_reduction` can reach.
The gap from the coded error to the first is the analysis side's (encoder and quantisation), from the first to
the second the I-frame decoder's, and the second is the generator's own.
The same split for the first P-frames (frame 1, a reset P-frame, and frame 2, a plain one; the frames before them
coded through the buffers at that rate), with the P-frame decoder's y_hat (same context) and the P generator's
f_pix (same tokens and TCG features), beside the latent error of copying the frame's reference (the previous x0):
a P-frame whose coded error is not well below the copy's does not turn its bits into fidelity.
Each split also refines the encoder's y for the real objective, rate and distortion (`rate + lambda * latent MSE`,
the training loss with `--lam`, default the training config's lambda of that rate point times its latent weight;
rounding straight-through, N Adam steps), and codes it: the latent MSE and bpp a better encoder could get from the
same decoder and entropy models ("refined y"). Refined frames far below the coded curve put the loss on the
encoder; refined P-frames that cost as much as an I-frame put it on the P decoder and its entropy models.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.clips import BASKETBALL, read_clip
from model import load_model
from model.codec import to_model_frames
from model.dpb import FRAME_I, DecodedPictureBuffer
from model.inter import RefState
from model.train.config import LATENT_ONLY, TrainConfig
from model.train.losses import STLPIPS


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


def descend(make_x0, start: torch.Tensor, target: torch.Tensor, steps: int, lr: float) -> float:
    """Lowest latent MSE of `make_x0(v)` against `target` seen in `steps` Adam steps on v (from `start`)."""
    v = start.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([v], lr=lr)
    best = float("inf")
    for _ in range(steps + 1):
        loss = ((make_x0(v) - target) ** 2).mean()
        best = min(best, loss.item())
        (v.grad,) = torch.autograd.grad(loss, [v])  # no gradients for the (frozen) networks' weights
        opt.step()
    return best


def refine_y(codec: torch.nn.Module, encoder: torch.nn.Module, generate, goal: torch.Tensor, pixels: int,
             lam: float, steps: int) -> tuple[float, float]:
    """(latent MSE, bpp) of a frame coded with the encoder's y refined for bits / pixels + lam * latent MSE.

    `codec` and its `encoder` ran last on the frame under `Recorded`; `generate(out)` turns the codec's output into
    the x0 latent. The encoder's first output (y) becomes a leaf tensor, trained with straight-through rounding,
    then coded as in eval mode."""
    was_training = codec.training

    def code() -> tuple[torch.Tensor, torch.Tensor]:
        out = codec(*codec.last_inputs)
        return generate(out), out["bits"]

    first = encoder.last_output
    rest = first[1:] if isinstance(first, tuple) else ()
    y = (first[0] if rest else first).detach().clone().requires_grad_(True)
    encoder.forward = lambda *args: (y, *rest) if rest else y  # an instance attribute shadows the method
    quant, codec.train_quant = codec.train_quant, "ste"
    try:
        opt = torch.optim.Adam([y], lr=0.05)
        codec.train()
        with torch.enable_grad():
            for _ in range(steps):
                latent, bits = code()
                loss = bits.sum() / pixels + lam * ((latent - goal) ** 2).mean()
                (y.grad,) = torch.autograd.grad(loss, [y])
                opt.step()
        codec.eval()
        with torch.no_grad():
            latent, bits = code()
    finally:
        del encoder.forward, encoder.last_inputs, encoder.last_output, codec.last_inputs, codec.last_output
        codec.train(was_training)
        codec.train_quant = quant
    return float(((latent - goal) ** 2).mean()), float(bits.sum()) / pixels


@contextlib.contextmanager
def decoder_inputs(codec: torch.nn.Module) -> Iterator[list]:
    """While in use, the list holds the arguments of the codec's latest `_outputs` call: its decoder's inputs."""
    seen: list = []
    outputs = codec._outputs

    def recording(*args: torch.Tensor) -> dict[str, torch.Tensor]:
        seen[:] = args
        return outputs(*args)

    codec._outputs = recording  # an instance attribute shadows the method
    try:
        yield seen
    finally:
        del codec._outputs


class Recorded:
    """Records a module's latest call in `module.last_inputs` (positional) and `module.last_output` while in use."""

    def __init__(self, module: torch.nn.Module):
        self.module = module

    def __enter__(self) -> torch.nn.Module:
        def record(module: torch.nn.Module, args: tuple, output: object) -> None:
            module.last_inputs, module.last_output = args, output

        self.handle = self.module.register_forward_hook(record)
        return self.module

    def __exit__(self, *exc: object) -> None:
        self.handle.remove()


def split_iframe_error(model, x: torch.Tensor, target: torch.Tensor, rate: int, steps: int,
                       lam: float) -> dict[str, float]:
    """The I-frame's latent MSE at `rate`: coded, with the best y_hat for its decoder, with the best f_pix for the
    generator, and (with its bpp) with y refined for the rate-distortion loss (see the module docstring)."""
    intra, unet = model.intra, model.unet
    with torch.no_grad(), decoder_inputs(intra) as seen, Recorded(intra), Recorded(intra.enc):
        out = intra(x, target, rate)
    y_hat, y_semantic = seen

    def generate(f_pix: torch.Tensor, tokens: torch.Tensor = out["tokens"]) -> torch.Tensor:
        return unet.generate(f_pix, tokens, "iframe")[0]

    with torch.no_grad():
        coded = float(((generate(out["f_pix"]) - target) ** 2).mean())
    with torch.enable_grad():
        best_y = descend(lambda y: generate(intra.dec(y, y_semantic)), y_hat, target, steps, 0.1)
        best_f = descend(generate, out["f_pix"], target, steps, 0.05)
    pixels = x.shape[-1] * x.shape[-2]
    refined, bpp = refine_y(intra, intra.enc, lambda o: generate(o["f_pix"], o["tokens"]), target, pixels, lam,
                            steps)
    return {"coded": coded, "best y_hat": best_y, "best f_pix": best_f, "refined y": refined, "refined bpp": bpp}


def split_pframe_error(model, x: torch.Tensor, target: torch.Tensor, rate: int, steps: int,
                       lam: float) -> dict[str, float]:
    """The last frame of `x` coded as a P-frame at `rate` after the others (through the buffers): its latent MSE
    when its reference x0 is copied, coded, with the best y_hat for the P decoder (same context), with the best
    f_pix for the P generator (same tokens and TCG features), and (with its bpp) with y refined for the
    rate-distortion loss."""
    inter, unet, last = model.inter, model.unet, x.shape[0] - 1
    dpb = DecodedPictureBuffer(model.config.reset_interval)
    with torch.no_grad():
        for t in range(last):
            model.code_frame(dpb, rate, x=x[t : t + 1])
    goal = target[last:]
    copy = float(((dpb.ref_latent - goal) ** 2).mean())
    reference = RefState(ref_latent=dpb.ref_latent)
    feats_in = [f.float() for f in dpb.ref_unet_features]
    with torch.no_grad(), decoder_inputs(inter) as seen, Recorded(inter), Recorded(inter.encoder):
        out = model.code_frame(dpb, rate, x=x[last:])
    y_hat, ctx = seen
    coded = float(((out["latent"] - goal) ** 2).mean())
    with torch.no_grad():
        fixed = inter._outputs(y_hat, ctx)

    def x0(o: dict[str, torch.Tensor]) -> torch.Tensor:
        return inter.add_reference(unet.generate(o["f_pix"], o["tokens"], "pframe", feats_in)[0], reference)

    def from_f(f_pix: torch.Tensor) -> torch.Tensor:
        return x0({"f_pix": f_pix, "tokens": fixed["tokens"]})

    with torch.enable_grad():
        best_y = descend(lambda y: x0(inter._outputs(y, ctx)), y_hat, goal, steps, 0.1)
        best_f = descend(from_f, fixed["f_pix"], goal, steps, 0.05)
    refined, bpp = refine_y(inter, inter.encoder, x0, goal, x.shape[-1] * x.shape[-2], lam, steps)
    return {"copy of its reference": copy, "coded": coded, "best y_hat": best_y, "best f_pix": best_f,
            "refined y": refined, "refined bpp": bpp}


def default_lambda(rate: int, rates: int) -> float | None:
    """The training config's weight on latent MSE at `rate` (lambda times the latent-only loss's latent weight),
    or None when its lambdas do not fit the model's rate points."""
    lambdas = TrainConfig().lambdas
    return lambdas[rate] * LATENT_ONLY.latent_weight if len(lambdas) == rates else None


def figures(split: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4f}" if k.endswith("bpp") else f"{k} {v:.3f}" for k, v in split.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model folder (default: the bundled model)")
    parser.add_argument("--clip", default=str(BASKETBALL))
    parser.add_argument("--fps", type=float, default=50.0)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--taef2", help="folder of the TAEF2 weights (default: the model package's lookup)")
    parser.add_argument("--optimise", type=int, default=0, metavar="N",
                        help="also split the latent error of the I-frame and the first two P-frames at the top "
                             "rate point (N Adam steps; ~300)")
    parser.add_argument("--lam", type=float, default=None,
                        help="--optimise: the refined y's lambda on latent MSE (default: the training config's "
                             "lambda of the top rate point times its latent weight)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.optimise < 0:
        parser.error("--optimise takes a number of steps >= 0")
    frames = read_clip(parser, args.clip, args.frames, args.fps)
    model = load_model(args.model).eval()
    h, w = frames.shape[1:3]
    x = to_model_frames(frames, model.config.pad_multiple)
    score = Scores(x, h, w)
    taef2_decode, why = _taef2_decoder(model, args.taef2)

    print(f"model {args.model or 'bundled'}, {Path(args.clip).name}, first {len(frames)} frames ({w}x{h})")
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
        elif not model.vae.model.has_taef2_decoder:
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
            print(row.format(f"{name} no eps -> model decoder", *score(model.vae.decode(without_eps)), *errors))
            if taef2_decode is not None and not model.vae.model.has_taef2_decoder:
                print(row.format(f"{name} coded -> TAEF2 decoder", *score(taef2_decode(latents)), *errors),
                      flush=True)
    if args.optimise:
        top = len(model.rate_names) - 1
        lam = args.lam if args.lam is not None else default_lambda(top, len(model.rate_names))
        if lam is None:
            parser.error(f"the training config's lambdas do not fit this model's {top + 1} rate points: pass --lam")
        split = split_iframe_error(model, x[:1], target[:1], top, args.optimise, lam)
        print(f"I-frame at {model.rate_names[top]}, latent MSE ({args.optimise} Adam steps, networks frozen): "
              + figures(split))
        for last in (1, 2)[: x.shape[0] - 1]:
            split = split_pframe_error(model, x[: last + 1], target[: last + 1], top, args.optimise, lam)
            print(f"frame {last} (P) at {model.rate_names[top]}, latent MSE: "
                  + figures(split), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
