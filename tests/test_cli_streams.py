"""`python -m model`: output into a closed pipe, single images, and how many frames `--kbps` estimates on."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model import cli
from model.video_io import VideoReadError, read_video
from tests.test_codec import clip, encode, tiny_model


def test_info_into_a_closed_pipe_ends_quietly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture) -> None:
    stream = tmp_path / "clip.s2vc"
    stream.write_bytes(encode(tiny_model(), clip(3, 64, 96, seed=3), 1)[0])
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| head` has read what it wanted and gone
    with open(write_end, "w", buffering=1) as closed_pipe:
        monkeypatch.setattr(sys, "stdout", closed_pipe)
        status = cli.main(["info", str(stream), "--json"])
        monkeypatch.undo()
    assert status == 141 and capsys.readouterr().err == ""  # no "error: Broken pipe"


def test_a_single_image_needs_a_frame_rate(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    still = tmp_path / "still.png"
    Image.fromarray(clip(1, 32, 48, seed=1)[0]).save(still)
    assert cli.main(["encode", str(still), "-o", str(tmp_path / "x.s2vc")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {still}: a single image stores no frame rate: pass --fps F"
    with pytest.raises(VideoReadError, match="frame rate is not stored"):
        read_video(still)
    frames, fps = read_video(still, fps=10)
    assert frames.shape == (1, 32, 48, 3) and fps == 10.0


class _Estimates:
    """Records how many frames each rate point's estimate codes; estimates grow with the rate point."""

    rate_names = ["q0", "q1", "q2", "q3"]

    def __init__(self) -> None:
        self.coded: list[int | None] = []

    def estimate_kbps(self, frames: np.ndarray, rate: int, fps: float, max_frames: int | None = None) -> float:
        self.coded.append(max_frames)
        return 50.0 * (rate + 1)


@pytest.mark.parametrize("extra, frames, coded", [([], 40, 16), ([], 10, None), (["--estimate-frames", "0"], 40, None),
                                                   (["--estimate-frames", "5"], 40, 5)])
def test_kbps_estimates_on_the_first_frames_of_a_long_clip(extra: list[str], frames: int, coded: int | None,
                                                           capsys: pytest.CaptureFixture) -> None:
    model = _Estimates()
    args = cli.build_parser().parse_args(["encode", "in", "-o", "out", "--kbps", "120", *extra])
    assert cli._pick_rate(model, np.zeros((frames, 8, 8, 3), np.uint8), 25.0, args) == 1
    assert model.coded == [coded] * 4


def test_too_few_estimate_frames_is_a_usage_error() -> None:
    args = cli.build_parser().parse_args(["encode", "in", "-o", "out", "--kbps", "120", "--estimate-frames", "2"])
    with pytest.raises(cli.UsageError, match="--estimate-frames 2: at least 3"):
        cli._pick_rate(_Estimates(), np.zeros((40, 8, 8, 3), np.uint8), 25.0, args)
