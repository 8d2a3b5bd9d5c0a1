"""Baselines on a tiny synthetic clip: real bitstreams near the target bitrate, real decodes, recorded commands."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from comparisons.codecs import CODECS, CodecError, get_codec
from comparisons.codecs.ratesearch import search_rate
from tests.test_video_io import clip

FAST = {"x265": "ultrafast", "vvenc": "faster", "svtav1": "12", "x264": "ultrafast"}


@pytest.mark.parametrize("name", list(FAST))
def test_baseline_hits_target(tmp_path: Path, name: str) -> None:
    codec = get_codec(name, preset=FAST[name])
    if codec.availability():
        pytest.skip(codec.availability())
    frames = clip(t=8, h=64, w=64)
    result = codec.encode(frames, 25.0, 150.0, tmp_path)
    assert result.within_tolerance, result.trials
    assert abs(result.kbps / 150.0 - 1) <= 0.05
    assert Path(result.bitstream_path).stat().st_size * 8 == result.bits
    assert result.decoded.shape == frames.shape and result.decoded.dtype == np.uint8
    mse = ((result.decoded.astype(float) - frames) ** 2).mean()
    assert 10 * np.log10(255**2 / mse) > 25
    assert result.command.startswith("ffmpeg ") and FAST[name] in result.command
    assert result.version.startswith(codec.encoder) and "unknown" not in result.version
    assert result.settings["preset"] == FAST[name] and "qp_adaptation" in result.settings
    assert list(tmp_path.iterdir()) == [Path(result.bitstream_path)]  # trials and raw input cleaned up


def test_odd_size_and_intra_period(tmp_path: Path) -> None:
    codec = get_codec("x264", preset="ultrafast", intra_period=4)
    frames = clip(t=8, h=33, w=45)
    result = codec.encode(frames, 25.0, 200.0, tmp_path)
    assert result.decoded.shape == frames.shape
    assert "keyint=4" in result.command and result.settings["intra_period"] == 4


def test_bad_input_messages(tmp_path: Path) -> None:
    with pytest.raises(CodecError, match="unknown codec"):
        get_codec("h266")
    with pytest.raises(CodecError, match="uint8"):
        get_codec("x264").encode(np.zeros((2, 8, 8, 3)), 25, 100, tmp_path)
    with pytest.raises(CodecError, match="> 0 kbps"):
        get_codec("x264").encode(clip(t=2), 25, 0, tmp_path)
    with pytest.raises(ValueError, match="vvenc preset"):
        get_codec("vvenc", preset="veryslow")
    assert set(CODECS) == {"s2vc", "x265", "vvenc", "svtav1", "x264"}


def test_search_rate_on_a_model_curve() -> None:
    calls: list[float] = []

    def encode(crf: float) -> float:
        calls.append(crf)
        return 1000.0 * np.exp(-0.12 * crf)

    best, trials = search_rate(encode, 50.0, 32.0, -0.11, 0.0, 51.0, 0.05)
    assert abs(best.kbps / 50 - 1) <= 0.025 and len(trials) <= 4
    best, trials = search_rate(encode, 1.0, 32.0, -0.11, 0.0, 51.0, 0.05)  # below the encoder's floor
    assert best.x == 51.0 and best.kbps > 1.0
