"""P-frame codec (DMC_OneDC): official structure, tiny forward/backward, compress/decompress round trip."""
from __future__ import annotations

import pytest
import torch

from model.config import official, tiny
from model.inter import InterCodec, RefState
from tests.test_entropy_models import FakeSymbolDecoder, FakeSymbolEncoder, single_thread  # noqa: F401 (autouse)

OFFICIAL_TENSORS = 623
OFFICIAL_PARAMS = 143_976_768


@pytest.fixture(scope="module")
def official_state() -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return InterCodec(official()).state_dict()


@pytest.fixture(scope="module")
def codec() -> InterCodec:
    torch.manual_seed(0)
    return InterCodec(tiny()).eval()


def frame(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 7919 + h * 1000 + w)
    return torch.rand(b, 3, h, w, generator=g) * 2 - 1


def reset_ref(b: int, h: int, w: int, latent: int = 32) -> RefState:
    g = torch.Generator().manual_seed(h + w)
    return RefState(ref_latent=torch.randn(b, latent, h // 8, w // 8, generator=g), is_reset=True)


def test_official_counts(official_state: dict[str, torch.Tensor]) -> None:
    assert len(official_state) == OFFICIAL_TENSORS
    assert sum(v.numel() for v in official_state.values()) == OFFICIAL_PARAMS


def test_official_key_names(official_state: dict[str, torch.Tensor]) -> None:
    shapes = {k: tuple(v.shape) for k, v in official_state.items()}
    assert shapes["bit_estimator_z.f1.h"] == (1, 64, 1, 1)
    assert shapes["bit_estimator_z.f3.a"] == (1, 64, 1, 1)
    assert "bit_estimator_z.f4.a" not in shapes
    assert shapes["pix_emb.weight"] == (384, 3, 8, 8)
    assert shapes["feature_adaptor_i.skip.weight"] == (384, 4, 1, 1)
    assert "feature_adaptor_p.skip.weight" not in shapes
    assert shapes["feature_extractor.conv2.2.block.0.convs.2.weight"] == (768, 1, 5, 5)
    assert shapes["encoder.conv1.0.block.2.adaptor.weight"] == (576, 768, 1, 1)
    assert shapes["encoder.conv2.0.downsample.weight"] == (384, 384, 1, 1)
    assert shapes["encoder.conv2.2.weight"] == (128, 384, 1, 1)
    assert shapes["hyper_encoder.conv.4.weight"] == (64, 128, 1, 1)
    assert shapes["hyper_decoder.conv.1.subpel_conv.0.weight"] == (512, 128, 1, 1)
    assert shapes["temporal_prior_encoder.conv.0.conv1.weight"] == (256, 384, 3, 3)
    assert shapes["y_prior_fusion.conv.2.block.1.conv_out.weight"] == (384, 768, 1, 1)
    assert shapes["y_spatial_prior.conv.0.block.0.conv1.0.weight"] == (512, 512, 1, 1)
    assert shapes["y_spatial_prior.conv.2.block.0.conv2.weight"] == (256, 384, 1, 1)
    assert shapes["decoder.conv1.2.upsample.0.weight"] == (1536, 384, 1, 1)
    assert shapes["decoder.conv2.5.block.3.conv.weight"] == (1536, 384, 1, 1)
    assert shapes["recon_pix.net.2.skip.weight"] == (320, 384, 1, 1)
    assert shapes["recon_semantic.net_ds.0.conv1.weight"] == (576, 384, 3, 3)
    assert shapes["recon_semantic.net_attn.0.weight"] == (768, 576, 2, 2)
    assert shapes["recon_semantic.net_attn.3.proj_out.weight"] == (768, 768, 1, 1)
    assert not any(k.startswith(("y_q_scale", "scale_table")) for k in shapes)


def test_tiny_has_official_keys_plus_rate_gains(official_state: dict[str, torch.Tensor], codec: InterCodec) -> None:
    state = codec.state_dict()
    assert set(state) - set(official_state) == {"y_q_scale"}
    assert set(official_state) - set(state) == set()
    assert state["bit_estimator_z.f1.h"].shape == (5, 16, 1, 1)
    assert codec.y_q_scale.shape == (5, 32, 1, 1)
    assert bool((codec.y_q_scale[:, 0, 0, 0].diff() > 0).all())


def test_single_rate_model_has_no_rate_parameters() -> None:
    model = InterCodec(tiny().replace(num_rates=1, rate_names=("default",))).eval()
    assert model.y_q_scale is None and "y_q_scale" not in model.state_dict()
    assert model.bit_estimator_z.f1.h.shape[0] == 1
    with pytest.raises(ValueError, match="rate index out of range"):
        model(frame(1, 64, 64), reset_ref(1, 64, 64), rate=1)


@pytest.mark.parametrize("hp,wp", [(64, 64), (128, 192)])
def test_forward_shapes(codec: InterCodec, hp: int, wp: int) -> None:
    with torch.no_grad():
        first = codec(frame(2, hp, wp), reset_ref(2, hp, wp), rate=torch.tensor([1, 3]))
        out = codec(frame(2, hp, wp, seed=1), RefState(ref_feature=first["feature"]), rate=2)
    for result in (first, out):
        assert result["feature"].shape == (2, 64, hp // 8, wp // 8)
        assert result["f_pix"].shape == (2, tiny().ctrl_channels, hp // 8, wp // 8)
        assert result["tokens"].shape == (2, (hp // 64) * (wp // 64), 64)
        assert result["likelihoods"]["y"].shape == (2, 32, hp // 16, wp // 16)
        assert result["likelihoods"]["z"].shape == (2, 16, hp // 64, wp // 64)
        assert result["bits"].shape == (2,) and bool((result["bits"] > 0).all())
        assert bool(torch.isfinite(result["f_pix"]).all())


def test_reference_validation(codec: InterCodec) -> None:
    x = frame(1, 64, 64)
    with pytest.raises(ValueError, match="needs ref_latent"):
        codec(x, RefState(is_reset=True))
    with pytest.raises(ValueError, match="needs ref_feature"):
        codec(x, RefState(ref_latent=torch.zeros(1, 32, 8, 8)))
    with pytest.raises(ValueError, match="ref_latent must have shape"):
        codec(x, RefState(ref_latent=torch.zeros(1, 4, 8, 8), is_reset=True))
    with pytest.raises(ValueError, match="multiple of 64"):
        codec(frame(1, 64, 80), reset_ref(1, 64, 80))
    with pytest.raises(ValueError, match="rate index out of range"):
        codec(x, reset_ref(1, 64, 64), rate=-1)


@pytest.mark.parametrize("train_quant", ["ste", "noise"])
def test_gradients_flow_in_training(train_quant: str) -> None:
    torch.manual_seed(1)
    model = InterCodec(tiny()).train()
    model.train_quant = train_quant
    out = model(frame(1, 64, 64), reset_ref(1, 64, 64), rate=1)
    loss = out["bits"].sum() / 1e3 + out["f_pix"].square().mean() + out["tokens"].square().mean()
    loss.backward()
    for name in (
        "pix_emb.weight",
        "feature_adaptor_i.conv1.weight",
        "feature_extractor.conv2.0.block.0.convs.0.weight",
        "encoder.conv2.2.weight",
        "hyper_encoder.conv.4.weight",
        "hyper_decoder.conv.0.bias",
        "temporal_prior_encoder.conv.1.block.0.conv2.weight",
        "y_prior_fusion.conv.2.block.1.conv_out.weight",
        "y_spatial_prior.conv.2.block.1.conv_out.weight",
        "decoder.conv2.5.block.3.conv_out.weight",
        "recon_pix.net.2.conv2.weight",
        "recon_semantic.net_attn.4.conv_out.weight",
        "bit_estimator_z.f1.h",
        "y_q_scale",
    ):
        grad = model.get_parameter(name).grad
        assert grad is not None and bool(grad.abs().sum() > 0), name
    assert bool(model.bit_estimator_z.f1.h.grad[1].abs().sum() > 0)
    assert bool(model.bit_estimator_z.f1.h.grad[0].abs().sum() == 0)


def round_trip(codec: InterCodec, x: torch.Tensor, ref: RefState, rate: int) -> tuple[dict, dict, list]:
    enc = FakeSymbolEncoder()
    sent = codec.compress(x, ref, rate, enc)
    data = enc.finish()
    dec = FakeSymbolDecoder(data)
    got = codec.decompress(dec, ref, x.shape[-2], x.shape[-1], rate)
    dec.check_exhausted()
    return sent, got, data


@pytest.mark.parametrize("rate", [0, 3])
def test_compress_decompress_round_trip(codec: InterCodec, rate: int) -> None:
    hp, wp = 128, 192
    ref = reset_ref(1, hp, wp)
    for index in range(2):  # a reset frame, then a frame predicted from the decoded feature
        x = frame(1, hp, wp, seed=index)
        sent, got, data = round_trip(codec, x, ref, rate)
        assert [item[0] for item in data] == ["categorical", "gaussian", "gaussian"]
        assert data[0][1].numel() == 16 * 2 * 3 and data[0][2].shape == (16, 256)
        assert data[1][1].numel() == data[2][1].numel() == 16 * 8 * 12
        for key in ("feature", "f_pix", "tokens"):
            assert torch.equal(sent[key], got[key]), key
        with torch.no_grad():
            estimate = codec(x, ref, rate)
        assert torch.allclose(sent["bits"], estimate["bits"], rtol=1e-4)
        assert torch.equal(sent["f_pix"], estimate["f_pix"])
        ref = RefState(ref_feature=got["feature"])


def test_higher_rate_index_codes_finer(codec: InterCodec) -> None:
    """A higher rate index has a larger gain, so y is quantised more finely: larger-magnitude symbols."""
    x, ref = frame(1, 64, 64), reset_ref(1, 64, 64)
    magnitude = []
    for rate in (0, 3):
        _, _, data = round_trip(codec, x, ref, rate)
        magnitude.append(torch.cat([data[1][1], data[2][1]]).abs().float().mean().item())
    assert magnitude[1] > magnitude[0]


def test_real_entropy_coder_matches_estimate(codec: InterCodec) -> None:
    coder = pytest.importorskip("model.entropy_coder")
    x, ref = frame(1, 128, 192), reset_ref(1, 128, 192)
    enc = coder.SymbolEncoder()
    sent = codec.compress(x, ref, 2, enc)
    data = enc.finish()
    dec = coder.SymbolDecoder(data)
    got = codec.decompress(dec, ref, 128, 192, 2)
    dec.check_exhausted()
    for key in ("feature", "f_pix", "tokens"):
        assert torch.equal(sent[key], got[key]), key
    estimate = sent["bits"].item()
    assert abs(8 * len(data) - estimate) <= 0.01 * estimate + 96  # + flush and 32-bit word padding


def test_coder_gets_the_dense_prior_symbols_and_stds(codec: InterCodec, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gathered checkerboard steps hand the coder exactly what the dense masks give (format 2's computation):
    per step, clamp(round(y / q_dec * gain - means * gain)) and values[index(scales * gain)] at the step's mask."""
    from model.entropy_models import checkerboard_masks, clamp_symbols

    x, ref = frame(2, 128, 192), reset_ref(2, 128, 192)
    rate = torch.tensor([0, 2])
    steps: list[tuple[torch.Tensor, torch.Tensor]] = []
    seen: dict[str, torch.Tensor] = {}
    step_params, q_dec_of = codec._step_params, codec._q_dec

    def recorded(*args):
        steps.append(step_params(*args))
        return steps[-1]

    def q_dec(params):
        seen["q_dec"] = q_dec_of(params)
        return seen["q_dec"]

    monkeypatch.setattr(codec, "_step_params", recorded)
    monkeypatch.setattr(codec, "_q_dec", q_dec)
    hook = codec.encoder.register_forward_hook(lambda module, args, out: seen.setdefault("y", out))
    enc = FakeSymbolEncoder()
    try:
        codec.compress(x, ref, rate, enc)
    finally:
        hook.remove()
    y, gain, table = seen["y"], codec._gain(rate), codec.scale_table
    coded = [item for item in enc.finish() if item[0] == "gaussian"]
    assert len(coded) == len(steps) == 2
    for mask, (scales, means), (_, symbols, index, stds, escape) in zip(checkerboard_masks(*y.shape[1:]), steps, coded):
        sel = mask.bool().expand_as(y)
        assert not escape and stds == table.host_values
        expected = clamp_symbols(torch.round(y * seen["q_dec"].reciprocal() * gain - means * gain))[sel].long()
        assert torch.equal(symbols, expected)
        assert torch.equal(table.values[index], table.values[table.index(scales * gain)][sel])


def test_latent_input_starts_at_zero_changes_only_the_encoder_and_learns() -> None:
    """`inter_latent_input`: the branch starts at zero (same outputs as without it), the decoder needs no latent
    (same bitstream), a missing or misshapen latent is an error, and the branch gets a gradient."""
    torch.manual_seed(0)
    plain = InterCodec(tiny()).eval()
    torch.manual_seed(0)
    fed = InterCodec(tiny().replace(inter_latent_input=True)).eval()
    fed.load_state_dict(plain.state_dict(), strict=False)
    x, ref = frame(1, 64, 128), reset_ref(1, 64, 128)
    latent = torch.randn(1, 32, 8, 16)
    with torch.no_grad():
        a, b = plain(x, ref, 2), fed(x, ref, 2, latent)
    assert torch.equal(a["f_pix"], b["f_pix"]) and torch.equal(a["bits"], b["bits"])
    assert sorted(set(fed.state_dict()) - set(plain.state_dict())) == ["latent_emb.bias", "latent_emb.weight"]
    with pytest.raises(ValueError, match="also takes the frame's latent"):
        fed(x, ref, 2)
    with pytest.raises(ValueError, match=r"latent must have shape \(1, 32, 8, 16\)"):
        fed(x, ref, 2, latent[..., :8])
    fed.train()
    fed(x, ref, 2, latent)["bits"].sum().backward()
    assert fed.latent_emb.weight.grad.abs().sum() > 0
