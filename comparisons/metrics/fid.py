"""Patch FID (FID/N after Mentzer et al. 2020), as the S2VC release computes it (S2VC_ARCHITECTURE.md section 5).

Each frame is cut into non-overlapping N x N patches aligned to the top-left corner (the remainder dropped); when
both sides are at least 1.5 N, a second grid offset by N/2 px diagonally is added (at 1920x1080 and N = 256:
28 + 21 = 49 patch pairs per frame). Reference patches are "real", decoded patches "fake", in one torchmetrics
FrechetInceptionDistance (2048-d torch-fidelity Inception v3, uint8 input). The release pools one FID over every
frame of every sequence of a dataset (`PatchFIDPool`; `comparisons evaluate` does that); as a registry metric
(``run``) it is one FID per clip. A suite keeps each clip's Inception features (`evaluate_with_state`) and pools
them per dataset and rate point with `fid_from_features`, the same arithmetic as torchmetrics on the same features.
``fid_patch256`` is the release's setting, ``fid_patch128`` the release's advice for small videos.
"""
from __future__ import annotations

import numpy as np
import torch

from comparisons.metrics import nets
from comparisons.metrics.base import Metric, MetricError, MetricValue, check_pair
from comparisons.metrics.deep import package_missing
from comparisons.metrics.weights import INCEPTION, WeightsMissing, status

FRAMES_PER_UPDATE = 2  # Inception sees 299x299 floats: ~50 MB per 1080p frame's 49 patches, per side


def patch_origins(height: int, width: int, size: int) -> list[tuple[int, int]]:
    """Top-left corners (y, x) of the patches of one ``height`` x ``width`` frame: the aligned grid, then the grid
    offset by ``size // 2`` when both sides are at least ``size + size // 2``."""
    offsets = [0] + ([size // 2] if min(height, width) >= size + size // 2 else [])
    return [(off + r * size, off + c * size) for off in offsets
            for r in range((height - off) // size) for c in range((width - off) // size)]


def patches(frames: np.ndarray, size: int) -> torch.Tensor:
    """uint8 ``[N,3,size,size]`` patches of ``[T,H,W,3]`` frames at `patch_origins`, frame by frame."""
    origins = patch_origins(frames.shape[1], frames.shape[2], size)
    cut = np.stack([f[y:y + size, x:x + size] for f in frames for y, x in origins]) if origins else \
        np.zeros((0, size, size, 3), np.uint8)
    return torch.from_numpy(np.ascontiguousarray(cut.transpose(0, 3, 1, 2)))


def fid_from_features(real: np.ndarray, fake: np.ndarray) -> float:
    """FID of two sets of 2048-d Inception features ``[N,2048]``, computed as torchmetrics'
    FrechetInceptionDistance.compute does from its float64 sums (so pooling saved features equals one pool)."""
    from torchmetrics.image.fid import _compute_fid

    if len(real) < 2 or len(fake) < 2:
        raise MetricError(f"FID needs at least 2 features on each side, got {len(real)} and {len(fake)}")
    stats = []
    for feats in (real, fake):
        x = torch.from_numpy(np.asarray(feats, np.float32)).double()
        n = x.shape[0]
        mean = (x.sum(0) / n).unsqueeze(0)
        cov = (x.t().mm(x) - n * mean.t().mm(mean)) / (n - 1)
        stats.append((mean.squeeze(0), cov))
    return float(_compute_fid(stats[0][0], stats[0][1], stats[1][0], stats[1][1]).float())


class PatchFIDPool:
    """One FID accumulated over many (reference, decoded) clips: the release's per-dataset patch FID.
    ``keep_features``: also keep every patch's Inception features (`features`), for pooling elsewhere later."""

    def __init__(self, size: int = 256, device: str = "cpu", keep_features: bool = False) -> None:
        self.size, self.device = size, device
        self.fid = nets.fid_inception(device)
        self.pairs = 0
        self._kept: dict[bool, list[torch.Tensor]] | None = {True: [], False: []} if keep_features else None
        self._real = True  # the side the next Inception call belongs to
        if keep_features:  # the features torchmetrics itself computes, seen on their way to its sums
            self.fid.inception.register_forward_hook(
                lambda _m, _i, out: self._kept[self._real].append(out.detach().float().cpu().reshape(-1, 2048)))

    def features(self) -> tuple[np.ndarray, np.ndarray]:
        """float32 ``[pairs, 2048]`` Inception features of the reference patches and of the decoded ones."""
        if self._kept is None:
            raise RuntimeError("this pool was made without keep_features=True")
        real, fake = (torch.cat(kept) if kept else torch.zeros(0, 2048)
                      for kept in (self._kept[True], self._kept[False]))
        return real.numpy(), fake.numpy()

    def update(self, ref: np.ndarray, test: np.ndarray) -> int:
        """Add every patch pair of these frames; returns how many pairs were added."""
        check_pair(ref, test)
        added = 0
        with torch.inference_mode():
            for i in range(0, len(ref), FRAMES_PER_UPDATE):
                real, fake = patches(ref[i:i + FRAMES_PER_UPDATE], self.size), patches(test[i:i + FRAMES_PER_UPDATE],
                                                                                      self.size)
                if len(real):
                    self._real = True
                    self.fid.update(real.to(self.device), real=True)
                    self._real = False
                    self.fid.update(fake.to(self.device), real=False)
                added += len(real)
        self.pairs += added
        return added

    def compute(self) -> float:
        if self.pairs < 2:
            raise MetricError(f"patch FID needs at least 2 patch pairs of {self.size}x{self.size}, got {self.pairs}")
        return float(self.fid.compute())


class _PatchFID(Metric):
    patch = 256
    higher_is_better = False
    learned = True

    @classmethod
    def availability(cls) -> str | None:
        return (package_missing("torchmetrics", "torchmetrics") or package_missing("torch_fidelity", "torch-fidelity")
                or status(INCEPTION))

    def applicable(self, frames: int, height: int, width: int) -> str | None:
        ok = len(patch_origins(height, width, self.patch)) * frames >= 2
        return None if ok else (f"needs at least 2 patches of {self.patch}x{self.patch}, got "
                                f"{len(patch_origins(height, width, self.patch)) * frames} from {frames} frame(s) "
                                f"of {width}x{height}")

    def per_frame(self, ref: np.ndarray, test: np.ndarray) -> np.ndarray:
        return np.full(len(ref), np.nan)

    def evaluate(self, ref: np.ndarray, test: np.ndarray) -> MetricValue:
        return self._pool(ref, test, keep_features=False)[0]

    def evaluate_with_state(self, ref: np.ndarray, test: np.ndarray) -> tuple[MetricValue, dict[str, np.ndarray]]:
        """The clip's FID and its patches' Inception features (``real``, ``fake``), for a per-dataset pool."""
        value, pool = self._pool(ref, test, keep_features=True)
        real, fake = pool.features()
        return value, {"real": real, "fake": fake}

    def _pool(self, ref: np.ndarray, test: np.ndarray, keep_features: bool) -> tuple[MetricValue, PatchFIDPool]:
        check_pair(ref, test)
        reason = self.availability() or self.applicable(*ref.shape[:3])
        if reason:
            raise MetricError(f"{self.name}: {reason}")
        try:
            pool = PatchFIDPool(self.patch, self.device, keep_features)
        except WeightsMissing as exc:
            raise MetricError(f"{self.name}: {exc}") from None
        pool.update(ref, test)
        return MetricValue(None, pool.compute()), pool


class PatchFID256(_PatchFID):
    patch = 256
    name = "fid_patch256"
    variant = ("patch FID as the S2VC release: 256x256 patches, aligned grid + 128-px diagonal offset grid when both "
               "sides >= 384 (49 pairs per 1080p frame), torchmetrics FrechetInceptionDistance 2048-d (torch-fidelity "
               "Inception v3), uint8; one FID per clip here, per dataset in `comparisons evaluate` and the suite "
               "report")


class PatchFID128(_PatchFID):
    patch = 128
    name = "fid_patch128"
    variant = ("patch FID: 128x128 patches (the release's setting for small videos), aligned grid + 64-px offset grid "
               "when both sides >= 192, torchmetrics FrechetInceptionDistance 2048-d, uint8; one FID per clip")
