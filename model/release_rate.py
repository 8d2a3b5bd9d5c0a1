"""The rate as the official release reports it, a second figure beside the project's real stream bits.

The release (S2VC_ARCHITECTURE.md §4.4) reports per frame: for the I-frame, the *estimated* y bits only
(`entropy_models.release_bits`: raw scales clamped at 1e-5, -log2(p + 1e-5) per symbol; FSQ indices and headers
excluded) divided by the *padded* area (sides rounded up to a multiple of 64); for a P-frame, the bytes of its
entropy-coded stream over the original area. A clip's figure is the mean of its frames' figures. The P-frame
figure here counts this project's range-coded payload, not the release's rANS bytes (the same models, another coder).
"""
from __future__ import annotations

from collections.abc import Iterable

RELEASE_PAD = 64  # the release pads every side to a multiple of 64


def release_bpp(frame_type: str, payload_bytes: int, iframe_bits: float, width: int, height: int) -> float:
    """One frame's rate as the release reports it (`iframe_bits`: the release's estimate, used for "I" only)."""
    if frame_type == "I":
        padded = -(-width // RELEASE_PAD) * RELEASE_PAD * (-(-height // RELEASE_PAD) * RELEASE_PAD)
        return iframe_bits / padded
    return 8.0 * payload_bytes / (width * height)


def clip_release_bpp(per_frame: Iterable[float]) -> float:
    """A clip's rate as the release reports it: the mean of its frames' figures."""
    values = list(per_frame)
    if not values:
        raise ValueError("a clip's release-style bpp needs at least one frame")
    return sum(values) / len(values)
