"""The S2VC adapter against the model API (a stand-in model here; the real one is tested by the model package)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from comparisons.codecs.base import CodecError
from comparisons.codecs.s2vc import S2VCCodec
from model.codec import FrameResult
from tests.test_video_io import clip


class FakeS2VC:
    """Rate r writes 200 * 2**r bytes (5 * 2**r kbps over 8 frames at 25 fps); its estimate is `estimate_scale`
    times that. The encoder reconstructs the input exactly; decoding returns the frames stored in a side table,
    with frame `corrupt_frame` changed when set."""

    rate_names = ["q0", "q1", "q2", "q3"]

    def __init__(self, estimate_scale: float = 1.0, corrupt_frame: int | None = None,
                 prefix_scale: float = 1.0) -> None:
        self.estimate_scale = estimate_scale
        self.prefix_scale = prefix_scale  # extra factor of estimates made on a prefix (max_frames set)
        self.corrupt_frame = corrupt_frame
        self.estimated: list[int] = []
        self.max_frames: list[int | None] = []
        self.encoded: list[int] = []
        self.decoded = 0
        self.store: dict[bytes, np.ndarray] = {}

    def estimate_kbps(self, frames: np.ndarray, rate: int, fps: float, max_frames: int | None = None) -> float:
        self.estimated.append(rate)
        self.max_frames.append(max_frames)
        scale = self.estimate_scale * (self.prefix_scale if max_frames else 1.0)
        return scale * 200 * 2**rate * 8 * fps / len(frames) / 1000

    def encode_file(self, path: Path, frames: np.ndarray, rate: int, fps: float) -> list[FrameResult]:
        self.encoded.append(rate)
        data = bytes([rate]) * (200 * 2**rate)
        self.store[data] = frames
        Path(path).write_bytes(data)
        return [FrameResult(t, "P", frame.copy(), 8.0 * len(data) / len(frames)) for t, frame in enumerate(frames)]

    def decompress(self, source: Path) -> tuple[np.ndarray, float]:
        self.decoded += 1
        frames = self.store[Path(source).read_bytes()].copy()
        if self.corrupt_frame is not None:
            frames[self.corrupt_frame, 0, 0, 0] ^= 1
        return frames, 25.0

    def describe(self) -> dict[str, str]:
        return {"preset": "fake"}


def test_picks_highest_rate_under_target_from_cached_estimates(tmp_path: Path) -> None:
    model = FakeS2VC()
    codec = S2VCCodec(model=model)
    frames = clip(t=8, h=32, w=32)
    result = codec.encode(frames, 25.0, 25.0, tmp_path)
    assert result.settings["rate_point"] == "q2" and result.kbps == 20.0 and not result.within_tolerance
    assert model.estimated == [1, 2, 3]  # bisection: q0 need not be estimated
    assert Path(result.bitstream_path).read_bytes() == bytes([2]) * 800
    assert np.array_equal(result.decoded, frames) and result.version == "S2VC preset=fake"
    assert model.encoded == [2] and model.decoded == 1  # one real encode, verified by one real decode
    assert result.decoder_check == "bit-exact" and result.decode_seconds is not None
    assert codec.encode(frames, 25.0, 100.0, tmp_path).settings["rate_point"] == "q3"
    low = codec.encode(frames, 25.0, 1.0, tmp_path)
    assert low.settings["rate_point"] == "q0" and low.within_tolerance is False
    assert model.estimated == [1, 2, 3, 0]  # each rate point estimated once per clip
    assert codec.encode(frames, 25.0, 7.0, tmp_path).settings["rate_point"] == "q0"


def test_steps_down_when_the_real_file_exceeds_the_target(tmp_path: Path) -> None:
    model = FakeS2VC(estimate_scale=0.9)  # estimates 10% low: q2 looks like 18 kbps but is 20
    result = S2VCCodec(model=model).encode(clip(t=8, h=32, w=32), 25.0, 19.0, tmp_path)
    assert model.encoded == [2, 1] and result.settings["rate_point"] == "q1" and result.kbps == 10.0
    assert [t["kbps"] for t in result.trials if "kbps" in t] == [20.0, 10.0]


def test_rate_points_are_estimated_on_a_prefix_of_the_clip(tmp_path: Path) -> None:
    model = FakeS2VC()
    codec = S2VCCodec(model=model, estimate_frames=5)
    codec.encode(clip(t=8, h=32, w=32), 25.0, 25.0, tmp_path)
    assert model.max_frames == [5, 5, 5] and codec.settings()["estimate_frames"] == 5
    assert "first 5 frames" in codec.settings()["rate_control"]
    assert S2VCCodec(model=model).estimate_frames == 8
    with pytest.raises(CodecError, match="at least 3"):
        S2VCCodec(model=model, estimate_frames=2)


def test_decoder_check_can_run_later_and_catches_a_mismatch(tmp_path: Path) -> None:
    from comparisons.runner import measure

    frames = clip(t=8, h=32, w=32)
    model = FakeS2VC(corrupt_frame=5)
    codec = S2VCCodec(model=model, verify_decode=False)
    result = codec.encode(frames, 25.0, 25.0, tmp_path)
    assert model.decoded == 0 and np.array_equal(result.decoded, frames)  # the encoder's reconstructions
    assert result.decode_seconds is None and result.decoder_check == "pending"  # never a made-up time
    record = measure(frames, result, ["psnr_rgb"])
    assert record["decode_seconds"] is None and record["decoder_check"] == "pending"
    with pytest.raises(CodecError, match="differs from the encoder's reconstruction at frame 5 "):
        codec.verify(result)
    assert result.decode_seconds is None and result.decoder_check == "pending"
    with pytest.raises(CodecError, match="at frame 5 "):
        S2VCCodec(model=model).encode(frames, 25.0, 25.0, tmp_path)  # verified by default
    model.corrupt_frame = None
    seconds = codec.verify(result)
    assert result.decode_seconds == seconds >= 0 and result.decoder_check == "bit-exact"


def test_availability_names_the_model_package() -> None:
    why = S2VCCodec.availability()
    assert why is None or why.startswith("S2VC model package not available: ")


def test_matched_run_codes_baselines_at_s2vc_real_bitrates(tmp_path: Path) -> None:
    from comparisons.__main__ import _run_matched
    from comparisons.codecs import get_codec

    frames = clip(t=8, h=64, w=64)
    s2vc = S2VCCodec(model=FakeS2VC())
    x265 = get_codec("x265", preset="ultrafast")
    results = _run_matched(frames, 25.0, [s2vc, x265], tmp_path, ["psnr_rgb"], {"path": "synthetic"}, "cpu")
    s2vc_kbps = [r["kbps"] for r in results["records"] if r["codec"] == "s2vc"]
    x265_targets = [r["target_kbps"] for r in results["records"] if r["codec"] == "x265"]
    assert s2vc_kbps == [5.0, 10.0, 20.0, 40.0]  # every rate point, each selected exactly
    assert x265_targets == s2vc_kbps
    assert (tmp_path / "results.json").is_file()


def test_matched_run_codes_every_rate_point_when_prefix_estimates_are_low(tmp_path: Path) -> None:
    from comparisons.__main__ import _run_matched

    model = FakeS2VC(prefix_scale=0.9)  # prefix estimates 10% under the real files: they would select q(r-1)
    s2vc = S2VCCodec(model=model, verify_decode=False)
    results = _run_matched(clip(t=8, h=64, w=64), 25.0, [s2vc], tmp_path, ["psnr_rgb"], {"path": "synthetic"}, "cpu")
    assert [r["settings"]["rate_index"] for r in results["records"]] == [0, 1, 2, 3]
    assert set(model.max_frames) == {None} and model.encoded == [0, 1, 2, 3]


def test_bd_curve_counts_repeated_encodes_once() -> None:
    from comparisons.bdrate import curve

    rec = lambda kbps, q: {"codec": "x265", "kbps": kbps, "metrics": {"psnr_rgb": q}}  # noqa: E731
    rates, quality = curve({"records": [rec(62.0, 25.6), rec(62.0, 25.6), rec(105.0, 27.2)]}, "x265", "psnr_rgb")
    assert rates.tolist() == [62.0, 105.0] and quality.tolist() == [25.6, 27.2]


def test_result_carries_the_release_style_rate(tmp_path: Path) -> None:
    """The clip's rate as the official release reports it (mean of the frames' figures) goes beside the real bpp
    into the result, its record and the app's table; a model without the figure gives None."""
    from app.handlers import results_table
    from comparisons.runner import measure

    class WithRelease(FakeS2VC):
        def encode_file(self, path: Path, frames: np.ndarray, rate: int, fps: float) -> list[FrameResult]:
            return [dataclasses.replace(r, release_bpp=0.25 * r.index)
                    for r in super().encode_file(path, frames, rate, fps)]

    frames = clip(8, 48, 64)
    result = S2VCCodec(model=WithRelease()).encode(frames, 25.0, 1000.0, tmp_path)
    assert result.release_bpp == pytest.approx(0.25 * 3.5)  # frames 0..7
    record = measure(frames, result, [])
    assert record["release_bpp"] == result.release_bpp
    table = results_table({"results": {"records": [record]}})
    assert table["bpp (release-style)"].tolist() == [round(0.25 * 3.5, 5)]
    assert S2VCCodec(model=FakeS2VC()).encode(frames, 25.0, 1000.0, tmp_path).release_bpp is None


def test_a_decoder_that_stops_is_a_codec_error(tmp_path: Path) -> None:
    from model.errors import DecoderMismatchError

    class Diverging(FakeS2VC):
        def decompress(self, source: Path) -> tuple[np.ndarray, float]:
            raise DecoderMismatchError("frame 2: the decoded picture differs from the encoder's")

    with pytest.raises(CodecError, match="s2vc: the decoder failed on .*frame 2: the decoded picture differs"):
        S2VCCodec(model=Diverging()).encode(clip(8, 48, 64), 25.0, 1000.0, tmp_path)
