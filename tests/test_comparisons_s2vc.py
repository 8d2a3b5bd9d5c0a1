"""The S2VC adapter against the model API (a stand-in model here; the real one is tested by the model package)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from comparisons.codecs.s2vc import S2VCCodec
from tests.test_video_io import clip


class FakeS2VC:
    """Bytes grow with the rate index; decode returns the frames stored in a side table."""

    rate_names = ["q0", "q1", "q2", "q3"]

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.store: dict[bytes, np.ndarray] = {}

    def compress(self, frames: np.ndarray, rate: int, fps: float) -> bytes:
        self.calls.append(rate)
        data = bytes([rate]) * (200 * 2**rate)
        self.store[data] = frames
        return data

    def decompress(self, data: bytes) -> tuple[np.ndarray, float]:
        return self.store[data], 25.0

    def describe(self) -> dict[str, str]:
        return {"preset": "fake"}


def test_picks_highest_rate_under_target_and_caches(tmp_path: Path) -> None:
    model = FakeS2VC()
    codec = S2VCCodec(model=model)
    frames = clip(t=8, h=32, w=32)
    # rate r gives 200 * 2**r bytes over 8 frames at 25 fps = 5 * 2**r kbps: 5, 10, 20, 40
    result = codec.encode(frames, 25.0, 25.0, tmp_path)
    assert result.settings["rate_point"] == "q2" and result.kbps == 20.0 and not result.within_tolerance
    assert Path(result.bitstream_path).read_bytes() == bytes([2]) * 800
    assert np.array_equal(result.decoded, frames) and result.version == "S2VC preset=fake"
    codec.encode(frames, 25.0, 100.0, tmp_path)
    assert model.calls == [0, 1, 2, 3]  # each rate point coded once
    low = codec.encode(frames, 25.0, 1.0, tmp_path)
    assert low.settings["rate_point"] == "q0" and low.within_tolerance is False


def test_availability_names_the_model_package() -> None:
    why = S2VCCodec.availability()
    assert why is None or why.startswith("S2VC model package not available: ")
