"""A weight-free optical flow for the temporal metric: coarse-to-fine Horn-Schunck with warping.

Horn & Schunck (1981) on luma (BT.601 weights) in [0,1], blurred by a 5-tap binomial filter; a pyramid of 2x
average pooling down to a 16-px short side (at most 5 levels); at each level the second image is warped by the
current flow (bilinear, border), linearised, and ``iterations`` Jacobi updates of the HS equations are run on the
total flow with smoothness weight ``alpha``. Batched over frames, on the frames' device; deterministic.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

_AVG = torch.tensor([[1.0, 2.0, 1.0], [2.0, 0.0, 2.0], [1.0, 2.0, 1.0]]) / 12.0
_BLUR = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def _conv(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    k = kernel.to(x)[None, None]
    pad = (k.shape[-1] // 2, k.shape[-1] // 2, k.shape[-2] // 2, k.shape[-2] // 2)
    return F.conv2d(F.pad(x, pad, mode="replicate"), k.expand(x.shape[1], 1, -1, -1), groups=x.shape[1])


def _luma(rgb: torch.Tensor) -> torch.Tensor:
    y = (0.299 * rgb[:, 0:1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3])
    return _conv(_conv(y, _BLUR[None]), _BLUR[:, None])


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``image`` at ``x + flow(x)`` (bilinear, border padding)."""
    n, _, h, w = image.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=flow.dtype, device=flow.device),
                            torch.arange(w, dtype=flow.dtype, device=flow.device), indexing="ij")
    gx = 2.0 * (xs + flow[:, 0]) / max(w - 1, 1) - 1.0
    gy = 2.0 * (ys + flow[:, 1]) / max(h - 1, 1) - 1.0
    return F.grid_sample(image, torch.stack([gx, gy], -1), mode="bilinear", padding_mode="border", align_corners=True)


@torch.no_grad()
def horn_schunck(a: torch.Tensor, b: torch.Tensor, alpha: float = 0.05, iterations: int = 30) -> torch.Tensor:
    """Flow ``[N,2,H,W]`` (x, y in pixels) with ``a(p) ~ b(p + flow(p))`` for RGB ``[N,3,H,W]`` in [0,1]."""
    pyramid = [(_luma(a), _luma(b))]
    while min(pyramid[-1][0].shape[-2:]) >= 32 and len(pyramid) < 5:
        pyramid.append(tuple(F.avg_pool2d(x, 2) for x in pyramid[-1]))  # type: ignore[arg-type]
    flow = torch.zeros(a.shape[0], 2, *pyramid[-1][0].shape[-2:], dtype=a.dtype, device=a.device)
    for la, lb in reversed(pyramid):
        if flow.shape[-2:] != la.shape[-2:]:
            scale = torch.tensor([la.shape[-1] / flow.shape[-1], la.shape[-2] / flow.shape[-2]]).view(1, 2, 1, 1).to(flow)
            flow = F.interpolate(flow, size=la.shape[-2:], mode="bilinear", align_corners=False) * scale
        bw = warp(lb, flow)
        mid = 0.5 * (la + bw)
        ix = _conv(mid, torch.tensor([[-0.5, 0.0, 0.5]]))
        iy = _conv(mid, torch.tensor([[-0.5], [0.0], [0.5]]))
        it = bw - la
        den = alpha * alpha + ix * ix + iy * iy
        u0, u = flow, flow
        for _ in range(iterations):
            ub = _conv(u, _AVG)
            d = ub - u0
            step = (ix * d[:, 0:1] + iy * d[:, 1:2] + it) / den
            u = ub - torch.cat([ix * step, iy * step], 1)
        flow = u
    return flow
