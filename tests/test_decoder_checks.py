"""A stream from another machine: the header records how it was coded, each record checks its decoded picture, and
a decoder that cannot reproduce the encoder's pictures stops with one clear line naming the frame and both machines.
"""
from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest
import torch

from model import S2VC, BitstreamError, DecoderMismatchError
from model.bitstream import FrameRecord, picture_check, read_stream, write_stream
from model.codec import CODING_THREADS
from model.environment import BF16_IFRAME, FP32, CodingEnvironment
from tests.test_cli import assert_one_line_error, checkpoint, fast_load, run  # noqa: F401 (fixtures)
from tests.test_codec import clip, encode, rewrite, tiny_model
from tests.test_entropy_models import single_thread  # noqa: F401 (autouse)

GPU_MADE = CodingEnvironment("cuda", BF16_IFRAME, "sm_90", "2.11.0+cu130", 0)


@pytest.fixture(scope="module")
def model() -> S2VC:
    return tiny_model()


@pytest.fixture(scope="module")
def stream(model: S2VC) -> tuple[bytes, np.ndarray]:
    """(3 frames 64x96 at rate 1: I, reset, P; the encoder's reconstructions)."""
    return encode(model, clip(3, 64, 96, seed=7), 1)


def with_records(data: bytes, change: dict[int, dict]) -> bytes:
    """The stream with fields of some frame records replaced (checksums recomputed)."""
    header, records = read_stream(data)
    records = [dataclasses.replace(r, **change.get(i, {})) for i, r in enumerate(records)]
    buffer = io.BytesIO()
    write_stream(buffer, header, records)
    return buffer.getvalue()


def save(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "clip.s2vc"
    path.write_bytes(data)
    return path


def test_header_records_this_machine_and_records_check_pictures(model, stream):
    data, recon = stream
    header, records = read_stream(data)
    assert header.environment == CodingEnvironment(
        "cpu", FP32, torch.backends.cpu.get_cpu_capability(), torch.__version__, CODING_THREADS)
    assert [r.check for r in records] == [picture_check(frame) for frame in recon]


def test_stream_from_a_gpu_is_refused_before_decoding(model, stream):
    gpu_stream = rewrite(stream[0], {"environment": GPU_MADE})
    with pytest.raises(DecoderMismatchError) as caught:
        model.decompress(gpu_stream)
    message = str(caught.value)
    assert message.startswith("this stream was coded on cuda (sm_90), bf16-iframe+tf32, torch 2.11.0+cu130; this "
                              "machine would decode on cpu (")
    assert message.endswith("decode it on a cuda machine (--device cuda) with the same precision")


def test_diverging_picture_stops_at_that_frame(model, stream):
    data, recon = stream
    header, frames = model.iter_decode(with_records(data, {2: {"check": bytes(4)}}))
    decoded = [next(frames).frame, next(frames).frame]  # frames 0 and 1 still decode, and match
    assert all(np.array_equal(a, b) for a, b in zip(decoded, recon))
    with pytest.raises(DecoderMismatchError, match=f"frame 2: the decoded picture differs from the encoder's "
                       f"\\(picture check {picture_check(recon[2]).hex()}, the stream has 00000000\\); "
                       "coded and decoded on cpu .*: the stream was altered after its checksums were written"):
        next(frames)


def test_diverging_picture_names_what_differs(model, stream):
    here = read_stream(stream[0])[0].environment
    other_kernels = "OTHER-ISA" if here.kernels != "OTHER-ISA" else "ANOTHER-ISA"  # never this machine's own
    made = dataclasses.replace(here, torch="2.0.0", kernels=other_kernels)
    altered = rewrite(with_records(stream[0], {0: {"check": bytes(4)}}), {"environment": made})
    with pytest.raises(DecoderMismatchError, match="frame 0: the decoded picture differs .* the stream was coded on "
                       f"cpu \\({other_kernels}, 1 thread\\), fp32, torch 2.0.0, this machine is .* "
                       "\\(kernels, torch differ\\): decode it on a machine like the encoder's"):
        model.decompress(altered)


def test_undecodable_symbols_from_another_machine_are_a_mismatch(model, stream):
    """Frame 1's payload in frame 2's place: the entropy decoder fails; with another torch recorded, the message
    says the machines differ instead of only "corrupt"."""
    header, records = read_stream(stream[0])
    records = list(records)
    swapped = dataclasses.replace(records[2], payload=records[1].payload[:-4])
    other = dataclasses.replace(header.environment, torch="2.0.0")
    buffer = io.BytesIO()
    write_stream(buffer, header, [records[0], records[1], swapped])
    with pytest.raises(BitstreamError):  # same machine: a corrupt stream
        model.decompress(buffer.getvalue())
    with pytest.raises(DecoderMismatchError, match="frame 2: .*\\(torch differ\\)"):
        model.decompress(rewrite(buffer.getvalue(), {"environment": other}))


def test_cli_one_line_errors(stream, checkpoint, fast_load, tmp_path, capsys):  # noqa: F811
    gpu_file = save(tmp_path, rewrite(stream[0], {"environment": GPU_MADE}))
    status, _, err = run(["decode", gpu_file, "-o", tmp_path / "a.y4m", "--checkpoint", checkpoint], capsys)
    assert_one_line_error(status, err)
    assert status == 1 and "coded on cuda (sm_90)" in err and "--device cuda" in err
    assert not (tmp_path / "a.y4m").exists()

    bad_file = save(tmp_path, with_records(stream[0], {1: {"check": bytes(4)}}))
    status, _, err = run(["decode", bad_file, "-o", tmp_path / "b.y4m", "--checkpoint", checkpoint], capsys)
    assert_one_line_error(status, err)
    assert status == 1 and "frame 1: the decoded picture differs from the encoder's" in err
    assert not (tmp_path / "b.y4m").exists()


def test_release_estimate_survives_the_file(model, stream):
    """The I-frame record carries the release's estimate as float32; encoder and decoder report the same figure."""
    frames = clip(3, 64, 96, seed=7)
    header, coded = model.iter_encode(frames, 1, 25.0)
    encoded = [result for _, result in coded]
    _, decoded = model.iter_decode(stream[0])
    decoded = list(decoded)
    assert [r.release_bpp for r in encoded] == [r.release_bpp for r in decoded]
    assert encoded[0].release_bpp > 0
    assert [r.release_bpp for r in decoded[1:]] == [r.bits / (64 * 96) for r in decoded[1:]]
    assert FrameRecord("I", b"", release_bits=0.1).release_bits == np.float32(0.1)


def test_info_shows_the_coding_environment_and_both_rates(model, stream, tmp_path, capsys):
    from model.cli import stream_info

    info = stream_info(stream[0])
    assert info["header"]["coded_on"] == dataclasses.asdict(read_stream(stream[0])[0].environment)
    decoded = list(model.iter_decode(stream[0])[1])
    assert [f["release_bpp"] for f in info["frames"]] == [r.release_bpp for r in decoded]
    assert info["release_bpp"] == pytest.approx(sum(r.release_bpp for r in decoded) / 3)
    assert [f["picture_check"] for f in info["frames"]] == [r.check.hex() for r in read_stream(stream[0])[1]]
    status, text, _ = run(["info", save(tmp_path, stream[0])], capsys)
    assert status == 0 and "coded on    cpu (" in text and "release bpp" in text
