"""`python -m model`: encode -> info -> decode, rate picking, and many bad arguments and corrupted .s2vc files, each
ending in one `error:` line and a non-zero exit (in-process for speed; a few as real subprocesses)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from model import S2VC, cli
from model.video_io import read_video, rgb_to_yuv420, write_png_folder
from tests.test_codec import clip, encode, rewrite, tiny_model
from tests.test_entropy_models import single_thread  # noqa: F401 (autouse)

REPO = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


@pytest.fixture(scope="module")
def model() -> S2VC:
    return tiny_model()


@pytest.fixture(scope="module")
def checkpoint(model: S2VC, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return model.save_pretrained(tmp_path_factory.mktemp("ckpt") / "tiny")


@pytest.fixture
def fast_load(model: S2VC, checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hand the CLI the in-memory model instead of loading `checkpoint` again (a load takes seconds here)."""
    real = cli.load_model

    def load(path, preset=None, device="cpu"):
        return model if path is not None and Path(path) == checkpoint else real(path, preset, device)

    monkeypatch.setattr(cli, "load_model", load)


@pytest.fixture(scope="module")
def stream_file(model: S2VC, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 3-frame .s2vc file (64x96, rate 1)."""
    path = tmp_path_factory.mktemp("stream") / "clip.s2vc"
    path.write_bytes(encode(model, clip(3, 64, 96, seed=3), 1)[0])
    return path


def run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line_error(status: int, err: str) -> None:
    assert status in (1, 2), err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err


# ----------------------------------------------------------------------------------------------- happy paths
def test_encode_info_decode(model, checkpoint, fast_load, monkeypatch, tmp_path, capsys):
    frames = clip(3, 70, 90, seed=4)  # odd size
    write_png_folder(tmp_path / "in", frames)
    out = tmp_path / "clip.s2vc"
    status, text, err = run(["encode", tmp_path / "in", "-o", out, "--checkpoint", checkpoint, "--fps", "25",
                             "--rate", "q2", "--frames", "2", "--start", "1", "--device", "cpu", "--threads", "1"], capsys)
    assert status == 0, err
    assert "read 2 frames 90x70 at 25 fps" in text and "rate 2 (q2)" in text

    status, text, _ = run(["info", out, "--json"], capsys)
    info = json.loads(text)
    assert status == 0 and info["bytes"] == out.stat().st_size
    assert [f["type"] for f in info["frames"]] == ["I", "reset"]
    assert info["header"]["width"] == 90 and info["header"]["rate_name"] == "q2"
    status, text, _ = run(["info", out], capsys)
    assert status == 0 and "reset" in text and "kbps" in text

    monkeypatch.undo()  # decode through the real loader: the saved checkpoint must reproduce the stream exactly
    status, text, err = run(["decode", out, "-o", tmp_path / "frames", "--checkpoint", checkpoint, "--threads", "1"],
                            capsys)
    assert status == 0, err
    decoded, _ = read_video(tmp_path / "frames", fps=25)
    assert np.array_equal(decoded, model.decompress(out)[0])


def test_decode_to_y4m_and_stream_preset(stream_file, checkpoint, fast_load, tmp_path, capsys):
    status, text, err = run(["decode", stream_file, "-o", tmp_path / "out.y4m", "--checkpoint", checkpoint], capsys)
    assert status == 0 and "decoded 3 frames 96x64" in text, err
    frames, fps = read_video(tmp_path / "out.y4m")
    assert frames.shape == (3, 64, 96, 3) and fps == 25.0


def test_ten_bit_y4m_and_raw_yuv_inputs(checkpoint, fast_load, tmp_path, capsys):
    frames = clip(1, 17, 33, seed=5)  # 1 frame, odd size
    y, cb, cr = rgb_to_yuv420(frames, bits=10)
    ten_bit = tmp_path / "in10.y4m"
    ten_bit.write_bytes(b"YUV4MPEG2 W33 H17 F30:1 Ip C420p10\nFRAME\n"
                       + b"".join(p.astype("<u2").tobytes() for p in (y, cb, cr)))
    y8, cb8, cr8 = rgb_to_yuv420(frames)
    raw = tmp_path / "in.yuv"
    raw.write_bytes(b"".join(p.tobytes() for p in (y8, cb8, cr8)))
    for source, extra in ((ten_bit, []), (raw, ["--size", "33x17", "--fps", "30"])):
        status, text, err = run(["encode", source, "-o", tmp_path / "x.s2vc", "--checkpoint", checkpoint, *extra],
                                capsys)
        assert status == 0 and "read 1 frame 33x17 at 30 fps" in text, err


def test_kbps_estimates_predict_the_real_bitrate(checkpoint, fast_load, tmp_path, capsys):
    write_png_folder(tmp_path / "in", clip(2, 64, 64, seed=6))
    out = tmp_path / "x.s2vc"
    status, text, err = run(["encode", tmp_path / "in", "-o", out, "--checkpoint", checkpoint, "--fps", "25",
                             "--kbps", "100000"], capsys)
    assert status == 0, err
    chosen = next(line for line in text.splitlines() if "<- chosen" in line).split()
    assert chosen[0] == "4"  # everything fits: the highest of the five rate points
    assert json.loads(run(["info", out, "--json"], capsys)[1])["kbps"] == pytest.approx(float(chosen[2]), rel=0.02)


@pytest.mark.parametrize(
    "target, chosen, warns",
    [(25, 2, False), (40, 3, False), (1000, 4, False), (35, 1, False), (5, 0, True)],
)
def test_kbps_picks_closest_without_exceeding(model, monkeypatch, capsys, target, chosen, warns):
    monkeypatch.setattr(cli, "estimate_kbps", lambda *_: [10.0, 30.0, 20.0, 40.0, 50.0])
    args = cli.build_parser().parse_args(["encode", "in", "-o", "out", "--kbps", str(target)])
    assert cli._pick_rate(model, clip(1, 8, 8), 25.0, args) == chosen
    assert ("warning: no rate point fits" in capsys.readouterr().err) == warns


# ----------------------------------------------------------------------------------------------- bad arguments
@pytest.mark.parametrize(
    "argv, status",
    [
        ([], 2),
        (["transcode", "x"], 2),
        (["encode", "IN"], 2),
        (["encode", "IN", "-o", "o.s2vc", "--rate", "1", "--kbps", "5"], 2),
        (["encode", "IN", "-o", "o.s2vc", "--frames", "0"], 2),
        (["encode", "IN", "-o", "o.s2vc", "--threads", "0"], 2),
        (["encode", "IN", "-o", "o.s2vc", "--start", "-1"], 2),
        (["encode", "IN", "-o", "o.s2vc", "--kbps", "nan"], 2),
        (["encode", "RAW", "-o", "o.s2vc", "--size", "12", "--fps", "25"], 2),
        (["encode", "RAW", "-o", "o.s2vc", "--fps", "25"], 2),
        (["encode", "RAW", "-o", "o.s2vc", "--size", "8x8"], 2),
        (["encode", "PNGS", "-o", "o.s2vc"], 2),
        (["encode", "PNGS", "-o", "o.s2vc", "--fps", "25", "--rate", "9", "--checkpoint", "CKPT"], 2),
        (["encode", "PNGS", "-o", "o.s2vc", "--fps", "25", "--rate", "q9", "--checkpoint", "CKPT"], 2),
        (["encode", "PNGS", "-o", "o.s2vc", "--fps", "25", "--preset", "official"], 2),
        (["encode", "PNGS", "-o", "o.s2vc", "--fps", "25", "--checkpoint", "MISSING"], 1),
        (["encode", "PNGS", "-o", "NODIR/o.s2vc", "--fps", "25", "--checkpoint", "CKPT"], 1),
        (["encode", "MISSING", "-o", "o.s2vc"], 1),
        (["encode", "STREAM", "-o", "o.s2vc"], 1),
        (["decode", "STREAM", "-o", "out.avi"], 2),
        (["decode", "STREAM", "-o", "STREAM"], 2),
        (["decode", "STREAM", "-o", "o.y4m", "--preset", "official"], 2),
        (["decode", "STREAM", "-o", "o.y4m", "--checkpoint", "MISSING"], 1),
        (["decode", "MISSING", "-o", "o.y4m"], 1),
        (["decode", "PNGS", "-o", "o.y4m"], 1),
        (["info", "MISSING"], 1),
    ],
)
def test_bad_arguments(argv, status, stream_file, checkpoint, fast_load, tmp_path, capsys):
    write_png_folder(tmp_path / "pngs", clip(1, 8, 8))
    (tmp_path / "raw.yuv").write_bytes(bytes(96))
    names = {"IN": tmp_path / "pngs", "PNGS": tmp_path / "pngs", "RAW": tmp_path / "raw.yuv",
             "CKPT": checkpoint, "MISSING": tmp_path / "missing", "STREAM": stream_file}
    argv = [str(names.get(a, a)).replace("NODIR", str(tmp_path / "nodir")) for a in argv]
    got, _, err = run(argv, capsys)
    assert got == status, err
    assert_one_line_error(got, err)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu(stream_file, capsys):
    assert_one_line_error(*run(["decode", stream_file, "-o", "x.y4m", "--device", "cuda"], capsys)[::2])


# ----------------------------------------------------------------------------------------------- corrupted files
def _flip(position: int) -> Callable[[bytes], bytes]:
    return lambda d: d[:position % len(d)] + bytes([d[position % len(d)] ^ 0x5A]) + d[position % len(d) + 1:]


def _cut(stop: int) -> Callable[[bytes], bytes]:
    return lambda d: d[:stop]


CORRUPTIONS: dict[str, Callable[[bytes], bytes]] = {
    "empty": lambda d: b"",
    "png renamed": lambda d: PNG,
    "text": lambda d: b"hello world\n",
    "zeros": lambda d: bytes(len(d)),
    "random": lambda d: np.random.default_rng(1).integers(0, 256, len(d), dtype=np.uint8).tobytes(),
    "magic only": lambda d: b"S2VC",
    "version 1 (older)": lambda d: d[:4] + b"\x01" + d[5:],
    "version 2 (older)": lambda d: d[:4] + b"\x02" + d[5:],
    "version 4 (newer)": lambda d: d[:4] + b"\x04" + d[5:],
    "trailing byte": lambda d: d + b"\x00",
    "doubled": lambda d: d + d,
    **{f"truncated to {n}": _cut(n) for n in (1, 3, 5, 12, 30, 49, 50, 53, 56, 200)},
    **{f"truncated by {n}": _cut(-n) for n in (1, 4, 100)},
    "truncated to half": lambda d: d[: len(d) // 2],
    **{f"flip {p}": _flip(p) for p in (0, 4, 6, 10, 22, 27, 34, 44, 49, 50, 51, 53, 57, 100, 300, 1000, -5, -1)},
    "frames swapped": lambda d: rewrite(d, types={1: "P", 2: "reset"}),
}


@pytest.fixture(scope="module")
def corrupted_dir(stream_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("corrupt")
    data = stream_file.read_bytes()
    for index, mutate in enumerate(CORRUPTIONS.values()):
        (folder / f"{index}.s2vc").write_bytes(mutate(data))
    return folder


@pytest.mark.parametrize("index, name", list(enumerate(CORRUPTIONS)))
def test_corrupted_file_fails_cleanly(index, name, corrupted_dir, checkpoint, fast_load, tmp_path, capsys):
    bad = corrupted_dir / f"{index}.s2vc"
    decode_status, _, decode_err = run(["decode", bad, "-o", tmp_path / "o.y4m", "--checkpoint", checkpoint], capsys)
    assert_one_line_error(decode_status, decode_err)
    assert not (tmp_path / "o.y4m").exists()
    if name != "frames swapped":  # a valid container: only the codec can tell
        assert_one_line_error(*run(["info", bad], capsys)[::2])


@pytest.mark.slow
def test_subprocess_prints_one_line_and_no_traceback(tmp_path):
    """One real `python -m model` run (each costs a full torch + diffusers import: ~15 s on a busy machine)."""
    (tmp_path / "photo.s2vc").write_bytes(PNG)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "model", "decode", str(tmp_path / "photo.s2vc"), "-o", str(tmp_path / "o.mp4")]
    done = subprocess.run(command, cwd=REPO, env=env, text=True, capture_output=True, timeout=120, check=False)
    assert_one_line_error(done.returncode, done.stderr)
    assert done.returncode == 1 and done.stdout == "" and "not an S2VC bitstream" in done.stderr
