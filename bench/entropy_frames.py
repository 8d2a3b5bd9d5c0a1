"""Entropy coding of one official-preset 1920x1080 I-frame and P-frame, networks left out; prints one JSON line.

    python bench/entropy_frames.py --root REPO [--repeats 3]

Runs the I- and P-frame codecs' own `compress` / `decompress` of the code at REPO (today's tree or a baseline
checkout: only their public methods and the method names `_prior_context`, `_step_params`, `_context`, `_params`,
`_outputs` are used), with every network replaced by seeded random tensors of the official entropy shapes: y 128 x
68 x 120 (I- and P-frame), the FSQ indices 17 x 30 (14 bits each) and the P-frame hyper-latent z 64 x 17 x 30. The
I-frame's y holds a few symbols far beyond [-128, 127] (the escape path). Time split: "coder" = inside every public
SymbolEncoder / SymbolDecoder method (construction included; nested calls count once), "distributions" = the rest
of compress / decompress (scale indices, symbol gathering, the rate estimates). Best of `repeats` after one warm-up; single-threaded.
"latents" is a hash of the decoded y_hat: equal across checkouts when both decode the same latents.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import torch
from torch import nn

HEIGHT, WIDTH = 1088, 1920  # 1080p padded to a multiple of 64
ESCAPES = 64  # I-frame symbols pushed beyond the coder's support


class Fixed(nn.Module):
    """A stand-in network: returns the same precomputed output(s) whatever its input (`weight` tells the device)."""

    def __init__(self, *outputs: torch.Tensor):
        super().__init__()
        self.outputs = outputs
        self.register_buffer("weight", torch.zeros(1))

    def forward(self, *args, **kwargs):
        return self.outputs if len(self.outputs) > 1 else self.outputs[0]


def log_uniform(generator: torch.Generator, shape: tuple[int, ...], low: float, high: float) -> torch.Tensor:
    return torch.exp(torch.empty(shape).uniform_(math.log(low), math.log(high), generator=generator))


def small_official(official):
    """The official config with the entropy widths kept and every other network narrowed (built in seconds)."""
    return official().replace(
        intra_unet_channels=(32, 32, 32), intra_pix_channels=8, semantic_channels=32, inter_channels=16,
        norm_groups=8, intra_unet_attention_head_dim=1,
    )


def intra_codec(model, generator: torch.Generator):
    """IntraCodec with official entropy shapes; (codec, x, cond, y) with the networks replaced."""
    config = small_official(model.config.official)
    codec = model.intra.IntraCodec(config).eval()
    n, h16, w16 = config.intra_y_channels, HEIGHT // 16, WIDTH // 16
    scales = [log_uniform(generator, (1, n, h16, w16), 0.08, 40.0) for _ in range(4)]
    means = [torch.randn(1, n, h16, w16, generator=generator) for _ in range(4)]
    y = means[0] + torch.randn(1, n, h16, w16, generator=generator) * scales[0]
    far = torch.randperm(y.numel(), generator=generator)[:ESCAPES]
    y.view(-1)[far] = torch.randint(200, 70000, (ESCAPES,), generator=generator).float() * torch.sign(
        torch.randn(ESCAPES, generator=generator))
    z = torch.randn(1, len(config.fsq_levels), HEIGHT // 64, WIDTH // 64, generator=generator)
    codec.enc = Fixed(y, torch.zeros(1))
    codec.hyper_enc = Fixed(z)
    params = torch.zeros(1, 2 * n, h16, w16)
    codec._prior_context = lambda z_hat: (params, params[:, :n], torch.zeros(1, config.semantic_channels, 1, 1))
    codec._step_params = lambda step, params, common, y_hat: (scales[step], means[step])
    codec._outputs = lambda y_hat, y_semantic: {"y_hat": y_hat}
    x = torch.zeros(1, 3, HEIGHT, WIDTH)
    cond = torch.zeros(1, config.latent_channels, HEIGHT // 8, WIDTH // 8)
    return codec, x, cond


def inter_codec(model, generator: torch.Generator):
    """InterCodec with official entropy shapes; (codec, x, ref) with the networks replaced."""
    config = small_official(model.config.official)
    codec = model.inter.InterCodec(config).eval()
    y_ch, z_ch, h16, w16 = config.inter_y_channels, config.inter_z_channels, HEIGHT // 16, WIDTH // 16
    scales = [log_uniform(generator, (1, y_ch, h16, w16), 0.08, 12.0) for _ in range(2)]
    means = [torch.randn(1, y_ch, h16, w16, generator=generator) for _ in range(2)]
    y = means[0] + torch.randn(1, y_ch, h16, w16, generator=generator) * scales[0]
    z = torch.randn(1, z_ch, HEIGHT // 64, WIDTH // 64, generator=generator) * 3
    ctx = torch.zeros(1, 1, 1, 1)
    codec._context = lambda ref, batch, hp, wp: (ctx, ctx)
    codec.pix_emb = Fixed(torch.zeros(1))
    codec.encoder = Fixed(y)
    codec.hyper_encoder = Fixed(z)
    params = torch.cat([torch.ones(1, y_ch, h16, w16), scales[0], means[0]], dim=1)
    codec._params = lambda z_hat, ctx_t: params
    codec._step_params = lambda step, params, y_hat0: (scales[step], means[step])
    codec._outputs = lambda y_hat, ctx: {"y_hat": y_hat}
    x = torch.zeros(1, 3, HEIGHT, WIDTH)
    return codec, x, model.inter.RefState(ref_latent=torch.zeros(1), is_reset=True)


class CoderClock:
    """Seconds spent inside the public methods of the coder classes (patched for the duration of `measure`)."""

    def __init__(self, classes: tuple[type, ...]):
        self.seconds = 0.0
        self.depth = 0
        self.saved = []
        for cls in classes:
            for name, fn in list(vars(cls).items()):
                if callable(fn) and (name == "__init__" or not name.startswith("_")):
                    self.saved.append((cls, name, fn))

    def __enter__(self) -> "CoderClock":
        for cls, name, fn in self.saved:
            setattr(cls, name, self._timed(fn))
        return self

    def __exit__(self, *exc) -> None:
        for cls, name, fn in self.saved:
            setattr(cls, name, fn)

    def _timed(self, fn):
        def timed(*args, **kwargs):
            if self.depth:  # a public method calling another (finish -> finish_fetching) counts once
                return fn(*args, **kwargs)
            self.depth += 1
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.depth -= 1

        return timed


def measure(coder, run) -> tuple[float, float, object]:
    """(total seconds, coder seconds, result) of one call."""
    with CoderClock((coder.SymbolEncoder, coder.SymbolDecoder)) as clock:
        start = time.perf_counter()
        result = run()
        total = time.perf_counter() - start
    return total, clock.seconds, result


def frame_times(coder, compress, decompress, check) -> dict[str, float]:
    """One encode (compress + finish) and one decode; the decoded y_hat must equal the encoder's."""
    def encode():
        enc = coder.SymbolEncoder()
        sent = compress(enc)
        return sent, enc.finish()

    enc_total, enc_coder, (sent, data) = measure(coder, encode)

    def decode():
        dec = coder.SymbolDecoder(data)
        got = decompress(dec)
        dec.check_exhausted()
        return got

    dec_total, dec_coder, got = measure(coder, decode)
    check(sent, got)
    latents = got["y_hat"].float().contiguous().numpy().tobytes()
    return {"encode": enc_total, "encode coder": enc_coder, "decode": dec_total, "decode coder": dec_coder,
            "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()[:16],
            "latents": hashlib.sha256(latents).hexdigest()[:16]}


def run(root: Path, repeats: int) -> dict:
    sys.path.insert(0, str(root))
    import model.config  # noqa: F401 (the checkout at root)
    import model.entropy_coder as coder
    import model.inter
    import model.intra

    torch.set_num_threads(1)
    torch.manual_seed(25)  # the codecs' own initial weights (the z density)
    generator = torch.Generator().manual_seed(25)
    intra, x_i, cond = intra_codec(model, generator)
    inter, x_p, ref = inter_codec(model, generator)

    def same(sent, got):
        if not torch.equal(sent["y_hat"], got["y_hat"]):
            raise SystemExit("decoded y_hat differs from the encoder's")

    frames = {
        "I": lambda: frame_times(coder, lambda enc: intra.compress(x_i, cond, 0, enc),
                                 lambda dec: intra.decompress(dec, HEIGHT, WIDTH, 0), same),
        "P": lambda: frame_times(coder, lambda enc: inter.compress(x_p, ref, 0, enc),
                                 lambda dec: inter.decompress(dec, ref, HEIGHT, WIDTH, 0), same),
    }
    out = {}
    with torch.inference_mode():
        for kind, timed in frames.items():
            timed()  # warm-up: lazily built tables, allocator
            runs = [timed() for _ in range(repeats)]
            best = min(runs, key=lambda r: r["encode"] + r["decode"])
            out[kind] = best
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="repository checkout whose model/ is timed")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.root.resolve(), args.repeats)))


if __name__ == "__main__":
    main()
