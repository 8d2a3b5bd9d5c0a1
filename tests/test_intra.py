"""I-frame codec (IntraNoAR): official structure, tiny forward/backward, compress/decompress round trip."""
from __future__ import annotations

import pytest
import torch

from model.config import official, tiny
from model.intra import IntraCodec
from tests.test_entropy_models import FakeSymbolDecoder, FakeSymbolEncoder, single_thread  # noqa: F401 (autouse)

OFFICIAL_TENSORS = 779
OFFICIAL_PARAMS = 394_147_783


@pytest.fixture(scope="module")
def official_state() -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return IntraCodec(official()).state_dict()


@pytest.fixture(scope="module")
def codec() -> IntraCodec:
    torch.manual_seed(0)
    return IntraCodec(tiny()).eval()


def frame(b: int, h: int, w: int, latent: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(h * 1000 + w)
    x = torch.rand(b, 3, h, w, generator=g) * 2 - 1
    cond = torch.randn(b, latent, h // 8, w // 8, generator=g)
    return x, cond


def test_official_counts(official_state: dict[str, torch.Tensor]) -> None:
    assert len(official_state) == OFFICIAL_TENSORS
    assert sum(v.numel() for v in official_state.values()) == OFFICIAL_PARAMS


def test_official_key_names(official_state: dict[str, torch.Tensor]) -> None:
    shapes = {k: tuple(v.shape) for k, v in official_state.items()}
    assert shapes["enc.unet.conv_in.0.nin_shortcut.weight"] == (512, 512, 1, 1)
    assert shapes["enc.unet.conv_in.3.weight"] == (512, 512, 3, 3)
    assert shapes["enc.unet.down_blocks.0.attentions.0.to_q.weight"] == (512, 512)
    assert "enc.unet.down_blocks.0.attentions.0.to_out.0.weight" in shapes
    assert "enc.unet.down_blocks.0.attentions.0.group_norm.weight" in shapes
    assert shapes["enc.unet.mid_block.resnets.1.time_emb_proj.weight"] == (768, 2048)
    assert shapes["enc.unet.time_embedding.linear_1.weight"] == (2048, 512)
    assert shapes["enc.unet.conv_out.weight"] == (512, 512, 3, 3)
    assert shapes["enc.pix_emb.weight"] == (192, 3, 8, 8)
    assert shapes["enc.pix_fusion.weight"] == (320, 196, 1, 1)
    assert shapes["enc.trans_coding.4.block.0.adaptor.weight"] == (128, 512, 1, 1)
    assert shapes["dec.blocks.3.weight"] == (2048, 512, 1, 1)
    assert shapes["dec.sem_up.0.subpel_conv.0.weight"] == (2048, 768, 1, 1)
    assert shapes["dec.conv_out.block.0.conv2.weight"] == (320, 512, 1, 1)
    assert shapes["semantic_adaptor.to_semantic.2.q.weight"] == (768, 768, 1, 1)
    assert shapes["hyper_enc.fusion.0.block.0.conv1.0.weight"] == (896, 896, 1, 1)
    assert shapes["hyper_enc.fusion.5.weight"] == (7, 512, 1, 1)
    assert shapes["hyper_dec.feat_in.0.weight"] == (128, 7, 1, 1)
    assert shapes["y_spatial_prior_reduction.weight"] == (128, 256, 1, 1)
    assert shapes["y_spatial_prior_adaptor_3.block.1.conv.weight"] == (1024, 256, 1, 1)
    assert shapes["y_spatial_prior.2.block.1.conv_out.weight"] == (256, 512, 1, 1)
    assert not any(k.startswith(("z_vq", "y_q_scale", "scale_table")) for k in shapes)


def test_tiny_has_official_keys_plus_rate_gains(official_state: dict[str, torch.Tensor], codec: IntraCodec) -> None:
    keys = set(codec.state_dict())
    assert keys - set(official_state) == {"y_q_scale"}
    assert set(official_state) - keys == set()
    assert codec.y_q_scale.shape == (5, 32, 1, 1)
    gains = codec.y_q_scale[:, 0, 0, 0]
    assert bool((gains.diff() > 0).all())


def test_single_rate_model_has_no_rate_parameters() -> None:
    model = IntraCodec(tiny().replace(num_rates=1, rate_names=("default",)))
    assert model.y_q_scale is None and "y_q_scale" not in model.state_dict()
    x, cond = frame(1, 64, 64)
    with pytest.raises(ValueError, match="rate index out of range"):
        model.eval()(x, cond, rate=1)


@pytest.mark.parametrize("hp,wp", [(64, 64), (128, 192)])
def test_forward_shapes(codec: IntraCodec, hp: int, wp: int) -> None:
    x, cond = frame(2, hp, wp)
    with torch.no_grad():
        out = codec(x, cond, rate=torch.tensor([0, 3]))
    assert out["f_pix"].shape == (2, tiny().ctrl_channels, hp // 8, wp // 8)
    assert out["tokens"].shape == (2, (hp // 64) * (wp // 64), 64)
    assert out["likelihoods"]["y"].shape == (2, 32, hp // 16, wp // 16)
    assert out["likelihoods"]["z"].shape == (2, 1, hp // 64, wp // 64)
    assert out["bits"].shape == (2,)
    fsq_bits = 14 * (hp // 64) * (wp // 64)
    assert bool((out["bits"] > fsq_bits).all())
    assert bool(torch.isfinite(out["f_pix"]).all())


def test_input_validation(codec: IntraCodec) -> None:
    x, cond = frame(1, 64, 64)
    with pytest.raises(ValueError, match="multiple of 64"):
        codec(x[..., :48], cond[..., :6])
    with pytest.raises(ValueError, match="cond must have shape"):
        codec(x, cond[:, :4])
    with pytest.raises(ValueError, match="rate index out of range"):
        codec(x, cond, rate=5)
    with pytest.raises(ValueError, match="multiple of 64"):
        codec.decompress(FakeSymbolDecoder([]), 100, 64, 0)


@pytest.mark.parametrize("train_quant", ["ste", "noise"])
def test_gradients_flow_in_training(train_quant: str) -> None:
    torch.manual_seed(1)
    model = IntraCodec(tiny()).train()
    model.train_quant = train_quant
    x, cond = frame(1, 64, 64)
    out = model(x, cond, rate=2)
    loss = out["bits"].sum() / 1e3 + out["f_pix"].square().mean() + out["tokens"].square().mean()
    loss.backward()
    for name in (
        "enc.pix_emb.weight",
        "enc.unet.conv_in.0.conv1.weight",
        "enc.unet.down_blocks.0.attentions.0.to_q.weight",
        "hyper_enc.fusion.5.weight",
        "hyper_dec.feat_in.0.weight",
        "y_spatial_prior_adaptor_3.block.0.conv2.weight",
        "semantic_adaptor.to_semantic.0.block.0.conv2.weight",
        "dec.conv_out.block.1.conv_out.weight",
        "y_q_scale",
    ):
        grad = model.get_parameter(name).grad
        assert grad is not None and bool(grad.abs().sum() > 0), name


@pytest.mark.parametrize("rate", [0, 3])
def test_compress_decompress_round_trip(codec: IntraCodec, rate: int) -> None:
    x, cond = frame(1, 128, 192)
    enc = FakeSymbolEncoder()
    sent = codec.compress(x, cond, rate, enc)
    data = enc.finish()
    assert [item[0] for item in data] == ["bits"] + ["gaussian"] * 4
    assert data[0][2] == 14 and data[0][1].numel() == 2 * 3
    assert sum(item[1].numel() for item in data[1:]) == 32 * 8 * 12
    dec = FakeSymbolDecoder(data)
    got = codec.decompress(dec, 128, 192, rate)
    dec.check_exhausted()
    assert torch.equal(sent["f_pix"], got["f_pix"]) and torch.equal(sent["tokens"], got["tokens"])
    with torch.no_grad():
        estimate = codec(x, cond, rate)
    assert torch.allclose(sent["bits"], estimate["bits"], rtol=1e-5)
    assert torch.equal(sent["f_pix"], estimate["f_pix"])


def test_higher_rate_index_codes_finer(codec: IntraCodec) -> None:
    """A higher rate index has a larger gain, so y is quantised more finely: larger-magnitude symbols."""
    x, cond = frame(1, 64, 64)
    errors = []
    for rate in (0, 3):
        enc = FakeSymbolEncoder()
        codec.compress(x, cond, rate, enc)
        symbols = torch.cat([item[1] for item in enc.finish()[1:]])
        errors.append(symbols.abs().float().mean().item())
    assert errors[1] > errors[0]


def test_real_entropy_coder_matches_estimate(codec: IntraCodec) -> None:
    coder = pytest.importorskip("model.entropy_coder")
    x, cond = frame(1, 128, 192)
    enc = coder.SymbolEncoder()
    sent = codec.compress(x, cond, 3, enc)
    data = enc.finish()
    got = codec.decompress(coder.SymbolDecoder(data), 128, 192, 3)
    assert torch.equal(sent["f_pix"], got["f_pix"]) and torch.equal(sent["tokens"], got["tokens"])
    estimate = sent["bits"].item()
    assert abs(8 * len(data) - estimate) <= 0.01 * estimate + 96  # + flush and 32-bit word padding


def test_coder_gets_the_dense_prior_symbols_and_stds(codec: IntraCodec, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gathered prior steps hand the coder exactly what the dense masks give (format 2's computation): per
    step, round(y * gain - means * gain) and values[index(scales * gain)] at the step's mask, in raster order."""
    from model.entropy_models import four_part_masks

    x, cond = frame(2, 128, 192)
    rate = torch.tensor([1, 3])
    steps: list[tuple[torch.Tensor, torch.Tensor]] = []
    step_params = codec._step_params

    def recorded(*args):
        steps.append(step_params(*args))
        return steps[-1]

    monkeypatch.setattr(codec, "_step_params", recorded)
    enc = FakeSymbolEncoder()
    codec.compress(x, cond, rate, enc)
    y = codec.enc(x, cond)[0]
    gain = codec._gain(rate)
    table = codec.scale_table
    coded = [item for item in enc.finish() if item[0] == "gaussian"]
    assert len(coded) == len(steps) == 4
    for mask, (scales, means), (_, symbols, index, stds, escape) in zip(four_part_masks(*y.shape[1:]), steps, coded):
        sel = mask.bool().expand_as(y)
        assert escape and stds == table.host_values
        assert torch.equal(symbols, torch.round(y * gain - means * gain)[sel].long())
        assert torch.equal(table.values[index], table.values[table.index(scales * gain)][sel])
