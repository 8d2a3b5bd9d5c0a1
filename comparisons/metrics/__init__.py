"""The metric registry: every metric by name, whether it can run here and, if not, why."""
from __future__ import annotations

from comparisons.metrics.base import Metric, MetricError, MetricValue
from comparisons.metrics.deep import DISTS, LPIPSAlex, STLPIPS
from comparisons.metrics.fid import PatchFID
from comparisons.metrics.flolpips import FloLPIPSAlex, FloSTLPIPS
from comparisons.metrics.msssim import MSSSIM
from comparisons.metrics.psnr import PSNRRGB, PSNRYUV611
from comparisons.metrics.ssim import SSIMRGB
from comparisons.metrics.vmaf import VMAF

METRICS: dict[str, type[Metric]] = {m.name: m for m in (
    PSNRRGB, PSNRYUV611, SSIMRGB, MSSSIM, LPIPSAlex, DISTS, STLPIPS, VMAF, FloLPIPSAlex, FloSTLPIPS, PatchFID)}


def get_metric(name: str) -> Metric:
    if name not in METRICS:
        raise MetricError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
    return METRICS[name]()


def metric_availability() -> dict[str, str | None]:
    """Each registered metric -> None when it can run here, else the reason it cannot."""
    return {name: cls.availability() for name, cls in METRICS.items()}


def available_metrics() -> list[str]:
    return [name for name, why in metric_availability().items() if why is None]


__all__ = ["METRICS", "Metric", "MetricError", "MetricValue", "available_metrics", "get_metric", "metric_availability"]
