"""The metric registry: every metric by name, whether it can run here and, if not, why; the default sets."""
from __future__ import annotations

from comparisons.metrics.base import Metric, MetricError, MetricValue
from comparisons.metrics.deep import DISTS, LPIPSAlex, STLPIPS
from comparisons.metrics.fid import PatchFID128, PatchFID256
from comparisons.metrics.flolpips import FloLPIPSAlex, FloLPIPSRAFT, FloSTLPIPS
from comparisons.metrics.msssim import MSSSIM
from comparisons.metrics.psnr import PSNRRGB, PSNRYUV611
from comparisons.metrics.ssim import SSIMRGB
from comparisons.metrics.vmaf import VMAF

METRICS: dict[str, type[Metric]] = {m.name: m for m in (
    PSNRRGB, PSNRYUV611, SSIMRGB, MSSSIM, LPIPSAlex, DISTS, STLPIPS, VMAF, FloLPIPSRAFT, PatchFID256,
    FloLPIPSAlex, FloSTLPIPS, PatchFID128)}

# The paper's metrics as the release computes them (comparisons evaluate's set).
PAPER_METRICS = ("psnr_rgb", "ms_ssim_rgb", "lpips_alex", "dists", "flolpips_raft", "fid_patch256")

# The default set on a CPU, a stated choice (comparisons/README.md, "Which metrics run by default"): what a CPU
# measures for a clip in minutes, not hours. PSNR (RGB, YUV 6:1:1), MS-SSIM, LPIPS-Alex and VMAF. Left out on a CPU,
# named in --metrics to add them: DISTS (VGG16 over every frame pair: about 14x LPIPS-Alex's cost per 720p frame
# measured here) and ST-LPIPS (its anti-aliased AlexNet: about 7x), the temporal ones (FloLPIPS-RAFT: RAFT-large
# four times per frame; the Horn-Schunck variants), patch FID (Inception on 49 patches per 1080p frame) and SSIM
# (MS-SSIM covers it). `python -m comparisons list --measure` states each one's cost here.
CPU_DEFAULT_METRICS = ("psnr_rgb", "psnr_yuv611", "ms_ssim_rgb", "lpips_alex", "vmaf")
# On a GPU: the CPU's set plus the paper's other axes (DISTS, FloLPIPS-RAFT, patch FID 256) and ST-LPIPS. Left out:
# SSIM, the Horn-Schunck variants (FloLPIPS-RAFT is the release's) and patch FID 128 (the release's small-video
# setting: name it instead of fid_patch256 for such clips).
GPU_DEFAULT_METRICS = CPU_DEFAULT_METRICS + ("dists", "st_lpips_alex", "flolpips_raft", "fid_patch256")


def get_metric(name: str, device: str = "cpu") -> Metric:
    if name not in METRICS:
        raise MetricError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
    return METRICS[name](device)


def metric_availability() -> dict[str, str | None]:
    """Each registered metric -> None when it can run here, else the reason it cannot."""
    return {name: cls.availability() for name, cls in METRICS.items()}


def available_metrics() -> list[str]:
    return [name for name, why in metric_availability().items() if why is None]


def default_metrics(device: str = "cpu") -> list[str]:
    """The available members of the default set for ``device`` (a resolved device: "cpu" or "cuda[:N]")."""
    wanted = GPU_DEFAULT_METRICS if device.startswith("cuda") else CPU_DEFAULT_METRICS
    return [name for name in available_metrics() if name in wanted]


def metric_set(choice: str, device: str = "cpu") -> list[str]:
    """``--metrics``: "default" (`default_metrics` for ``device``), "paper" (the release's set), "available" or
    comma-separated names; `MetricError` naming any unknown one."""
    sets = {"default": lambda: default_metrics(device), "paper": lambda: list(PAPER_METRICS),
            "available": available_metrics}
    names = sets[choice]() if choice in sets else [m.strip() for m in choice.split(",") if m.strip()]
    bad = [m for m in names if m not in METRICS]
    if bad:
        raise MetricError(f"unknown metric(s) {', '.join(bad)}; known: {', '.join(METRICS)}")
    return names


__all__ = ["CPU_DEFAULT_METRICS", "GPU_DEFAULT_METRICS", "METRICS", "Metric", "MetricError", "MetricValue", "PAPER_METRICS",
           "available_metrics", "default_metrics", "get_metric", "metric_availability", "metric_set"]
