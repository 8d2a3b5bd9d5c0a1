"""model.video_io: round trips, trimming, 10-bit y4m, raw yuv, odd sizes, one frame and clear errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model.video_io import (VideoReadError, VideoWriteError, probe_video, raw_name_hints, read_video, rgb_to_yuv420,
                            write_mp4, write_png_folder, write_video, write_y4m, yuv420_to_rgb)


def clip(t: int = 6, h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """Smooth moving gradients plus mild noise: compresses like video, survives 4:2:0 well."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = [np.stack([128 + 90 * np.sin((xx + 3 * i) / 9), 128 + 90 * np.cos((yy - 2 * i) / 7),
                        128 + 60 * np.sin((xx + yy + i) / 13)], -1) for i in range(t)]
    return np.clip(np.stack(frames) + rng.normal(0, 3, (t, h, w, 3)), 0, 255).astype(np.uint8)


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


def test_yuv_conversion_round_trip_close_and_grey_exact() -> None:
    frames = clip()
    back = yuv420_to_rgb(*rgb_to_yuv420(frames))
    assert back.shape == frames.shape and mad(back, frames) < 2.5
    grey = np.full((1, 4, 4, 3), 128, np.uint8)
    y, cb, cr = rgb_to_yuv420(grey)
    assert y[0, 0, 0] == 126 and cb[0, 0, 0] == 128 and cr[0, 0, 0] == 128  # 16 + 219 * 128/255
    assert np.array_equal(yuv420_to_rgb(y, cb, cr), grey)


def test_png_folder_round_trip_and_trim(tmp_path: Path) -> None:
    frames = clip(t=5)
    write_png_folder(tmp_path / "png", frames)
    got, fps = read_video(tmp_path / "png", fps=25)
    assert np.array_equal(got, frames) and fps == 25
    part, _ = read_video(tmp_path / "png", start=2, frames=2, fps=25)
    assert np.array_equal(part, frames[2:4])
    with pytest.raises(VideoReadError, match="pass fps"):
        read_video(tmp_path / "png")


@pytest.mark.parametrize("size", [(64, 48), (33, 17)])
def test_y4m_round_trip_odd_sizes(tmp_path: Path, size: tuple[int, int]) -> None:
    w, h = size
    frames = clip(t=4, h=h, w=w)
    write_y4m(tmp_path / "a.y4m", frames, 30)
    got, fps = read_video(tmp_path / "a.y4m")
    assert got.shape == frames.shape and fps == 30 and mad(got, frames) < 3
    part, _ = read_video(tmp_path / "a.y4m", start=1, frames=2)
    assert np.array_equal(part, got[1:3])
    assert probe_video(tmp_path / "a.y4m").frames == 4


def test_y4m_10bit(tmp_path: Path) -> None:
    frames = clip(t=3, h=18, w=22)
    planes = rgb_to_yuv420(frames, bits=10)
    body = b"".join(b"FRAME\n" + b"".join(p[i].astype("<u2").tobytes() for p in planes) for i in range(3))
    (tmp_path / "a.y4m").write_bytes(b"YUV4MPEG2 W22 H18 F50:1 Ip A1:1 C420p10 XYSCSS=420P10\n" + body)
    got, fps = read_video(tmp_path / "a.y4m")
    assert got.shape == frames.shape and fps == 50 and mad(got, frames) < 2.5


def test_raw_yuv(tmp_path: Path) -> None:
    frames = clip(t=3, h=17, w=31)
    planes = rgb_to_yuv420(frames)
    (tmp_path / "a.yuv").write_bytes(b"".join(b"".join(p[i].tobytes() for p in planes) for i in range(3)))
    got, fps = read_video(tmp_path / "a.yuv", size=(31, 17), fps=24, start=1)
    assert np.array_equal(got, yuv420_to_rgb(*planes)[1:]) and fps == 24
    with pytest.raises(VideoReadError, match="not a whole number"):
        read_video(tmp_path / "a.yuv", size=(32, 17), fps=24)
    with pytest.raises(VideoReadError, match="needs its size"):
        read_video(tmp_path / "a.yuv", fps=24)


@pytest.mark.parametrize("name, size, fps", [("BasketballPass_416x240_50.yuv", (416, 240), 50.0),
                                             ("Beauty_1920x1080_120fps_420_8bit_YUV.yuv", (1920, 1080), 120.0),
                                             ("Clip_1280x720_29.97.yuv", (1280, 720), 29.97),
                                             ("cars_320x240.i420", (320, 240), None),
                                             ("seq_320x240_30f.yuv", (320, 240), None), ("clip.yuv", None, None)])
def test_raw_name_hints(name: str, size: tuple[int, int] | None, fps: float | None) -> None:
    assert raw_name_hints(name) == (size, fps)


def test_raw_size_and_fps_from_the_name(tmp_path: Path) -> None:
    frames = clip(t=2, h=17, w=31)
    planes = rgb_to_yuv420(frames)
    data = b"".join(b"".join(p[i].tobytes() for p in planes) for i in range(2))
    (tmp_path / "Seq_31x17_50.yuv").write_bytes(data)
    (tmp_path / "seq_31x17.i420").write_bytes(data)
    got, fps = read_video(tmp_path / "Seq_31x17_50.yuv")
    assert np.array_equal(got, yuv420_to_rgb(*planes)) and fps == 50
    assert read_video(tmp_path / "Seq_31x17_50.yuv", fps=25)[1] == 25  # a given fps wins over the name
    info = probe_video(tmp_path / "seq_31x17.i420", fps=30)
    assert (info.width, info.height, info.frames, info.fps) == (31, 17, 2, 30)
    with pytest.raises(VideoReadError, match="pass fps"):
        read_video(tmp_path / "seq_31x17.i420")


def test_mp4_round_trip_seek_and_one_frame(tmp_path: Path) -> None:
    frames = clip(t=12)
    write_video(tmp_path / "a.mp4", frames, 25)
    got, fps = read_video(tmp_path / "a.mp4")
    assert got.shape == frames.shape and fps == 25 and mad(got, frames) < 4
    part, _ = read_video(tmp_path / "a.mp4", start=7, frames=3)
    assert np.array_equal(part, got[7:10])
    info = probe_video(tmp_path / "a.mp4")
    assert (info.width, info.height, info.frames, info.codec) == (64, 48, 12, "h264")
    write_mp4(tmp_path / "one.mp4", frames[:1], 25)
    assert read_video(tmp_path / "one.mp4")[0].shape == (1, 48, 64, 3)


def test_mp4_odd_size_is_padded_to_even(tmp_path: Path) -> None:
    write_mp4(tmp_path / "odd.mp4", clip(t=2, h=17, w=33), 25)
    assert read_video(tmp_path / "odd.mp4")[0].shape == (2, 18, 34, 3)


def test_error_messages(tmp_path: Path) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("this is not a video\n" * 50)
    write_mp4(tmp_path / "full.mp4", clip(t=12), 25)
    data = (tmp_path / "full.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) * 6 // 10])
    write_y4m(tmp_path / "full.y4m", clip(t=3), 25)
    (tmp_path / "cut.y4m").write_bytes((tmp_path / "full.y4m").read_bytes()[:-100])
    cases = {"empty.mp4": "empty", "text.mp4": "not a readable video", "cut.mp4": "truncated",
             "cut.y4m": "truncated", "missing.mp4": "no such file"}
    for name, reason in cases.items():
        with pytest.raises(VideoReadError, match=reason) as info:
            read_video(tmp_path / name)
        assert name in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(VideoReadError, match="start"):
        read_video(tmp_path / "full.y4m", start=5)
    with pytest.raises(VideoWriteError, match="uint8"):
        write_video(tmp_path / "x.mp4", np.zeros((2, 8, 8, 3), np.float32), 25)
