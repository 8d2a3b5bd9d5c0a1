"""The floor (issue #23 item 5): PCA, closed-loop quantiser and histogram rate on synthetic latents, and the
bench_floor command line on a tiny clip (a seeded small TAEF-shaped autoencoder; TAEF2 itself when present)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from comparisons.naive_latent import (
    ChannelPCA, closed_loop_decode, closed_loop_encode, code_latents, decode_frames, encode_frames, ideal_bits,
    pad_to_multiple, quantise)
from model.taesd import ENCODER_FILE, TinyAutoencoder, taef2_dir
from model.video_io import write_png_folder
from tests.test_bench_quality import bench
from tests.test_codec import clip


def latents(frames: int = 4, channels: int = 6, h: int = 5, w: int = 7) -> torch.Tensor:
    """Correlated channels drifting slowly over time, like a still-ish clip's latents."""
    g = torch.Generator().manual_seed(0)
    mix = torch.randn(channels, channels, generator=g)
    base = torch.randn(1, channels, h, w, generator=g)
    drift = 0.2 * torch.randn(frames, channels, h, w, generator=g).cumsum(0)
    return torch.einsum("dc,tchw->tdhw", mix, base + drift) + 0.5


def test_pca_is_an_orthonormal_rotation_sorted_by_variance() -> None:
    z = latents()
    pca = ChannelPCA.fit(z)
    assert pca.basis.shape == (6, 6) and pca.mean.shape == (6,)
    assert torch.allclose(pca.basis.T @ pca.basis, torch.eye(6, dtype=torch.float64), atol=1e-10)
    coefficients = pca.forward(z)
    assert coefficients.shape == z.shape and coefficients.dtype == torch.float64
    assert torch.allclose(pca.inverse(coefficients), z, atol=1e-5)
    per_component = coefficients.transpose(0, 1).reshape(6, -1).var(1, unbiased=False)
    assert torch.allclose(per_component, pca.variance, rtol=1e-6, atol=1e-9)
    assert torch.all(pca.variance[:-1] >= pca.variance[1:])
    assert torch.allclose(coefficients.mean((0, 2, 3)), torch.zeros(6, dtype=torch.float64), atol=1e-9)
    with pytest.raises(ValueError, match=r"\[T, C, h, w\]"):
        ChannelPCA.fit(z[0])


def test_quantiser_rounds_to_the_nearest_step() -> None:
    x = torch.tensor([-1.3, -0.2, 0.0, 0.74, 0.76, 2.9])
    assert quantise(x, 0.5).tolist() == [-3, 0, 0, 1, 2, 6]
    assert quantise(x, 2.0).tolist() == [-1, 0, 0, 0, 0, 1]
    with pytest.raises(ValueError, match="positive"):
        quantise(x, 0.0)


@pytest.mark.parametrize("step", [0.5, 1.0, 3.0])
def test_closed_loop_decode_equals_the_encoders_reconstruction(step: float) -> None:
    coefficients = ChannelPCA.fit(latents()).forward(latents())
    symbols, recon = closed_loop_encode(coefficients, step)
    assert symbols.shape == coefficients.shape and symbols.dtype == torch.long
    assert torch.equal(closed_loop_decode(symbols, step), recon)
    # closed loop: the error never accumulates beyond half a step, whatever the frame
    assert (recon - coefficients).abs().max() <= step / 2 + 1e-12
    assert torch.equal(symbols[0], quantise(coefficients[0], step))  # frame 0 is intra
    assert torch.equal(symbols[2], quantise(coefficients[2] - recon[1], step))  # residual on the reconstruction


def test_ideal_bits_are_the_static_histograms_code_length() -> None:
    symbols = torch.zeros(3, 2, 2, 2, dtype=torch.long)
    assert ideal_bits(symbols).tolist() == [0.0, 0.0, 0.0]  # one value per histogram: nothing to send
    symbols[1:, 0, 0] = 1  # P histogram of component 0: 8 symbols, 4 ones and 4 zeros -> 1 bit each
    assert np.allclose(ideal_bits(symbols), [0.0, 4.0, 4.0])
    symbols[0, 1, 0, 0] = 5  # I histogram of component 1: 1 of 4 is 5 -> 2 + 3 * log2(4/3)
    assert np.allclose(ideal_bits(symbols), [2 + 3 * np.log2(4 / 3), 4.0, 4.0])


def test_rate_falls_and_latent_error_grows_as_the_step_grows() -> None:
    z = latents(frames=6)
    points = code_latents(z, [0.25, 0.5, 1.0, 2.0, 4.0])
    rates = [p.bits.sum() for p in points]
    errors = [float(((p.latents - z) ** 2).mean()) for p in points]
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert all(a < b for a, b in zip(errors, errors[1:]))
    assert all(p.bits.shape == (6,) and p.latents.shape == z.shape and p.latents.dtype == torch.float32
               for p in points)
    assert points[0].bits[0] > points[0].bits[1:].mean()  # the intra frame costs more than a residual frame


def small_autoencoder() -> TinyAutoencoder:
    torch.manual_seed(0)
    return TinyAutoencoder(32, 8, 1, decoder_widths=(8, 8, 8, 8), decoder_blocks=(1, 1, 1, 1)).eval()


def test_frames_round_trip_through_the_autoencoder_with_padding() -> None:
    frames = clip(3, 44, 52)
    assert pad_to_multiple(frames).shape == (3, 48, 56, 3)
    assert np.array_equal(pad_to_multiple(frames)[:, 43, :52], frames[:, 43])
    even = clip(1, 40, 48)
    assert pad_to_multiple(even) is even
    ae = small_autoencoder()
    z = encode_frames(ae, frames, batch=2)
    assert z.shape == (3, 32, 6, 7)
    out = decode_frames(ae, z, 44, 52, batch=2)
    assert out.shape == frames.shape and out.dtype == np.uint8


@pytest.fixture
def png_clip(tmp_path: Path) -> Path:
    folder = tmp_path / "frames"
    write_png_folder(folder, clip(3, 48, 64))
    return folder


def table(out: str) -> dict[str, list[float]]:
    """Rows of the printed table: the numeric cells (bpp ... naive ST-LPIPS; "-" as nan), then the verdict."""
    rows = {}
    for line in out.splitlines():
        if line.startswith("| ") and not line.startswith("| what"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = [float("nan") if c == "-" else float(c) for c in cells[1:-1]] + [cells[-1]]
    return rows


@pytest.mark.parametrize("weights", ["seeded small", "TAEF2"])
def test_bench_floor_prints_the_floor_table(weights: str, png_clip: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    module = bench("bench_floor")
    steps = ["0.5", "2", "4"]
    if weights == "seeded small":  # its latents are about 0.1 in size: smaller steps
        monkeypatch.setattr(module, "load_autoencoder", lambda folder: small_autoencoder())
        steps = ["0.02", "0.1", "0.4"]
    elif not (taef2_dir() / ENCODER_FILE).is_file():
        pytest.skip(f"TAEF2 weights not found in {taef2_dir()}")
    assert module.main(["--clip", str(png_clip), "--frames", "3", "--steps", ",".join(steps), "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("frames, first 3 frames, 64x48;")
    rows = table(out)
    assert list(rows) == ["TAEF2 encoder -> TAEF2 decoder, nothing coded", *(f"naive code, step {s}" for s in steps)]
    bpp = [v[0] for v in list(rows.values())[1:]]
    mse = [v[3] for v in rows.values()]
    assert all(a > b for a, b in zip(bpp, bpp[1:])) and bpp[-1] >= 0
    assert mse[0] == 0 and all(a < b for a, b in zip(mse, mse[1:]))
    assert "slightly optimistic" in out and "ST-LPIPS (shift-tolerant LPIPS, AlexNet variant" in out
    if weights == "TAEF2":  # the real decoder: coarse steps must cost quality
        psnr = [v[1] for v in rows.values()]
        assert psnr[0] > psnr[-1]


def test_naive_at_interpolates_in_log_bpp_and_never_extrapolates() -> None:
    module = bench("bench_floor")
    floor = [module.Point("nothing coded", None, 40.0, 0.01, 0.0), module.Point("step 4", 0.01, 20.0, 0.3),
             module.Point("step 2", 0.1, 30.0, 0.1), module.Point("step 1", 1.0, 35.0, 0.05)]
    assert module.naive_at(floor, 0.1) == pytest.approx((30.0, 0.1))
    assert module.naive_at(floor, 10 ** -1.5) == pytest.approx((25.0, 0.2))  # halfway in log(bpp)
    assert module.naive_at(floor, 0.005) is None and module.naive_at(floor, 2.0) is None
    beats = module.row(module.Point("m q1", 10 ** -1.5, 26.0, 0.15), floor)
    assert beats.endswith("| 25.00 | 0.200 | both |")
    assert module.row(module.Point("m q0", 10 ** -1.5, 24.0, 0.15), floor).endswith("| ST-LPIPS only |")
    assert module.row(module.Point("m q0", 10 ** -1.5, 26.0, 0.25), floor).endswith("| PSNR only |")
    assert "outside the naive code's bpp range" in module.row(module.Point("m q9", 3.0, 50.0, 0.0), floor)


def test_bench_floor_sets_a_model_beside_the_naive_code(png_clip: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from model.codec import S2VC
    from model.config import tiny
    from tests.test_train_merge import SMALL

    module = bench("bench_floor")
    monkeypatch.setattr(module, "load_autoencoder", lambda folder: small_autoencoder())
    torch.manual_seed(0)
    model = S2VC(tiny().replace(**SMALL)).save_pretrained(tmp_path / "model")
    argv = ["--clip", str(png_clip), "--frames", "3", "--steps", "0.001,0.02,0.1,0.4,4", "--threads", "1",
            "--model", str(model), "--rates", "0,1"]
    assert module.main(argv) == 0
    rows = table(capsys.readouterr().out)
    model_rows = [v for k, v in rows.items() if k.startswith(str(model))]
    assert len(model_rows) == 2 and all(len(v) == 7 for v in rows.values())
    floor = [module.Point(k, v[0], v[1], v[2]) for k, v in rows.items() if k.startswith("naive code")]
    for bpp, psnr, st, _, naive_psnr, naive_st, verdict in model_rows:  # both inside the floor's 0-2 bpp range
        assert (naive_psnr, naive_st) == pytest.approx(module.naive_at(floor, bpp), abs=0.01)
        assert verdict == module.VERDICTS[(psnr > naive_psnr, st < naive_st)]
    # latent MSE: the model's decoded x0 (the frames' part of its padded latent) against the floor's latents
    target = module.encode_frames(small_autoencoder(), clip(3, 48, 64))
    with torch.inference_mode():
        results = S2VC.from_pretrained(model).eval().iter_reconstruct(clip(3, 48, 64), 0, keep_latent=True)
        coded = torch.cat([f.latent for f in results])
    assert coded.shape[-2:] == (8, 8) and target.shape[-2:] == (6, 8)
    expected = float((coded[..., :6, :8] - target).pow(2).mean())
    assert model_rows[0][3] == pytest.approx(expected, rel=1e-3)
    with torch.inference_mode():  # only kept when asked for
        assert all(f.latent is None for f in S2VC.from_pretrained(model).iter_reconstruct(clip(2, 48, 64), 0, False))


def test_bench_floor_refuses_bad_arguments(png_clip: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    module = bench("bench_floor")
    for argv, message in (
        (["--steps", "1,-2"], "--steps must be positive"),
        (["--frames", "1"], "--frames must be at least 2"),
        (["--taef2", str(tmp_path / "nowhere")], "TAEF2 weights not found"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            module.main(["--clip", str(png_clip), *argv])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        module.main(["--clip", str(tmp_path / "missing.mp4")])
    assert "clip not found" in capsys.readouterr().err
