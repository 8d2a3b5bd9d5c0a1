"""Metrics: agreement with FFmpeg's psnr/ssim filters, identical frames, registry reasons, temporal metric."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from comparisons import ffmpeg
from comparisons.metrics import METRICS, MetricError, get_metric, metric_availability
from comparisons.metrics.flow import horn_schunck
from tests.test_video_io import clip


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny tensors run faster on one thread, especially on a shared CPU; restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def distorted(frames: np.ndarray, amount: int = 12, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(frames.astype(int) + rng.integers(-amount, amount + 1, frames.shape), 0, 255).astype(np.uint8)


def ffmpeg_stats(ref: np.ndarray, test: np.ndarray, tmp: Path, name: str) -> str:
    """Run FFmpeg's `name` filter (psnr or ssim) on the RGB frames in gbrp (no YUV conversion); its stats file."""
    t, h, w = ref.shape[:3]
    (tmp / "ref.rgb").write_bytes(ref.tobytes())
    (tmp / "test.rgb").write_bytes(test.tobytes())
    raw = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", "25"]
    stats = tmp / f"{name}.log"
    subprocess.run([ffmpeg.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", *raw, "-i", str(tmp / "test.rgb"),
                    *raw, "-i", str(tmp / "ref.rgb"), "-lavfi",
                    f"[0:v]format=gbrp[a];[1:v]format=gbrp[b];[a][b]{name}=stats_file={stats}", "-f", "null", "-"],
                   check=True)
    return stats.read_text()


def test_psnr_and_ssim_agree_with_ffmpeg(tmp_path: Path) -> None:
    ref = clip(t=3, h=48, w=70)
    test = distorted(ref)
    psnr_ff = [float(v) for v in re.findall(r"psnr_avg:(\S+)", ffmpeg_stats(ref, test, tmp_path, "psnr"))]
    ssim_ff = [float(v) for v in re.findall(r"All:(\S+)", ffmpeg_stats(ref, test, tmp_path, "ssim"))]
    assert np.allclose(get_metric("psnr_rgb")(ref, test), psnr_ff, atol=0.01)
    assert np.allclose(get_metric("ssim_rgb")(ref, test), ssim_ff, atol=0.001)


def test_identical_frames() -> None:
    ref = clip(t=3, h=40, w=40)
    assert np.all(np.isinf(get_metric("psnr_rgb")(ref, ref)))
    assert np.isinf(get_metric("psnr_yuv611").evaluate(ref, ref).clip)
    assert np.allclose(get_metric("ssim_rgb")(ref, ref), 1.0)
    assert np.allclose(get_metric("st_lpips_alex")(ref, ref), 0.0, atol=1e-7)
    flo = get_metric("flo_st_lpips_alex_hs")(ref, ref)
    assert np.isnan(flo[0]) and np.isnan(flo[-1]) and np.allclose(flo[1:-1], 0.0, atol=1e-7)


def test_distances_grow_with_distortion() -> None:
    ref = clip(t=3, h=48, w=48)
    for name in ("st_lpips_alex", "flo_st_lpips_alex_hs"):
        metric = get_metric(name)
        mild, strong = metric.evaluate(ref, distorted(ref, 4)).clip, metric.evaluate(ref, distorted(ref, 30)).clip
        assert 0 < mild < strong, name


def test_vmaf_runs_through_ffmpeg() -> None:
    if METRICS["vmaf"].availability():
        pytest.skip(METRICS["vmaf"].availability())
    ref = clip(t=3, h=48, w=64)
    values = get_metric("vmaf")(ref, distorted(ref, 20))
    assert values.shape == (3,) and np.all((values >= 0) & (values <= 100))


def test_registry_reports_why_not() -> None:
    reasons = metric_availability()
    assert set(reasons) == set(METRICS)
    for name, why in reasons.items():
        assert why is None or (why and "\n" not in why), name
    if reasons["lpips_alex"]:
        assert "alexnet-owt-7be5be79.pth" in reasons["lpips_alex"] and "TORCH_HOME" in reasons["lpips_alex"]
        with pytest.raises(MetricError, match="lpips_alex"):
            get_metric("lpips_alex").evaluate(clip(t=1), clip(t=1))
    for name, cls in METRICS.items():
        assert name in cls.name and len(cls.variant) > 20


def test_small_frames_are_refused_with_a_reason() -> None:
    tiny = clip(t=2, h=64, w=64)
    with pytest.raises(MetricError, match="161 px"):
        get_metric("ms_ssim_rgb").evaluate(tiny, tiny)
    with pytest.raises(MetricError, match="shape"):
        get_metric("psnr_rgb").evaluate(tiny, tiny[:1])


def test_horn_schunck_recovers_a_global_shift() -> None:
    import torch

    ref = torch.from_numpy(clip(t=1, h=64, w=96)).permute(0, 3, 1, 2).float() / 255
    moved = torch.roll(ref, shifts=(1, 2), dims=(2, 3))  # moved(p) = ref(p - (2, 1)) -> ref(p) = moved(p + (2, 1))
    flow = horn_schunck(ref, moved)[0, :, 16:-16, 16:-16]
    assert abs(flow[0].median().item() - 2) < 0.3 and abs(flow[1].median().item() - 1) < 0.3
