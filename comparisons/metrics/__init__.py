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

# `run`'s default on a CPU, a stated choice (comparisons/README.md, "Which metrics run by default"): the paper's
# per-frame axes whose cost a CPU carries for a clip (PSNR RGB and YUV 6:1:1, MS-SSIM, LPIPS-Alex, DISTS,
# ST-LPIPS, VMAF). Left out on a CPU, named in --metrics to add: the temporal ones (FloLPIPS-RAFT: four RAFT-large
# passes per frame; the Horn-Schunck variants), patch FID (Inception on 49 patches per 1080p frame) and SSIM
# (MS-SSIM covers it). On a GPU every available metric is the default.
CPU_DEFAULT_METRICS = ("psnr_rgb", "psnr_yuv611", "ms_ssim_rgb", "lpips_alex", "dists", "st_lpips_alex", "vmaf")


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
    wanted = METRICS if device.startswith("cuda") else CPU_DEFAULT_METRICS
    return [name for name in available_metrics() if name in wanted]


__all__ = ["CPU_DEFAULT_METRICS", "METRICS", "Metric", "MetricError", "MetricValue", "PAPER_METRICS",
           "available_metrics", "default_metrics", "get_metric", "metric_availability"]
