"""The rate as the official release reports it: its I-frame formula, the padded area, and the clip mean."""
from __future__ import annotations

import math

import pytest
import torch

from model.entropy_models import release_bits
from model.release_rate import clip_release_bpp, release_bpp


def test_release_formula_values() -> None:
    q = torch.tensor([0.0, 0.0, 3.0, 2.0])
    scales = torch.tensor([1.0, 1e-9, 1e-9, 2.0])
    p_zero = math.erf(0.5 / math.sqrt(2))  # Phi(1/2) - Phi(-1/2)
    p_two = (math.erf(1.25 / math.sqrt(2)) - math.erf(0.75 / math.sqrt(2))) / 2  # q = 2, s = 2
    expected = [-math.log2(p_zero + 1e-5), 0.0, -math.log2(1e-5), -math.log2(p_two + 1e-5)]
    # s clamped at 1e-5: q = 0 gets p = 1 (-log2(1 + 1e-5) < 0, floored at 0); q = 3 gets p = 0 (16.6 bits)
    assert release_bits(q, scales).tolist() == pytest.approx(expected, rel=1e-5)


def test_release_formula_has_no_support_limit() -> None:
    """Unlike the coder's leaky 24-bit model, the release's estimate is not capped at 24 bits nor limited to
    [-128, 127]: any symbol far in the tail costs -log2(1e-5) bits."""
    bits = release_bits(torch.tensor([500.0, -500.0]), torch.tensor([1.0, 1.0]))
    assert bits.tolist() == pytest.approx([-math.log2(1e-5)] * 2)


def test_release_bpp_areas() -> None:
    # the I-frame over the padded area (70x90 -> 128x128), P-frames' payload bits over the original area
    assert release_bpp("I", 999, 16384.0, 90, 70) == 1.0
    assert release_bpp("reset", 100, 16384.0, 90, 70) == 800 / 6300
    assert release_bpp("P", 100, 0.0, 128, 64) == 800 / (128 * 64)
    assert clip_release_bpp([1.0, 0.5, 0.0]) == 0.5
    with pytest.raises(ValueError, match="at least one frame"):
        clip_release_bpp([])
