"""S2VC codec on real bitstreams: bit-exact decoding, odd sizes, 1-frame clips, reset frames, sizes vs estimates,
streams from other models and frame-type mismatches. A randomly initialised tiny model, small frames."""
from __future__ import annotations

import copy
import dataclasses
import functools
import io
from pathlib import Path

import numpy as np
import pytest
import torch

from model import S2VC, BitstreamError, ModelMismatchError, tiny
from model.bitstream import FrameRecord, read_stream, write_stream
from model.inter import RefState
from model.video_io import read_video
from tests.test_entropy_models import single_thread  # noqa: F401 (autouse)

RESET_INTERVAL = 2  # frame types I, reset, P, reset, ...


@functools.lru_cache(maxsize=1)
def tiny_model() -> S2VC:
    """The randomly initialised tiny model every codec and CLI test shares (built once; do not mutate)."""
    torch.manual_seed(0)
    return S2VC(tiny().replace(reset_interval=RESET_INTERVAL)).eval()


def clip(frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """A moving smooth pattern with some noise: uint8 RGB [T, H, W, 3]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    out = []
    for t in range(frames):
        phase = 0.3 * t
        base = np.stack([np.sin(x / 9 + phase), np.cos(y / 7 - phase), np.sin((x + y) / 13)], axis=-1)
        out.append(127.5 + 100 * base + rng.normal(0, 8, base.shape))
    return np.clip(out, 0, 255).astype(np.uint8)


def encode(model: S2VC, frames: np.ndarray, rate: int, fps: float = 25.0) -> tuple[bytes, np.ndarray]:
    """(bitstream bytes, the encoder's reconstructions)."""
    header, coded = model.iter_encode(frames, rate, fps)
    records, results = zip(*coded)
    buffer = io.BytesIO()
    write_stream(buffer, header, records)
    return buffer.getvalue(), np.stack([r.frame for r in results])


def rewrite(data: bytes, header_changes: dict | None = None, types: dict[int, str] | None = None) -> bytes:
    """The stream with header fields or frame types replaced (checksums recomputed, so only the codec can tell)."""
    header, records = read_stream(data)
    header = dataclasses.replace(header, **(header_changes or {}))
    records = [dataclasses.replace(r, frame_type=(types or {}).get(i, r.frame_type)) for i, r in enumerate(records)]
    buffer = io.BytesIO()
    write_stream(buffer, header, records)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def model() -> S2VC:
    return tiny_model()


@pytest.fixture(scope="module")
def stream(model: S2VC) -> tuple[np.ndarray, bytes, np.ndarray]:
    """(4 frames 64x96, their bitstream at rate 1, the encoder's reconstructions)."""
    frames = clip(4, 64, 96)
    data, recon = encode(model, frames, 1)
    return frames, data, recon


def test_round_trip_is_bit_exact_with_reset_frames(model, stream, tmp_path: Path):
    frames, data, recon = stream
    header, records = read_stream(data)
    assert [r.frame_type.value for r in records] == ["I", "reset", "P", "reset"]
    assert (header.width, header.height, header.frame_count, header.fps, header.rate_name) == (96, 64, 4, 25.0, "q1")
    decoded, fps = model.decompress(data)
    assert fps == 25.0 and decoded.shape == frames.shape
    assert np.array_equal(decoded, recon)
    path = tmp_path / "clip.s2vc"
    results = model.encode_file(path, frames, 1, 25.0)
    assert path.read_bytes() == data  # deterministic encoder
    assert [8 * len(r.payload) for r in read_stream(data)[1]] == [r.bits for r in results]


def test_odd_size_crops_back_exactly(model):
    frames = clip(2, 70, 90, seed=1)
    data, recon = encode(model, frames, 0)
    decoded, _ = model.decompress(data)
    assert decoded.shape == (2, 70, 90, 3) and np.array_equal(decoded, recon)


def test_one_frame_clip(model):
    data, recon = encode(model, clip(1, 64, 64, seed=2), 3, fps=29.97)
    header, records = read_stream(data)
    assert header.frame_count == 1 and [r.frame_type.value for r in records] == ["I"]
    assert header.fps == pytest.approx(29.97, abs=1e-3)
    decoded, _ = model.decompress(data)
    assert np.array_equal(decoded, recon)


def test_basketball_crop_round_trip(model, basketball_dir: Path):
    frames, fps = read_video(basketball_dir, frames=2, fps=50)
    frames = np.ascontiguousarray(frames[:, 64:128, 128:224])
    data, recon = encode(model, frames, 2, fps)
    assert np.array_equal(model.decompress(data)[0], recon)


def test_real_size_within_two_percent_of_estimate(model, stream):
    frames, data, _ = stream
    estimated_bits = sum(model.estimate_bits(frames, 1))
    header, records = read_stream(data)
    headers = len(header.to_bytes()) + sum(len(r.to_bytes()) - len(r.payload) for r in records)
    assert len(data) == pytest.approx(estimated_bits / 8 + headers, rel=0.02)


def test_prefix_estimate_extrapolates_by_frame_type(model, monkeypatch):
    frames = clip(5, 64, 64)  # I, reset, P, reset, P with RESET_INTERVAL 2
    assert model.estimate_kbps(frames, 1, 25.0, max_frames=5) == model.estimate_kbps(frames, 1, 25.0)
    coded = []
    monkeypatch.setattr(model, "estimate_bits", lambda f, r: coded.append(len(f)) or [1000.0, 500.0, 100.0][:len(f)])
    prefix = model.estimate_kbps(frames, 1, 25.0, max_frames=3)
    assert coded == [3]  # only the prefix went through the networks
    monkeypatch.setattr(model, "estimate_bits", lambda f, r: [1000.0, 500.0, 100.0, 500.0, 100.0])
    assert prefix == model.estimate_kbps(frames, 1, 25.0)  # frames 3, 4 got the reset and P estimates
    with pytest.raises(ValueError, match="at least 3"):
        model.estimate_kbps(frames, 1, 25.0, max_frames=2)


def test_stream_from_other_weights_or_preset_is_refused(model, stream):
    _, data, _ = stream
    other = copy.deepcopy(model)
    with torch.no_grad():
        next(other.unet.parameters()).add_(1e-3)
    other.invalidate_hash()
    with pytest.raises(ModelMismatchError, match="made by model 'tiny'"):
        other.decompress(data)
    with pytest.raises(ModelMismatchError, match="made by model 'official'"):
        model.decompress(rewrite(data, {"preset": "official"}))


@pytest.mark.parametrize(
    "types, message",
    [({1: "P"}, "frame 1: stream says P, expected reset"), ({0: "reset"}, "frame 0: stream says reset, expected I"),
     ({2: "I"}, "frame 2: stream says I, expected P")],
)
def test_frame_type_mismatch(model, stream, types, message):
    with pytest.raises(BitstreamError, match=message):
        model.decompress(rewrite(stream[1], types=types))


def test_rate_index_outside_model(model, stream):
    with pytest.raises(BitstreamError, match="rate index 7 not available"):
        model.decompress(rewrite(stream[1], {"rate_index": 7}))


def test_damaged_payload_with_valid_checksum(model, stream):
    header, records = read_stream(stream[1])
    records = list(records)
    records[0] = FrameRecord("I", records[0].payload[:-4])
    buffer = io.BytesIO()
    write_stream(buffer, header, records)
    with pytest.raises(BitstreamError):
        model.decompress(buffer.getvalue())


def test_bad_inputs(model):
    frames = clip(1, 64, 64)
    with pytest.raises(ValueError, match="uint8 array"):
        model.compress(frames.astype(np.float32), 0, 25)
    with pytest.raises(ValueError, match="rate index 5 out of range"):
        model.compress(frames, 5, 25)
    with pytest.raises(ValueError, match="fps must be a positive number"):
        model.compress(frames, 0, 0)
    described = model.describe()
    assert described["preset"] == "tiny" and described["rate_names"] == ["q0", "q1", "q2", "q3", "q4"]
    assert described["reset_interval"] == RESET_INTERVAL and len(model.weights_hash) == 16


def test_p_encoder_fed_the_latent_round_trips_bit_exactly():
    """`inter_latent_input`: the encoder feeds each P-frame's latent to the P encoder (it changes the stream once
    the branch is non-zero); the decoder, which never has it, still reproduces the encoder's pictures exactly."""
    torch.manual_seed(0)
    fed = S2VC(tiny().replace(reset_interval=RESET_INTERVAL, inter_latent_input=True)).eval()
    fed.load_state_dict(tiny_model().state_dict(), strict=False)
    frames = clip(3, 64, 96)
    zero_branch, _ = encode(fed, frames, 1)
    with torch.no_grad():
        torch.nn.init.normal_(fed.inter.latent_emb.weight, std=0.5)
    fed.invalidate_hash()
    data, recon = encode(fed, frames, 1)
    fed_payloads = [r.payload for r in read_stream(data)[1]]
    zero_payloads = [r.payload for r in read_stream(zero_branch)[1]]
    assert fed_payloads[0] == zero_payloads[0]  # the I-frame is untouched
    assert fed_payloads[1] != zero_payloads[1] and fed_payloads[2] != zero_payloads[2]
    decoded, _ = fed.decompress(data)
    assert np.array_equal(decoded, recon)


def test_p_frames_with_the_reference_skip_start_unchanged_and_round_trip_bit_exactly():
    """`inter_x0_skip`: at its zero start the stream and pictures are the model's without it; a non-zero gain adds
    the reference x0 to every P-frame's x0 (in training's forward pass too) and the decoder, which holds the same
    reference, reproduces the encoder's pictures exactly."""
    frames = clip(3, 64, 96)
    skip = S2VC(tiny().replace(reset_interval=RESET_INTERVAL, inter_x0_skip=True)).eval()
    skip.load_state_dict(tiny_model().state_dict(), strict=False)
    plain_data, plain_recon = encode(tiny_model(), frames, 1)
    zero_data, zero_recon = encode(skip, frames, 1)
    assert np.array_equal(zero_recon, plain_recon)
    assert [r.payload for r in read_stream(zero_data)[1]] == [r.payload for r in read_stream(plain_data)[1]]

    with torch.no_grad():
        skip.inter.x0_skip.fill_(0.7)
    skip.invalidate_hash()
    data, recon = encode(skip, frames, 1)
    assert np.array_equal(recon[0], plain_recon[0]) and not np.array_equal(recon[1:], plain_recon[1:])
    decoded, _ = skip.decompress(data)
    assert np.array_equal(decoded, recon)

    x = torch.from_numpy(frames[:, :, :64]).permute(0, 3, 1, 2).float()[None] / 127.5 - 1
    outs = skip.forward_frames(x, 1, decode=False)
    outs[2]["latent_hat"].pow(2).mean().backward()
    assert skip.inter.x0_skip.grad is not None and skip.inter.x0_skip.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="reference x0 latent"):
        skip.inter.add_reference(outs[1]["latent_hat"], RefState())

