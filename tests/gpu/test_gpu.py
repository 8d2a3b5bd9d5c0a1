"""What one run on a CUDA machine checks (tests/gpu/run.sh; skipped without CUDA):

* the official preset with random weights, written as a fake official release folder in the release's key layout
  and loaded through `load_model`, codes an I-frame, a reset P-frame and a P-frame at 1920x1080 and decodes them
  bit for bit (load / encode / decode seconds and peak GPU memory printed);
* the bundled tiny model on CUDA: a bit-exact round trip, the coding environment in the header, the release's
  precision per frame type (the I-frame's VAE decode under bf16 autocast), and a CPU refusing the CUDA stream;
* one training step of each stage on CUDA;
* the app's handlers with the official preset on CUDA;
* host waits per frame of the official preset (encode 1/1/1, decode 5/4/4) and the VAE's windowed attention with
  its windows stacked against one window at a time (equal within 1e-4, both timed).

`S2VC_GPU_DEVICE=cpu S2VC_GPU_WIDTHS=small S2VC_GPU_SIZE=128x64` runs the same logic on a CPU, with the official
preset's structure at small widths (what `tests/gpu/run.sh --cpu` does).
"""
from __future__ import annotations

import functools
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from model import S2VC, DecoderMismatchError, load_model, official
from model.bitstream import read_stream
from model.environment import BF16_IFRAME, FP32
from tests.test_checkpoints import official_like, write_release
from tests.test_codec import clip, encode
from tests.test_train import _items, _small_config, taef2_files  # noqa: F401 (fixture)

DEVICE = os.environ.get("S2VC_GPU_DEVICE", "cuda")
WIDTHS = os.environ.get("S2VC_GPU_WIDTHS", "official")  # "official" (full size) or "small"
WIDTH, HEIGHT = (int(v) for v in os.environ.get("S2VC_GPU_SIZE", "1920x1080").split("x"))
# "small": the official structure at the checkpoint tests' widths, with an 8x-downsampling VAE so that it codes
CONFIG = official() if WIDTHS == "official" else official_like().replace(vae_block_out_channels=(16, 16, 16, 16))

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(),
                       reason="needs a CUDA GPU (S2VC_GPU_DEVICE=cpu runs the same logic on a CPU)"),
]


def _sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def _peak_memory() -> str:
    if DEVICE != "cuda":
        return "n/a on cpu"
    return f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB (torch.cuda.max_memory_allocated)"


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fake official release folder: the official preset (or its small-width stand-in) with random weights."""
    torch.manual_seed(0)
    start = time.perf_counter()
    with torch.device(DEVICE):
        source = S2VC(CONFIG).eval()
    root = write_release(source, tmp_path_factory.mktemp("release"))
    del source
    if DEVICE == "cuda":
        torch.cuda.empty_cache()
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    print(f"\nfake official release ({WIDTHS} widths, random weights): {size / 2**30:.2f} GiB written in "
          f"{time.perf_counter() - start:.1f} s")
    return root


@pytest.fixture(scope="module")
def official_model(release: Path) -> S2VC:
    start = time.perf_counter()
    model = load_model(release, device=DEVICE, config=CONFIG)
    _sync()
    print(f"\nload_model(release folder) to {DEVICE}: {time.perf_counter() - start:.1f} s")
    return model


@pytest.fixture(scope="module")
def tiny_cuda() -> S2VC:
    return load_model(device=DEVICE)


def test_official_round_trip_is_bit_exact(official_model: S2VC) -> None:
    frames = clip(3, HEIGHT, WIDTH, seed=11)  # I, reset P, P
    official_model.compress(frames[:1], 0, 25.0)  # warm-up: kernel selection, allocator
    if DEVICE == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    data, recon = encode(official_model, frames, 0)
    _sync()
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    decoded, _ = official_model.decompress(data)
    _sync()
    decode_s = time.perf_counter() - start
    assert np.array_equal(decoded, recon)
    header, records = read_stream(data)
    assert [r.frame_type.value for r in records] == ["I", "reset", "P"]
    made = header.environment
    assert (made.device, made.precision) == (DEVICE, BF16_IFRAME if DEVICE == "cuda" else FP32)
    print(f"\nofficial preset ({WIDTHS} widths) {WIDTH}x{HEIGHT}, I + reset P + P: encode {encode_s:.2f} s, decode "
          f"{decode_s:.2f} s, bit-exact, {len(data)} bytes; peak memory {_peak_memory()}; coded on "
          f"{made.describe()}")


def test_tiny_model_round_trip_and_precision_per_frame_type(tiny_cuda: S2VC, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[bool, torch.dtype | None]] = []
    real_decode = tiny_cuda.vae.decode

    def decode(latent: torch.Tensor) -> torch.Tensor:
        enabled = torch.is_autocast_enabled(DEVICE) if DEVICE == "cuda" else False
        seen.append((enabled, torch.get_autocast_dtype(DEVICE) if enabled else None))
        return real_decode(latent)

    monkeypatch.setattr(tiny_cuda.vae, "decode", decode)
    data, recon = encode(tiny_cuda, clip(3, 96, 128, seed=12), 1)  # I, reset P, P
    decoded, _ = tiny_cuda.decompress(data)
    assert np.array_equal(decoded, recon)
    per_frame = [(True, torch.bfloat16), (False, None), (False, None)] if DEVICE == "cuda" else [(False, None)] * 3
    assert seen == per_frame * 2  # the encoder's pictures, then the decoder's
    assert read_stream(data)[0].environment.device == DEVICE


@pytest.mark.skipif(DEVICE != "cuda", reason="a stream from a GPU decoded on a CPU")
def test_cpu_refuses_a_cuda_stream(tiny_cuda: S2VC) -> None:
    data = tiny_cuda.compress(clip(2, 64, 64, seed=13), 0, 25.0)
    with pytest.raises(DecoderMismatchError, match="this stream was coded on cuda .*--device cuda"):
        load_model(device="cpu").decompress(data)


@pytest.mark.parametrize("stage, frames", [("intra", 1), ("inter", 3), ("cascade", 4), ("decoder", 1)])
def test_one_training_step_per_stage(stage: str, frames: int, tmp_path: Path, taef2_files: Path) -> None:  # noqa: F811
    from model.train.loop import Trainer

    trainer = Trainer(_small_config(tmp_path, stage=stage, num_frames=frames), items=_items())
    assert next(trainer.model.parameters()).device.type == DEVICE
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.run(steps=1)
    after = dict(trainer.model.named_parameters())
    assert any(not torch.equal(before[n], after[n]) for n in before), f"stage {stage}: no weight changed"


def test_app_handlers_with_the_official_preset(release: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import model as model_package
    from app import handlers, session
    from app.model_slot import ModelSlot
    from app.settings import Limits
    from model.video_io import write_y4m

    clip_file = write_y4m(tmp_path / "clip.y4m", clip(3, 128, 128, seed=14), 25.0)
    folder = session.session_dir(tmp_path / "sessions", "gpu")
    limits = Limits(max_frames=3, max_pixels=128 * 128, max_file_mb=5)
    loaded = handlers.prepare_clip(str(clip_file), None, 0, 0, 0, 0, 3, "original size", limits, folder)
    if WIDTHS == "small":  # the app loads an official folder with the official widths; small ones need the config
        monkeypatch.setattr(model_package, "load_model", functools.partial(load_model, config=CONFIG))
    slot = ModelSlot(checkpoint=str(release), device=DEVICE)
    states = list(handlers.run_comparison(loaded, [500.0], ["s2vc"], {}, ["psnr_rgb"], folder, slot))
    assert slot.error is None and states[-1]["done"]
    (record,) = handlers.records(states[-1])
    assert record["codec"] == "s2vc" and record["decoder_check"] == "bit-exact" and record["release_bpp"] > 0
    assert DEVICE in handlers.model_markdown(slot)


def test_official_host_waits_per_frame(official_model: S2VC) -> None:
    """Host waits per frame of the official preset on the device (bench/host_waits.py): encode 1/1/1, decode 5/4/4
    for I, reset P, P (36/17/17 and 25/11/11 before issue 25)."""
    from bench.host_waits import per_frame

    frames = clip(3, HEIGHT, WIDTH, seed=12)
    coded = {"warm-up": official_model.compress(frames, 0, 25.0)}  # first use builds tables and position caches
    encode_waits = per_frame(S2VC, "_code_frame", lambda: coded.setdefault("data", official_model.compress(
        frames, 0, 25.0)))
    decode_waits = per_frame(S2VC, "_code_frame", lambda: official_model.decompress(coded["data"]))
    print(f"\nofficial preset ({WIDTHS} widths) on {DEVICE}: host waits per frame (I, reset P, P) encode "
          f"{encode_waits}, decode {decode_waits}")
    assert (encode_waits, decode_waits) == ([1, 1, 1], [5, 4, 4])


def test_vae_attention_windows_stacked_against_the_window_loop() -> None:
    """The official VAE decoder's windowed mid-block attention at the run's latent size: windows stacked by size
    (the default on an accelerator) against one call per window; equal within 1e-4 in fp32 (TF32 off), both timed."""
    from model.vae import AutoencoderKL, WindowedAttnProcessor, sd_vae_kwargs

    torch.manual_seed(0)
    with torch.device(DEVICE):
        attn = AutoencoderKL(**sd_vae_kwargs(CONFIG)).eval().decoder.mid_block.attentions[0]
    x = torch.randn(1, attn.to_q.in_features, -(-HEIGHT // 64) * 8, -(-WIDTH // 64) * 8, device=DEVICE)
    window = CONFIG.vae_attn_window or 4  # the small stand-in has full-frame attention: windows of 4 there
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    seconds, outs = {}, {}
    try:
        with torch.no_grad():
            for stacked in (False, True, False, True):  # the first two warm up
                attn.set_processor(WindowedAttnProcessor(window, stacked=stacked))
                _sync()
                start = time.perf_counter()
                outs[stacked] = attn(x)
                _sync()
                seconds[stacked] = time.perf_counter() - start
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    print(f"\nVAE mid-block attention, {tuple(x.shape)} latent, window {window}, on {DEVICE}: stacked "
          f"{1000 * seconds[True]:.1f} ms against {1000 * seconds[False]:.1f} ms one window at a time "
          f"({seconds[False] / seconds[True]:.2f}x); "
          f"max difference {(outs[True] - outs[False]).abs().max().item():.2e}")
    torch.testing.assert_close(outs[True], outs[False], rtol=1e-4, atol=1e-4)
