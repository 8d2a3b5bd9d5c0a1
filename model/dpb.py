"""The decoded-picture buffer: what one coded frame leaves for the next (S2VC_ARCHITECTURE.md §1.5, §1.6).

The buffer lives in the codec, is never mutated in place by the networks, and encoder and decoder keep one each.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

FRAME_I, FRAME_P, FRAME_RESET = "I", "P", "reset"


def frame_type(index: int, reset_interval: int) -> str:
    """Frame 0 is the I-frame; P-frame t is a reset frame when (t - 1) % reset_interval == 0."""
    if index < 0:
        raise ValueError(f"frame index must be >= 0, got {index}")
    if reset_interval < 1:
        raise ValueError(f"reset interval must be >= 1, got {reset_interval}")
    if index == 0:
        return FRAME_I
    return FRAME_RESET if (index - 1) % reset_interval == 0 else FRAME_P


@dataclass
class DecodedPictureBuffer:
    """References for the next frame.

    ref_latent: x0 latent of the last coded frame (feeds `feature_adaptor_i` on reset frames).
    ref_feature: the P-frame decoder feature of the last P-frame (feeds `feature_adaptor_p`); None after an I-frame.
    ref_unet_features: U-Net down-block outputs 0..2 of the last frame (Temporal Consistency Guidance); never reset.
    """

    reset_interval: int = 32
    frame_index: int = 0
    ref_latent: torch.Tensor | None = None
    ref_feature: torch.Tensor | None = None
    ref_unet_features: list[torch.Tensor] = field(default_factory=list)

    def next_frame_type(self) -> str:
        return frame_type(self.frame_index, self.reset_interval)

    def update(self, latent: torch.Tensor, feature: torch.Tensor | None, unet_features: list[torch.Tensor]) -> None:
        """Store the just-coded frame's references and advance to the next frame index."""
        self.ref_latent = latent
        self.ref_feature = feature
        self.ref_unet_features = list(unet_features)
        self.frame_index += 1

    def reset(self) -> None:
        """Forget everything; the next frame is an I-frame."""
        self.frame_index = 0
        self.ref_latent = None
        self.ref_feature = None
        self.ref_unet_features = []
