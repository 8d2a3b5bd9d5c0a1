"""The tiny preset over real frames: 5 frames of BasketballPass at 416x240 with a reset inside."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from model import S2VC, tiny
from model.dpb import frame_type
from model.video_io import read_video


@pytest.fixture(scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_frame_type_rule_matches_the_release() -> None:
    kinds = [frame_type(t, 32) for t in range(70)]
    assert kinds[0] == "I"
    assert [t for t, k in enumerate(kinds) if k == "reset"] == [1, 33, 65]


def test_tiny_reconstructs_basketball_with_a_reset(basketball_dir: Path, one_thread) -> None:
    frames, fps = read_video(basketball_dir, frames=5, fps=50)
    assert frames.shape == (5, 240, 416, 3) and fps == 50
    torch.manual_seed(0)
    model = S2VC(tiny().replace(reset_interval=2)).eval()
    results = list(model.iter_reconstruct(frames, rate=1))
    assert [r.frame_type for r in results] == ["I", "reset", "P", "reset", "P"]
    for r in results:
        assert r.frame.shape == (240, 416, 3) and r.frame.dtype == np.uint8
        assert r.bits > 0
    # the I-frame carries its 14-bit FSQ indices: at least 14 bits per 64x64 block of the padded 448x256 frame
    assert results[0].bits >= 14 * (256 // 64) * (448 // 64)


def test_stream_decodes_whatever_thread_count_each_side_uses() -> None:
    torch.manual_seed(0)
    model = S2VC(tiny().replace(reset_interval=2)).eval()
    frames = np.random.default_rng(0).integers(0, 256, (3, 64, 96, 3), dtype=np.uint8)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        header, records = model.iter_encode(frames, rate=2, fps=25.0)
        encoded = [(record, result.frame) for record, result in records]
        data = model.compress(frames, rate=2, fps=25.0)
        torch.set_num_threads(1)
        decoded, _ = model.decompress(data)
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(decoded, np.stack([frame for _, frame in encoded]))
    assert torch.get_num_threads() == threads
