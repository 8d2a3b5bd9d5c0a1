"""The quality benchmarks used to pick checkpoints and to find where quality is lost, on a small random model."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from bench.clips import center_crop, read_clip
from model import S2VC, tiny
from model.dpb import DecodedPictureBuffer
from model.video_io import write_png_folder
from tests.test_codec import clip
from tests.test_train_merge import SMALL

BENCH = Path(__file__).resolve().parents[1] / "bench"


def bench(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return S2VC(tiny().replace(**SMALL)).save_pretrained(tmp_path_factory.mktemp("bench") / "small")


@pytest.fixture(scope="module")
def png_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clip") / "frames"
    write_png_folder(folder, clip(3, 80, 96))
    return folder


def test_center_crop_takes_the_centred_window() -> None:
    frames = np.arange(2 * 6 * 8 * 3, dtype=np.uint8).reshape(2, 6, 8, 3)
    out = center_crop(frames, "4x2")
    assert out.shape == (2, 2, 4, 3)
    assert np.array_equal(out, frames[:, 2:4, 2:6])
    assert center_crop(frames, None) is frames
    with pytest.raises(ValueError, match="larger than the 8x6 clip"):
        center_crop(frames, "10x2")


def test_read_clip_reads_crops_and_refuses_bad_arguments(png_clip: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    assert read_clip(parser, png_clip, 2, 30.0, "64x32").shape == (2, 32, 64, 3)
    for args, message in (((png_clip, 1, 30.0), "--frames must be at least 2"),
                          ((png_clip, 2, None), "the frame rate is not stored in this format; pass fps"),
                          ((tmp_path / "missing.mp4", 4, None), "clip not found"),
                          ((png_clip, 2, 30.0, "200x20"), "--crop 200x20 is larger than the 96x80 clip")):
        with pytest.raises(SystemExit):
            read_clip(parser, *args)
        assert message in capsys.readouterr().err


def test_bench_quality_prints_one_line_per_rate(small_model: Path, png_clip: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert bench("bench_quality").main(["--model", str(small_model), "--clip", str(png_clip), "--frames", "2",
                                        "--crop", "64x64", "--rates", "0,3", "--threads", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "frames, first 2 frames, 64x64"
    assert [re.search(r" (q\d): ", line).group(1) for line in lines[1:]] == ["q0", "q3"]
    bpp = [float(re.search(r"([\d.]+) bpp", line).group(1)) for line in lines[1:]]
    assert all(b > 0 for b in bpp)


def test_bench_quality_per_frame_lines_average_to_the_rate_line(small_model: Path, png_clip: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert bench("bench_quality").main(["--model", str(small_model), "--clip", str(png_clip), "--frames", "3",
                                        "--rates", "1", "--per-frame", "--threads", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    frames = [line.split() for line in lines if line.startswith("  frame")]
    assert [(f[1], f[2]) for f in frames] == [("0", "I"), ("1", "reset"), ("2", "P")]
    mean_bpp = float(re.search(r"q1: ([\d.]+) bpp", lines[1]).group(1))
    mean_st = float(re.search(r"ST-LPIPS ([\d.]+)", lines[1]).group(1))
    assert np.mean([float(f[3]) for f in frames]) == pytest.approx(mean_bpp, abs=2e-4)
    assert np.mean([float(f[-1]) for f in frames]) == pytest.approx(mean_st, abs=2e-3)


def test_bench_quality_rejects_a_rate_the_model_lacks(small_model: Path, png_clip: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bench("bench_quality").main(["--model", str(small_model), "--clip", str(png_clip), "--frames", "2",
                                     "--rates", "5", "--threads", "1"])  # rate points 0..4
    assert exit_info.value.code == 2


def test_bench_ceilings_rows(small_model: Path, png_clip: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench("bench_ceilings").main(["--model", str(small_model), "--clip", str(png_clip), "--frames", "3",
                                         "--taef2", str(png_clip), "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "autoencoder -> model decoder" in out
    assert "autoencoder -> TAEF2 decoder: skipped, TAEF2 weights not found" in out  # --taef2 names no weights
    rows = [line for line in out.splitlines() if " coded -> model decoder" in line]
    assert [row.split()[0] for row in rows] == ["q0", "q1", "q2", "q3", "q4"]
    lat_i, lat_p, without_unet = (float(v) for v in rows[0].split()[-4:-1])
    assert lat_i > 0 and lat_p > 0 and without_unet > 0
    assert "no U-Net" in out
    no_eps = [line for line in out.splitlines() if " no eps -> model decoder" in line]
    assert [row.split()[0] for row in no_eps] == ["q0", "q1", "q2", "q3", "q4"]
    for coded, dropped in zip(rows, no_eps):  # same clip, same buffers: the latent errors are the same figures
        assert coded.split()[-4:] == dropped.split()[-4:]
        assert coded.split()[-6:-4] != dropped.split()[-6:-4]  # the pictures differ (a random U-Net's eps)


def test_bench_ceilings_splits_the_iframe_and_pframe_errors(small_model: Path, png_clip: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert bench("bench_ceilings").main(["--model", str(small_model), "--clip", str(png_clip), "--frames", "3",
                                         "--taef2", str(png_clip), "--threads", "1", "--optimise", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()[-3:]
    assert lines[0].startswith("I-frame at q4, latent MSE (5 Adam steps, networks frozen): ")
    assert lines[1].startswith("frame 1 (P) at q4, latent MSE: copy of its reference ")
    assert lines[2].startswith("frame 2 (P) at q4, latent MSE: copy of its reference ")
    for line in lines:
        values = {k: float(v) for k, v in re.findall(r"(coded|best y_hat|best f_pix|refined y|refined bpp) ([\d.]+)",
                                                     line)}
        coded, best_y, best_f = (values[k] for k in ("coded", "best y_hat", "best f_pix"))
        assert best_f < coded and best_y <= coded  # descent from the coded tensors lowers the error
        assert values["refined y"] > 0 and values["refined bpp"] > 0


def test_descend_reaches_a_reachable_target() -> None:
    target = torch.randn(1, 4, 3, 3, generator=torch.Generator().manual_seed(0))
    best = bench("bench_ceilings").descend(lambda v: 2 * v, torch.zeros_like(target), target, 200, 0.05)
    assert best < 1e-4 < float((target**2).mean())


def test_code_clip_without_unet_is_x0_of_a_silent_unet(small_model: Path) -> None:
    code_clip = bench("bench_ceilings").code_clip
    model = S2VC.from_pretrained(small_model).eval()
    torch.manual_seed(0)
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        latents, without_eps, types, bits = code_clip(model, x, 1)
        assert latents.shape == without_eps.shape == (3, model.config.latent_channels, 8, 8)
        assert types == ["I", "reset", "P"] and len(bits) == 3
        assert not torch.allclose(latents, without_eps)  # the random U-Net predicts some noise
        assert "predict_x0" not in vars(model.unet)  # the method is restored
        model.unet.conv_out.weight.zero_()
        model.unet.conv_out.bias.zero_()
        silent, without_eps, _, _ = code_clip(model, x, 1)
    assert torch.equal(silent, without_eps)


def test_bench_latent_drift_sets_each_p_frame_beside_copying(small_model: Path, png_clip: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    bench("bench_latent_drift").main(["--model", str(small_model), "--clip", str(png_clip), "--fps", "25",
                                      "--frames", "3", "--rates", "0", "--threads", "1"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("3 frames, centred crop 64x64")
    types = out[3].split()[1:]
    x0, copy, ref = out[4].split()[2:], out[5].split()[1:], out[6].split()[1:]
    assert types == ["I", "reset", "P"] and len(x0) == 3 and copy[0] == "-" and len(copy) == 3
    assert ref[0] == "-" and len(ref) == 3
    frames = torch.from_numpy(clip(3, 80, 96)[:, 8:72, 16:80]).float() / 127.5 - 1
    with torch.no_grad():
        from model.loading import load_model  # the same latents the bench compares against
        model = load_model(str(small_model)).eval()
        latents = [model.vae.encode(f.permute(2, 0, 1)[None]) for f in frames]
        coded = model.forward_frames(frames.permute(0, 3, 1, 2)[None], 0, decode=False)
    assert float(copy[1]) == pytest.approx(float((latents[1] - latents[0]).pow(2).mean()), abs=1e-3)
    assert float(ref[2]) == pytest.approx(float((coded[1]["latent_hat"] - latents[2]).pow(2).mean()), abs=1e-3)
    assert re.search(r"P-frames: x0 MSE [\d.]+ \(first [\d.]+, last [\d.]+\) against copying .* the previous x0 "
                     r"[\d.]+; [\d.]+ bpp \(I-frame [\d.]+\)", out[8])
    with pytest.raises(SystemExit):
        bench("bench_latent_drift").main(["--model", str(small_model), "--clip", str(png_clip), "--fps", "25",
                                          "--max-size", "32x32"])
    assert "at least 64x64" in capsys.readouterr().err


def test_refined_y_without_steps_is_the_coded_frame(small_model: Path) -> None:
    """refine_y with no Adam step codes the encoder's own y: the coded figures, bits included (the plumbing)."""
    ceilings = bench("bench_ceilings")
    model = S2VC.from_pretrained(small_model).eval()
    x = torch.from_numpy(clip(3, 64, 64)).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        target = model.vae.encode(x)
    i_split = ceilings.split_iframe_error(model, x[:1], target[:1], 2, 0, 1.0)
    assert i_split["refined y"] == pytest.approx(i_split["coded"], rel=1e-5)
    p_split = ceilings.split_pframe_error(model, x, target, 2, 0, 1.0)
    assert p_split["refined y"] == pytest.approx(p_split["coded"], rel=1e-5)
    dpb = DecodedPictureBuffer(model.config.reset_interval)
    with torch.no_grad():
        bits = [model.code_frame(dpb, 2, x=x[t : t + 1])["bits"] for t in range(3)]
    assert i_split["refined bpp"] == pytest.approx(bits[0] / (64 * 64), rel=1e-5)
    assert p_split["refined bpp"] == pytest.approx(bits[2] / (64 * 64), rel=1e-5)


def test_bench_fit_one_clip_trains_on_the_clip_and_leaves_the_model(small_model: Path, png_clip: Path,
                                                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import hashlib
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the bench's run folder goes here, and must go away
    weights = small_model / "model.safetensors"
    before = hashlib.sha256(weights.read_bytes()).hexdigest()
    bench("bench_fit_one_clip").main(["--model", str(small_model), "--clip", str(png_clip), "--frames", "3",
                                      "--crop", "64x64", "--steps", "2", "--every", "1", "--lr", "1e-2"])
    out = capsys.readouterr().out.splitlines()
    assert "3 frames 64x64" in out[0] and out[1].split() == ["step", "q0", "q4"]
    rows = [line.split() for line in out[2:]]
    assert [r[0] for r in rows] == ["0", "1", "2"]
    figures = [[float(v) for v in r[1:] if v != "/"] for r in rows]
    assert all(len(f) == 6 and all(v >= 0 for v in f) for f in figures)
    assert figures[2] != figures[0]  # the P side trained
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == before
    assert not list(tmp_path.iterdir())
    for bad, message in ((["--frames", "2"], "at least 3"), (["--crop", "64x80", "--frames", "3"], "multiples of 64")):
        with pytest.raises(SystemExit):
            bench("bench_fit_one_clip").main(["--model", str(small_model), "--clip", str(png_clip), *bad])
        assert message in capsys.readouterr().err
