"""How a stream was coded, where that decides whether another machine can decode it bit for bit.

The decoder must rebuild the encoder's prior parameters exactly, so it must compute as the encoder did:
* device kind (cpu / cuda) and precision mode (fp32, or the release's bf16 I-frame on CUDA with TF32): a stream
  made one way cannot be decoded the other way (measured: a CUDA stream on a CPU fails in the entropy decoder);
* the kernels that ran: the CPU instruction set torch dispatched to (oneDNN picks different kernels for AVX2 and
  AVX-512) or the GPU architecture (sm_XY), the torch version, and the CPU thread count of the coding networks.
  These may or may not change the rounding; the per-frame picture check in the stream settles it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

FP32 = "fp32"
BF16_IFRAME = "bf16-iframe+tf32"  # CUDA: the I-frame (its VAE decode included) under bf16 autocast, P-frames fp32
PRECISIONS = (FP32, BF16_IFRAME)


@dataclass(frozen=True)
class CodingEnvironment:
    """Device kind, precision mode, kernels (CPU ISA or GPU sm_XY), torch version, CPU coding threads (0: GPU)."""

    device: str
    precision: str
    kernels: str
    torch: str
    threads: int

    def __post_init__(self) -> None:
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"unknown device kind {self.device!r} (expected cpu or cuda)")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision mode {self.precision!r} (expected one of {', '.join(PRECISIONS)})")
        if not 0 <= self.threads <= 255:
            raise ValueError(f"coding thread count {self.threads} outside 0..255")

    def describe(self) -> str:
        threads = f", {self.threads} thread{'s' * (self.threads != 1)}" if self.device == "cpu" else ""
        return f"{self.device} ({self.kernels}{threads}), {self.precision}, torch {self.torch}"

    def must_match(self, other: "CodingEnvironment") -> list[str]:
        """What differs and makes decoding impossible: device kind, precision mode."""
        return [name for name in ("device", "precision") if getattr(self, name) != getattr(other, name)]

    def may_matter(self, other: "CodingEnvironment") -> list[str]:
        """What differs and may change the rounding: kernels, torch version, threads."""
        return [name for name in ("kernels", "torch", "threads") if getattr(self, name) != getattr(other, name)]


def this_machine(device: torch.device, threads: int) -> CodingEnvironment:
    """The environment a model on `device` codes in here (`threads`: the pinned CPU coding thread count)."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return CodingEnvironment("cuda", BF16_IFRAME, f"sm_{major}{minor}", torch.__version__, 0)
    if device.type != "cpu":
        raise ValueError(f"S2VC codes on cpu or cuda, not {device.type}")
    return CodingEnvironment("cpu", FP32, torch.backends.cpu.get_cpu_capability(), torch.__version__, threads)
