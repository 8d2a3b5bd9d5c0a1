"""FloLPIPS-style temporal distance (S2VC_ARCHITECTURE.md section 5) with a weight-free flow.

For frames t = 1 .. T-2 (0-based; the first and last have no value, NaN): for each neighbour n in {t-1, t+1},
delta = flow(ref_t, ref_n) - flow(test_t, ref_n) with coarse-to-fine Horn-Schunck (comparisons.metrics.flow)
instead of RAFT; each of the 5 LPIPS layer maps (after its linear head) is pooled by a sum weighted by |delta|
resized bilinearly to the layer's size and normalised to sum 1 per image; the 5 pooled values are summed, and the
two neighbours averaged. Two base networks: LPIPS-Alex v0.1 (FloLPIPS proper, needs the AlexNet weights) and
ST-LPIPS Alex (weights bundled; a FloLPIPS-style variant, named as such).
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.nn.functional as F

from comparisons.metrics.base import Metric, to_tensor
from comparisons.metrics.deep import LPIPSAlex, STLPIPS, lpips_alex, st_lpips_alex
from comparisons.metrics.flow import horn_schunck

_FLOW_CACHE: dict = {}


def _unit(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return x / (torch.sqrt((x * x).sum(dim=1, keepdim=True)) + eps)


def layer_maps(net, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """LPIPS per-layer distance maps ``[B,1,h_k,w_k]`` (after the linear heads) for RGB in [0,1]."""
    a, b = net.scaling_layer(2 * x - 1), net.scaling_layer(2 * y - 1)
    fa, fb = net.net.forward(a), net.net.forward(b)
    return [net.lins[k]((_unit(fa[k]) - _unit(fb[k])) ** 2) for k in range(net.L)]


def flow_weighted(net, ref: torch.Tensor, test: torch.Tensor, neighbour: torch.Tensor,
                  ref_flow: torch.Tensor) -> torch.Tensor:
    """FloLPIPS value per frame against one neighbour reference frame; ``ref_flow`` = flow(ref, neighbour)."""
    magnitude = (ref_flow - horn_schunck(test, neighbour)).norm(dim=1, keepdim=True)
    total = torch.zeros(ref.shape[0], dtype=torch.float64)
    for fmap in layer_maps(net, ref, test):
        w = F.interpolate(magnitude, size=fmap.shape[-2:], mode="bilinear", align_corners=False)
        w = w / (w.sum(dim=(2, 3), keepdim=True) + 1e-12)
        total += (w * fmap).sum(dim=(1, 2, 3)).double()
    return total


class _FloBase(Metric):
    higher_is_better = False
    batch = 4

    def network(self):  # the LPIPS-like module
        raise NotImplementedError

    def applicable(self, frames: int, height: int, width: int) -> str | None:
        if frames < 3:
            return f"needs at least 3 frames (first and last have no value), got {frames}"
        return None if min(height, width) >= 32 else f"frames must be at least 32x32, got {width}x{height}"

    def per_frame(self, ref: np.ndarray, test: np.ndarray) -> np.ndarray:
        net = self.network()
        flows = self._reference_flows(ref)
        out = np.full(len(ref), np.nan)
        with torch.no_grad():
            for s in range(1, len(ref) - 1, self.batch):
                idx = np.arange(s, min(s + self.batch, len(ref) - 1))
                r, d = to_tensor(ref[idx]), to_tensor(test[idx])
                back = flow_weighted(net, r, d, to_tensor(ref[idx - 1]), flows[0][idx - 1])
                fwd = flow_weighted(net, r, d, to_tensor(ref[idx + 1]), flows[1][idx - 1])
                out[idx] = (0.5 * (back + fwd)).numpy()
        return out

    def _reference_flows(self, ref: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """flow(ref_t, ref_t-1) and flow(ref_t, ref_t+1) for t = 1..T-2, cached for the last reference clip
        (every codec and rate point is compared with the same one)."""
        key = hashlib.sha1(ref.tobytes()).hexdigest() + str(ref.shape)
        if _FLOW_CACHE.get("key") != key:
            mid = to_tensor(ref[1:-1])
            _FLOW_CACHE.clear()
            _FLOW_CACHE.update(key=key, flows=(horn_schunck(mid, to_tensor(ref[:-2])),
                                               horn_schunck(mid, to_tensor(ref[2:]))))
        return _FLOW_CACHE["flows"]


class FloLPIPSAlex(_FloBase):
    name = "flolpips_alex_hs"
    variant = ("FloLPIPS: LPIPS-Alex v0.1 layer maps weighted by |flow(ref)-flow(test)| to ref t-1 and t+1, "
               "flow: weight-free coarse-to-fine Horn-Schunck (not RAFT); first/last frame excluded")

    @classmethod
    def availability(cls) -> str | None:
        return LPIPSAlex.availability()

    def network(self):
        return lpips_alex()


class FloSTLPIPS(_FloBase):
    name = "flo_st_lpips_alex_hs"
    variant = ("FloLPIPS-style: ST-LPIPS Alex (shift-tolerant) layer maps weighted by |flow(ref)-flow(test)| to "
               "ref t-1 and t+1, flow: weight-free coarse-to-fine Horn-Schunck; first/last frame excluded")

    @classmethod
    def availability(cls) -> str | None:
        return STLPIPS.availability()

    def network(self):
        return st_lpips_alex()
