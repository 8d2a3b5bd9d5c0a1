"""The learned metrics on CUDA (skipped without one; `tests/gpu/run.sh` runs them): with seeded weight files in a
temporary torch hub cache, LPIPS-Alex, ST-LPIPS, DISTS, FloLPIPS-RAFT and patch FID give on the GPU what they give
on the CPU, and `comparisons evaluate` runs there. `S2VC_GPU_DEVICE=cpu` runs the same logic on a CPU (`run.sh --cpu`)."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from comparisons.evaluate import evaluate, find_sequences
from comparisons.metrics import get_metric
from tests.test_comparisons_metrics import distorted
from tests.test_evaluate import dataset
from tests.test_metric_weights import cached, weight_home  # noqa: F401 (fixtures)
from tests.test_video_io import clip

DEVICE = os.environ.get("S2VC_GPU_DEVICE", "cuda")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(),
                                                  reason="needs a CUDA GPU (S2VC_GPU_DEVICE=cpu runs the logic on a CPU)")]


def _sync() -> None:
    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()


@pytest.mark.parametrize("name", ["lpips_alex", "st_lpips_alex", "dists", "flolpips_raft", "fid_patch128"])
def test_learned_metric_on_the_device_matches_cpu(cached, name: str) -> None:  # noqa: F811
    ref = clip(t=4, h=256, w=320)
    test = distorted(ref, 20)
    cpu = get_metric(name, "cpu").evaluate(ref, test)
    _sync()
    start = time.perf_counter()
    gpu = get_metric(name, DEVICE).evaluate(ref, test)
    _sync()
    print(f"{name}: {DEVICE} {time.perf_counter() - start:.3f} s for 4 frames of 320x256 (first call, net built)")
    assert gpu.clip == pytest.approx(cpu.clip, rel=2e-2, abs=1e-4)
    if cpu.per_frame is not None:
        assert np.allclose(gpu.per_frame, cpu.per_frame, rtol=2e-2, atol=1e-4, equal_nan=True)


def test_evaluate_on_the_device(cached, tmp_path: Path) -> None:  # noqa: F811
    gt, rec = dataset(tmp_path, {"A": 3}, h=176, w=176)  # MS-SSIM needs 161 px
    paths = evaluate(find_sequences(gt, rec, "q1"), "toy", tmp_path / "out",
                     ["psnr_rgb", "ms_ssim_rgb", "lpips_alex", "dists", "flolpips_raft"], DEVICE, log=print)
    assert "toy_summary.csv" in paths and "Not computed" not in (tmp_path / "out" / "toy_variants.md").read_text()
