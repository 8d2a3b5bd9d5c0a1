"""The Metric interface: a name that carries its variant, a direction, availability and per-frame values."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from comparisons.metrics.weights import WeightsMissing


class MetricError(RuntimeError):
    """A metric cannot be computed here or on these frames; one-line message."""


@dataclass
class MetricValue:
    """Per-frame values (NaN where a frame has none, inf for e.g. PSNR of identical frames) and the clip value."""

    per_frame: list[float] | None
    clip: float


class Metric(ABC):
    """``metric(ref, test)`` -> per-frame values for uint8 RGB ``[T,H,W,3]`` pairs at the original resolution."""

    name: ClassVar[str]  # registry key, short but specific (e.g. "psnr_rgb")
    variant: ClassVar[str]  # exact definition shown next to every value
    higher_is_better: ClassVar[bool]
    unit: ClassVar[str] = ""
    learned: ClassVar[bool] = False  # runs a network: follows ``device``, batched

    def __init__(self, device: str = "cpu") -> None:
        self.device = device  # "cpu" or "cuda[:N]" (resolved: see comparisons.metrics.nets.resolve_device)

    @classmethod
    def availability(cls) -> str | None:
        """None when the metric can run here, else why not (missing package or weights, one line)."""
        return None

    def applicable(self, frames: int, height: int, width: int) -> str | None:
        """None when the metric is defined for clips of this shape, else why not."""
        return None

    @abstractmethod
    def per_frame(self, ref: np.ndarray, test: np.ndarray) -> np.ndarray:
        """Float64 ``[T]``."""

    def evaluate(self, ref: np.ndarray, test: np.ndarray) -> MetricValue:
        """Per-frame values and their mean over the frames that have one (the clip value)."""
        check_pair(ref, test)
        reason = self.availability() or self.applicable(*ref.shape[:3])
        if reason:
            raise MetricError(f"{self.name}: {reason}")
        try:
            values = np.asarray(self.per_frame(ref, test), dtype=np.float64)
        except WeightsMissing as exc:
            raise MetricError(f"{self.name}: {exc}") from None
        defined = values[~np.isnan(values)]
        return MetricValue([float(v) for v in values], float(defined.mean()) if defined.size else float("nan"))

    def evaluate_with_state(self, ref: np.ndarray, test: np.ndarray) -> tuple[MetricValue, dict[str, np.ndarray]]:
        """`evaluate` and the arrays a later pool over many clips needs (none for a per-frame metric)."""
        return self.evaluate(ref, test), {}

    def __call__(self, ref: np.ndarray, test: np.ndarray) -> np.ndarray:
        return np.asarray(self.evaluate(ref, test).per_frame, dtype=np.float64)

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "variant": self.variant, "higher_is_better": self.higher_is_better,
                "unit": self.unit, "available": self.availability() is None, "why_unavailable": self.availability()}


def check_pair(ref: np.ndarray, test: np.ndarray) -> None:
    for a in (ref, test):
        if a.ndim != 4 or a.shape[-1] != 3 or a.dtype != np.uint8:
            raise MetricError(f"frames must be uint8 [T,H,W,3], got {a.dtype} {list(a.shape)}")
    if ref.shape != test.shape:
        raise MetricError(f"reference {list(ref.shape)} and test {list(test.shape)} frames differ in shape")


def to_tensor(frames: np.ndarray, device: str = "cpu"):  # -> torch.Tensor [T,3,H,W] float32 in [0,1]
    """uint8 ``[T,H,W,3]`` -> float ``[T,3,H,W]`` in [0,1] on ``device`` (sent as uint8: a quarter of the bytes)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(frames)).to(device, non_blocking=True)
    return x.permute(0, 3, 1, 2).float().div_(255.0)


def batched(fn, ref: np.ndarray, test: np.ndarray, batch: int = 8, device: str = "cpu") -> np.ndarray:
    """Apply ``fn(ref_tensor, test_tensor) -> [B]`` over frame batches on ``device``, in inference mode."""
    import torch

    out = []
    with torch.inference_mode():
        for i in range(0, len(ref), batch):
            value = fn(to_tensor(ref[i:i + batch], device), to_tensor(test[i:i + batch], device))
            out.append(value.reshape(-1).double().cpu().numpy())
    return np.concatenate(out)
