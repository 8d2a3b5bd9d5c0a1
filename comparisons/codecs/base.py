"""The Codec interface every encoder implements (S2VC included) and the result of one encode."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np


PENDING = "pending"  # decoder_check of a result whose frames the real decoder has not reproduced yet
BIT_EXACT = "bit-exact"  # decoder_check once the real decoder reproduced every frame exactly


class CodecError(RuntimeError):
    """An encoder or decoder failed or cannot run; one-line message."""


@dataclass
class EncodeResult:
    """One real encode: the bitstream on disk, what it cost, and the decoded RGB frames."""

    codec: str  # registry name, e.g. "x265"
    label: str  # display name, e.g. "HEVC (x265)"
    version: str  # encoder (and wrapper) version
    settings: dict[str, Any]  # preset, intra period, GOP, bit depth, colour conversion, rate control, ...
    command: str  # exact command line(s) of the final encode ("; " between passes)
    bitstream_path: str
    bits: int  # 8 x size of the bitstream file
    frames: int
    fps: float
    width: int
    height: int
    target_kbps: float | None
    within_tolerance: bool | None  # |kbps/target - 1| <= tolerance; None without a target
    trials: list[dict[str, float]]  # the rate search: knob value and real kbps of each trial encode
    encode_seconds: float  # wall time of the final encode (all its passes), not the search
    decode_seconds: float | None  # wall time of the real decoder; None while its run is pending
    decoded: np.ndarray = field(repr=False)  # uint8 RGB [T,H,W,3] at the input size
    # None: `decoded` is the real decoder's output; else whether the real decoder reproduced the encoder's
    # reconstructions in `decoded` (PENDING until checked, then BIT_EXACT)
    decoder_check: str | None = None
    # S2VC only: the rate as the official S2VC release reports it (model/release_rate.py), beside `bpp`
    release_bpp: float | None = None

    @property
    def kbps(self) -> float:
        return self.bits * self.fps / self.frames / 1000.0

    @property
    def bpp(self) -> float:
        return self.bits / (self.frames * self.width * self.height)


class Codec(ABC):
    """An encoder/decoder pair. `encode` makes a real bitstream near `target_kbps` and decodes it back."""

    name: ClassVar[str]
    label: ClassVar[str]
    traditional: ClassVar[bool] = True  # plotted dashed

    @classmethod
    @abstractmethod
    def availability(cls) -> str | None:
        """None when the codec can run here, else why not (one line)."""

    @abstractmethod
    def version(self) -> str:
        """Encoder name and version as the encoder reports it."""

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """The coding settings that go into every result."""

    @abstractmethod
    def encode(self, frames: np.ndarray, fps: float, target_kbps: float, workdir: str | Path) -> EncodeResult:
        """Encode uint8 RGB ``[T,H,W,3]`` at ``fps`` near ``target_kbps``; bitstream files go under ``workdir``."""


def check_frames(frames: np.ndarray) -> np.ndarray:
    a = np.asarray(frames)
    if a.ndim != 4 or a.shape[-1] != 3 or a.dtype != np.uint8 or len(a) == 0:
        raise CodecError(f"frames must be uint8 [T,H,W,3] with T >= 1, got {a.dtype} {list(a.shape)}")
    return a
