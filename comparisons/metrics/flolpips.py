"""FloLPIPS (S2VC_ARCHITECTURE.md section 5): LPIPS layer maps pooled by the flow difference, for frames 2..N-1.

For each frame t = 1 .. T-2 (0-based; the first and last have no value, NaN) and each neighbour n in {t-1, t+1}:
delta = flow(ref_t, ref_n) - flow(test_t, ref_n); each of the 5 LPIPS layer maps (after its linear head) of
(ref_t, test_t) is pooled by a sum weighted by |delta| at the layer's size, normalised to sum 1 per image; the 5
pooled values are summed and the two neighbours averaged. The clip value is the mean over frames 2..N-1.

- ``flolpips_raft``: exactly the release's (``eval_quality.py``): torchvision RAFT-large, DEFAULT weights, 12
  iterations, inputs mapped to [-1,1]; the 2-channel delta is resized bilinearly to each layer's size and its
  magnitude taken there; LPIPS-Alex v0.1.
- ``flolpips_alex_hs`` / ``flo_st_lpips_alex_hs``: the weight-free variants kept under their own names:
  coarse-to-fine Horn-Schunck flow (comparisons.metrics.flow) instead of RAFT, |delta| taken at full size then
  resized; base network LPIPS-Alex v0.1 or ST-LPIPS Alex (a FloLPIPS-style variant, named as such).
The reference clip's flows are computed once and kept for the last reference clip (every codec and rate point
is compared with the same one).
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.nn.functional as F

from comparisons.metrics import nets
from comparisons.metrics.base import Metric, to_tensor
from comparisons.metrics.deep import LPIPSAlex, STLPIPS, package_missing
from comparisons.metrics.flow import horn_schunck
from comparisons.metrics.weights import ALEXNET, RAFT_LARGE, statuses

RAFT_ITERATIONS = 12
RAFT_MIN_SIDE = 128  # its correlation pyramid needs 1/8-scale features of at least 16 px
_FLOW_CACHE: dict = {}


def _unit(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return x / (torch.sqrt((x * x).sum(dim=1, keepdim=True)) + eps)


def layer_maps(net, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """LPIPS per-layer distance maps ``[B,1,h_k,w_k]`` (after the linear heads) for RGB in [0,1]."""
    a, b = net.scaling_layer(2 * x - 1), net.scaling_layer(2 * y - 1)
    fa, fb = net.net.forward(a), net.net.forward(b)
    return [net.lins[k]((_unit(fa[k]) - _unit(fb[k])) ** 2) for k in range(net.L)]


def pool_full_size(maps: list[torch.Tensor], delta: torch.Tensor) -> torch.Tensor:
    """Horn-Schunck variants: |delta| at full size, resized to each layer, normalised, weighted sum; ``[B]``."""
    magnitude = delta.norm(dim=1, keepdim=True)
    total = torch.zeros(delta.shape[0], dtype=torch.float64, device=delta.device)
    for fmap in maps:
        w = F.interpolate(magnitude, size=fmap.shape[-2:], mode="bilinear", align_corners=False)
        w = w / (w.sum(dim=(2, 3), keepdim=True) + 1e-12)
        total += (w * fmap).sum(dim=(1, 2, 3)).double()
    return total


def pool_release(maps: list[torch.Tensor], delta: torch.Tensor) -> torch.Tensor:
    """The release's pooling: the 2-channel delta resized bilinearly to each layer's size, its magnitude there,
    normalised to sum 1 per image, weighted sum; ``[B]``. Where delta is zero everywhere (no weight at all) the
    value is 0 (the release divides by zero there)."""
    total = torch.zeros(delta.shape[0], dtype=torch.float64, device=delta.device)
    for fmap in maps:
        d = F.interpolate(delta, size=fmap.shape[-2:], mode="bilinear", align_corners=False)
        magnitude = torch.sqrt(d[:, 0:1] ** 2 + d[:, 1:2] ** 2)
        norm = magnitude.sum(dim=(1, 2, 3), keepdim=True)
        pooled = (fmap * magnitude / norm.clamp_min(torch.finfo(norm.dtype).tiny)).sum(dim=(1, 2, 3))
        total += torch.where(norm.flatten() > 0, pooled, torch.zeros_like(pooled)).double()
    return total


def raft_flow(net, a: torch.Tensor, b: torch.Tensor, iterations: int = RAFT_ITERATIONS) -> torch.Tensor:
    """torchvision RAFT flow ``[B,2,H,W]`` from ``a`` to ``b`` (RGB in [0,1], mapped to [-1,1]), the last of
    ``iterations`` refinements. Sides that are not multiples of 8 (RAFT's need; the release assumes them) are
    edge-padded at the bottom/right and the flow cropped back."""
    h, w = a.shape[-2:]
    pad = (0, (-w) % 8, 0, (-h) % 8)
    if any(pad):
        a, b = F.pad(a, pad, mode="replicate"), F.pad(b, pad, mode="replicate")
    return net(2 * a - 1, 2 * b - 1, num_flow_updates=iterations)[-1][..., :h, :w]


class _FloBase(Metric):
    """Shared frame loop; subclasses give the network, the flow and the pooling."""

    higher_is_better = False
    learned = True
    batch = 4
    flow_kind = ""

    def network(self):  # the LPIPS-like module on self.device
        raise NotImplementedError

    def flow(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def pool(self, maps: list[torch.Tensor], delta: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def applicable(self, frames: int, height: int, width: int) -> str | None:
        if frames < 3:
            return f"needs at least 3 frames (first and last have no value), got {frames}"
        return None if min(height, width) >= 32 else f"frames must be at least 32x32, got {width}x{height}"

    def per_frame(self, ref: np.ndarray, test: np.ndarray) -> np.ndarray:
        net = self.network()
        flows = self._reference_flows(ref)
        out = np.full(len(ref), np.nan)
        with torch.inference_mode():
            for s in range(1, len(ref) - 1, self.batch):
                idx = np.arange(s, min(s + self.batch, len(ref) - 1))
                r, d = to_tensor(ref[idx], self.device), to_tensor(test[idx], self.device)
                maps = layer_maps(net, r, d)  # the same (ref_t, test_t) maps serve both neighbours
                value = 0.0
                for side, neighbour in enumerate((idx - 1, idx + 1)):
                    n = to_tensor(ref[neighbour], self.device)
                    value = value + 0.5 * self.pool(maps, flows[side][idx - 1].to(self.device) - self.flow(d, n))
                out[idx] = value.cpu().numpy()
        return out

    def _reference_flows(self, ref: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """flow(ref_t, ref_t-1) and flow(ref_t, ref_t+1) for t = 1..T-2, kept (on the CPU) for the last reference
        clip, per flow kind."""
        key = (self.flow_kind, hashlib.sha1(ref.tobytes()).hexdigest(), ref.shape)
        if _FLOW_CACHE.get(self.flow_kind, {}).get("key") != key:
            back, fwd = [], []
            with torch.inference_mode():
                for s in range(1, len(ref) - 1, self.batch):
                    idx = np.arange(s, min(s + self.batch, len(ref) - 1))
                    mid = to_tensor(ref[idx], self.device)
                    back.append(self.flow(mid, to_tensor(ref[idx - 1], self.device)).cpu())
                    fwd.append(self.flow(mid, to_tensor(ref[idx + 1], self.device)).cpu())
            _FLOW_CACHE[self.flow_kind] = {"key": key, "flows": (torch.cat(back), torch.cat(fwd))}
        return _FLOW_CACHE[self.flow_kind]["flows"]


class FloLPIPSRAFT(_FloBase):
    name = "flolpips_raft"
    variant = ("FloLPIPS as the S2VC release computes it: LPIPS-Alex v0.1 layer maps of (ref_t, test_t) pooled by "
               "|RAFT(ref_t, ref_n) - RAFT(test_t, ref_n)| (2-channel difference resized bilinearly to each layer, "
               "magnitude, normalised to sum 1), summed over the 5 layers, mean of n = t-1 and t+1; torchvision "
               "RAFT-large DEFAULT (C_T_SKHT_V2), 12 iterations, inputs in [-1,1]; frames 2..N-1")
    flow_kind = "raft"
    batch = 2

    @classmethod
    def availability(cls) -> str | None:
        return package_missing("lpips", "lpips") or statuses(ALEXNET, RAFT_LARGE)

    def applicable(self, frames: int, height: int, width: int) -> str | None:
        if min(height, width) < RAFT_MIN_SIDE:
            return f"RAFT-large needs frames of at least {RAFT_MIN_SIDE}x{RAFT_MIN_SIDE}, got {width}x{height}"
        return super().applicable(frames, height, width)

    def network(self):
        return nets.lpips_alex(self.device)

    def flow(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return raft_flow(nets.raft_large(self.device), a, b)

    def pool(self, maps: list[torch.Tensor], delta: torch.Tensor) -> torch.Tensor:
        return pool_release(maps, delta)


class _FloHS(_FloBase):
    flow_kind = "horn_schunck"

    def flow(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return horn_schunck(a, b)

    def pool(self, maps: list[torch.Tensor], delta: torch.Tensor) -> torch.Tensor:
        return pool_full_size(maps, delta)


class FloLPIPSAlex(_FloHS):
    name = "flolpips_alex_hs"
    variant = ("FloLPIPS-style: LPIPS-Alex v0.1 layer maps weighted by |flow(ref)-flow(test)| to ref t-1 and t+1, "
               "flow: weight-free coarse-to-fine Horn-Schunck (not RAFT: see flolpips_raft); first/last frame "
               "excluded")

    @classmethod
    def availability(cls) -> str | None:
        return LPIPSAlex.availability()

    def network(self):
        return nets.lpips_alex(self.device)


class FloSTLPIPS(_FloHS):
    name = "flo_st_lpips_alex_hs"
    variant = ("FloLPIPS-style: ST-LPIPS Alex (shift-tolerant) layer maps weighted by |flow(ref)-flow(test)| to "
               "ref t-1 and t+1, flow: weight-free coarse-to-fine Horn-Schunck; first/last frame excluded")

    @classmethod
    def availability(cls) -> str | None:
        return STLPIPS.availability()

    def network(self):
        return nets.st_lpips_alex(self.device)
