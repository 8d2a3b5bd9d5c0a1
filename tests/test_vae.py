"""LatentVAE: SD VAE windowed mid-block attention (small config) and the TAEF2 tiny autoencoder."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from model.config import official, tiny
from model.errors import CheckpointError
from model.taesd import ENCODER_FILE, TinyAutoencoder, load_taef2, load_taef2_weights
from model.vae import AttnProcessor2_0, AutoencoderKL, LatentVAE, WindowedAttnProcessor, sd_vae_kwargs

SMALL_SD = official().replace(
    vae_block_out_channels=(16, 16, 32), vae_layers_per_block=1, norm_groups=8, vae_attn_window=4
)


def manual_window_attention(attn, x: torch.Tensor, window: int) -> torch.Tensor:
    """Reference: GroupNorm -> single-head softmax attention -> projection -> residual, one window at a time."""
    out = torch.empty_like(x)
    for top in range(0, x.shape[2], window):
        for left in range(0, x.shape[3], window):
            tile = x[:, :, top : top + window, left : left + window]
            b, c, h, w = tile.shape
            n = attn.group_norm(tile).flatten(2).transpose(1, 2)
            q, k, v = attn.to_q(n), attn.to_k(n), attn.to_v(n)
            weights = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(c), dim=-1)
            y = attn.to_out[0](weights @ v).transpose(1, 2).reshape(b, c, h, w)
            out[:, :, top : top + window, left : left + window] = y + tile
    return out


@pytest.fixture(scope="module")
def sd_vae() -> LatentVAE:
    torch.manual_seed(0)
    return LatentVAE(SMALL_SD).eval()


def test_windowed_attention_matches_per_window_reference(sd_vae: LatentVAE) -> None:
    for coder in (sd_vae.model.encoder, sd_vae.model.decoder):
        attn = coder.mid_block.attentions[0]
        assert isinstance(attn.processor, WindowedAttnProcessor)
        x = torch.randn(1, attn.to_q.in_features, 10, 13)  # 3x4 windows, 2 rows / 1 column at the edges
        with torch.no_grad():
            got = attn(x)
            expected = manual_window_attention(attn, x, 4)
            full = manual_window_attention(attn, x, 13)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
        assert not torch.allclose(got, full, atol=1e-3)


@pytest.mark.parametrize("stacked", [False, True], ids=["window loop", "stacked"])
def test_windows_in_a_batch_equal_one_window_at_a_time(sd_vae: LatentVAE, stacked: bool) -> None:
    """Two frames, windows in a loop (the CPU's way) or stacked by size (whole, right edge, bottom edge, corner; an
    accelerator's): each frame's windows as if evaluated alone; the two ways agree bit for bit on a CPU."""
    attn = sd_vae.model.decoder.mid_block.attentions[0]
    x = torch.randn(2, attn.to_q.in_features, 9, 11, generator=torch.Generator().manual_seed(3))
    processor = attn.processor
    with torch.no_grad():
        expected = torch.cat([manual_window_attention(attn, x[i : i + 1], 4) for i in range(2)])
        loop = attn(x)
        attn.set_processor(WindowedAttnProcessor(4, stacked=stacked))
        try:
            got = attn(x)
        finally:
            attn.set_processor(processor)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(got, loop)


def test_whole_latent_window_equals_stock_vae(sd_vae: LatentVAE) -> None:
    stock = AutoencoderKL(**sd_vae_kwargs(SMALL_SD)).eval()
    stock.load_state_dict(sd_vae.model.state_dict())
    big = LatentVAE(SMALL_SD.replace(vae_attn_window=64)).eval()
    big.model.load_state_dict(sd_vae.model.state_dict())
    x = torch.rand(1, 3, 40, 52) * 2 - 1  # latent 10x13
    with torch.no_grad():
        z_stock = stock.encode(x).latent_dist.mode() * SMALL_SD.vae_scaling_factor
        z_big = big.encode(x)
        z_win = sd_vae.encode(x)
        torch.testing.assert_close(z_big, z_stock, rtol=0, atol=0)
        assert not torch.allclose(z_win, z_stock, atol=1e-4)
        y_stock = stock.decode(z_stock / SMALL_SD.vae_scaling_factor).sample
        torch.testing.assert_close(big.decode(z_stock), y_stock, rtol=0, atol=0)
        assert not torch.allclose(sd_vae.decode(z_stock), y_stock, atol=1e-4)


def test_sd_encode_sample_and_shapes(sd_vae: LatentVAE) -> None:
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    with torch.no_grad():
        mode = sd_vae.encode(x)
        a = sd_vae.encode(x, sample=True, generator=torch.Generator().manual_seed(7))
        b = sd_vae.encode(x, sample=True, generator=torch.Generator().manual_seed(7))
        y = sd_vae.decode(mode)
    assert mode.shape == (2, 4, 8, 12) and mode.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, mode)
    assert y.shape == x.shape


def test_sd_load_weights_from_local_folder(sd_vae: LatentVAE, tmp_path: Path, monkeypatch) -> None:
    sd_vae.model.save_pretrained(tmp_path / "vae")
    vae = LatentVAE(SMALL_SD.replace(vae_attn_window=0))
    assert isinstance(vae.model.decoder.mid_block.attentions[0].processor, AttnProcessor2_0)
    monkeypatch.setenv("S2VC_SD21_VAE", str(tmp_path / "vae"))
    vae.load_weights(local_files_only=True)
    own = vae.model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in sd_vae.model.state_dict().items())


def test_unknown_vae_type() -> None:
    with pytest.raises(ValueError, match="unknown vae_type"):
        LatentVAE(tiny().replace(vae_type="vq"))


def taef2_folder(shared_data: Path) -> Path:
    folder = shared_data / "weights" / "taef2_flux2_tiny_autoencoder"
    if not (folder / ENCODER_FILE).is_file():
        pytest.skip(f"TAEF2 weights not found in {folder}")
    return folder


def test_taef2_round_trip_on_kodak(shared_data: Path) -> None:
    folder = taef2_folder(shared_data)
    image = shared_data / "images" / "kodak" / "kodim01.png"
    if not image.is_file():
        pytest.skip(f"{image} not found")
    vae = LatentVAE(tiny())
    assert vae.model.has_taef2_decoder  # the tiny preset decodes with TAEF2's own (pretrained) decoder
    vae.load_weights(folder)
    pixels = torch.from_numpy(np.array(Image.open(image).convert("RGB"))).permute(2, 0, 1)[None].float() / 255
    x = pixels[:, :, :192, :256] * 2 - 1
    with torch.no_grad():
        z = vae.encode(x)
        y = vae.decode(z).clamp(-1, 1)
    assert z.shape == (1, 32, 24, 32)
    psnr = -10 * math.log10(F.mse_loss((y + 1) / 2, (x + 1) / 2).item())
    assert psnr > 24, psnr
    assert 0.5 < z.std().item() < 1.5


def test_taef2_strict_loading_names_file_and_keys(shared_data: Path, tmp_path: Path) -> None:
    folder = taef2_folder(shared_data)
    model = load_taef2(folder)
    assert isinstance(model, TinyAutoencoder)
    state = dict(model.encoder.state_dict())
    del state["14.bias"]
    state["15.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / ENCODER_FILE)
    with pytest.raises(CheckpointError, match=r"taef2_encoder\.pth.*missing keys \[14\.bias\].*15\.weight"):
        load_taef2_weights(TinyAutoencoder(), tmp_path)
    with pytest.raises(CheckpointError, match="not found"):
        load_taef2_weights(TinyAutoencoder(), tmp_path / "absent")


def test_decoder_layouts_keep_taef2_indices() -> None:
    taef2, own = TinyAutoencoder(), TinyAutoencoder(decoder_widths=(64, 48, 32, 16), decoder_blocks=(2, 2, 1, 1))
    assert taef2.has_taef2_decoder and not own.has_taef2_decoder
    assert sum(p.numel() for p in taef2.decoder.parameters()) == 1_338_499
    assert sum(p.numel() for p in own.decoder.parameters()) == 512_547
    # the width changes in a stage's first conv after the upsampling, so TAEF2's module indices stay meaningful
    assert own.decoder[1].weight.shape == (64, 32, 3, 3) and own.decoder[6].weight.shape == (48, 64, 3, 3)
    assert own.decoder[-1].weight.shape == (3, 16, 3, 3)
    with torch.no_grad():
        assert own.decode(torch.randn(1, 32, 3, 5)).shape == (1, 3, 24, 40)
    with pytest.raises(ValueError, match="4 positive widths"):
        TinyAutoencoder(decoder_widths=(64, 32), decoder_blocks=(1, 1))


def test_own_decoder_keeps_its_weights_when_taef2_loads(shared_data: Path) -> None:
    folder = taef2_folder(shared_data)
    vae = LatentVAE(tiny().replace(vae_decoder_widths=(64, 48, 32, 16), vae_decoder_blocks=(2, 2, 1, 1)))
    decoder_before = {k: v.clone() for k, v in vae.model.decoder.state_dict().items()}
    vae.load_weights(folder)
    reference = load_taef2(folder).encoder.state_dict()
    for key, value in vae.model.encoder.state_dict().items():
        assert torch.equal(value, reference[key]), key
    for key, value in vae.model.decoder.state_dict().items():
        assert torch.equal(value, decoder_before[key]), key


def test_tiny_autoencoder_runs_channels_last_on_cpu_within_float_noise() -> None:
    """The CPU path (NHWC convolutions, faster) equals the default layout's within float noise, returns a contiguous
    tensor, and gradients still flow (training uses the same modules)."""
    torch.manual_seed(0)
    model = TinyAutoencoder(32, 64, 3).eval()
    image = torch.rand(1, 3, 48, 64)
    with torch.no_grad():
        z = model.encoder(image)
        assert torch.allclose(z, torch.nn.Sequential.forward(model.encoder, image), atol=1e-5)
        out = model.decoder(z)
        assert torch.allclose(out, torch.nn.Sequential.forward(model.decoder, z), atol=1e-5)
    assert z.shape == (1, 32, 6, 8) and out.shape == (1, 3, 48, 64) and out.is_contiguous() and z.is_contiguous()
    latent = torch.randn(1, 32, 6, 8, requires_grad=True)
    model.decoder(latent).square().mean().backward()
    assert latent.grad is not None and latent.grad.abs().sum() > 0
