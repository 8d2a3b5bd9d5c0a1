"""Where the metrics run: ``--device`` resolution, the default sets per device, the device in each record."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from comparisons.__main__ import main
from comparisons.metrics import (CPU_DEFAULT_METRICS, GPU_DEFAULT_METRICS, PAPER_METRICS, MetricError,
                                 available_metrics, default_metrics, metric_set)
from comparisons.metrics.nets import resolve_device
from comparisons.runner import measure
from tests.test_comparisons_results import write_y4m
from tests.test_video_io import clip


def test_device_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu" and resolve_device(None) == "cpu"
    with pytest.raises(ValueError, match="no CUDA GPU"):
        resolve_device("cuda:1")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda" and resolve_device("cuda:1") == "cuda:1"


def test_default_sets_per_device() -> None:
    available = set(available_metrics())
    assert default_metrics("cpu") == [m for m in available_metrics() if m in CPU_DEFAULT_METRICS]
    assert set(default_metrics("cuda")) == available & set(GPU_DEFAULT_METRICS)
    assert set(CPU_DEFAULT_METRICS) < set(GPU_DEFAULT_METRICS) and "dists" in PAPER_METRICS
    assert metric_set("paper") == list(PAPER_METRICS) and metric_set(" psnr_rgb, vmaf") == ["psnr_rgb", "vmaf"]
    with pytest.raises(MetricError, match="unknown metric"):
        metric_set("psnr_rgb,nope")


def test_records_name_the_metric_device() -> None:
    from comparisons.codecs.base import EncodeResult

    frames = clip(t=2)
    fields = EncodeResult.__dataclass_fields__
    result = EncodeResult(**{name: None for name in fields} | {
        "codec": "x264", "label": "x264", "decoded": frames, "bits": 100, "frames": 2, "fps": 25.0, "width": 64,
        "height": 48, "trials": [], "settings": {}})
    record = measure(frames, result, ["psnr_rgb"], "cpu")
    assert record["metric_device"] == "cpu" and record["per_frame"]["psnr_rgb"] is not None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_run_refuses_cuda_without_a_gpu(tmp_path: Path) -> None:
    write_y4m(tmp_path / "c.y4m", clip(t=2), 25)
    with pytest.raises(SystemExit, match="no CUDA GPU"):
        main(["run", "--clip", str(tmp_path / "c.y4m"), "--kbps", "100", "--device", "cuda", "--out", str(tmp_path)])


def test_run_says_once_why_a_metric_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from comparisons.results import load_results

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no weights, offline (conftest)
    write_y4m(tmp_path / "c.y4m", clip(t=2), 25)
    assert main(["run", "--clip", str(tmp_path / "c.y4m"), "--codecs", "x264", "--preset", "x264=ultrafast",
                 "--kbps", "100,200", "--metrics", "psnr_rgb,lpips_alex", "--device", "cpu", "--no-png",
                 "--out", str(tmp_path / "out")]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("metric lpips_alex: ")]
    assert len(lines) == 1 and "alexnet-owt-7be5be79.pth" in lines[0] and "S2VC_OFFLINE=1" in lines[0]
    records = load_results(tmp_path / "out" / "results.json")["records"]
    assert len(records) == 2 and all("lpips_alex" in r["metric_errors"] and "psnr_rgb" in r["metrics"] for r in records)
