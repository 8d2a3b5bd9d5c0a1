"""OneStepUNet: official structure (meta device), tiny forward, adapters, fusion, x0 formula, weight loading."""
from __future__ import annotations

import math

import pytest
import torch

from model.config import official, tiny
from model.generator import (
    OneStepUNet,
    UNet2DConditionModel,
    alphas_cumprod,
    base_to_wrapped_keys,
    load_generator_state,
    load_sd15_weights,
    sd15_source,
    unet_kwargs,
)

ALPHA_BAR_999 = 0.00466009508818388


@pytest.fixture(scope="module")
def net() -> OneStepUNet:
    torch.manual_seed(0)
    return OneStepUNet(tiny()).eval()


def inputs(height: int, width: int, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """f_pix at H/8 and CSG tokens for an H x W frame of the tiny preset."""
    c = tiny()
    f_pix = torch.randn(batch, c.ctrl_channels, height // 8, width // 8)
    tokens = torch.randn(batch, (height // 64) * (width // 64), c.semantic_channels)
    return f_pix, tokens


def test_official_structure_on_meta() -> None:
    config = official()
    with torch.device("meta"):
        base = UNet2DConditionModel(**unet_kwargs(config))
        model = OneStepUNet(config)
    base_sd, sd = base.state_dict(), model.state_dict()
    assert (len(base_sd), sum(v.numel() for v in base_sd.values())) == (686, 859_520_964)
    assert (len(sd), sum(v.numel() for v in sd.values())) == (2129, 1_220_514_380)
    for name in ("iframe", "pframe"):
        assert sum(v.numel() for k, v in sd.items() if f".{name}." in k) == 67_252_224
        assert len({k.split(".lora_A.")[0] for k in sd if f".lora_A.{name}." in k}) == 278
    shapes = {
        "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.iframe.weight": (64, 320),
        "down_blocks.0.resnets.0.conv1.lora_A.pframe.weight": (64, 320, 3, 3),
        "down_blocks.0.resnets.0.conv1.base_layer.weight": (320, 320, 3, 3),
        "down_blocks.0.pframe_motion_fusion.cond_reduce.block.0.convs.2.weight": (640, 1, 5, 5),
        "down_blocks.2.pframe_motion_fusion.zero_conv.weight": (1280, 1280, 1, 1),
        "conv_in.weight": (320, 320, 3, 3),
        "vae_reduction.short_cut.weight": (4, 320, 1, 1),
    }
    for key, shape in shapes.items():
        assert tuple(sd[key].shape) == shape, key
    assert not any(k.startswith("conv_in.") and "lora" in k for k in sd)
    assert {k.split(".")[0] for k in sd} == {
        "conv_in", "time_embedding", "down_blocks", "mid_block", "up_blocks", "conv_norm_out", "conv_out",
        "vae_reduction",
    }
    fusion = [sum(p.numel() for p in model.down_blocks[i].pframe_motion_fusion.parameters()) for i in range(3)]
    assert fusion == [12_459_200, 44_222_720, 167_960_960]


def test_alpha_bar() -> None:
    assert float(alphas_cumprod(official())[999]) == ALPHA_BAR_999


@pytest.mark.parametrize("size", [(64, 64), (128, 192)])
def test_forward_shapes(net: OneStepUNet, size: tuple[int, int]) -> None:
    c = tiny()
    f_pix, tokens = inputs(*size, batch=2)
    h, w = size[0] // 8, size[1] // 8
    with torch.no_grad():
        net.set_mode("iframe")
        eps, r, feats = net(f_pix, tokens)
        net.set_mode("pframe")
        eps_p, r_p, feats_p = net(f_pix, tokens, feats)
    for t in (eps, r, eps_p, r_p):
        assert t.shape == (2, c.latent_channels, h, w)
    expected = [(2, ch, h // 2 ** (i + 1), w // 2 ** (i + 1)) for i, ch in enumerate(c.fusion_channels)]
    assert [tuple(f.shape) for f in feats] == expected == [tuple(f.shape) for f in feats_p]


def test_mode_checks(net: OneStepUNet) -> None:
    f_pix, tokens = inputs(64, 64)
    with torch.no_grad():
        feats = net.generate(f_pix, tokens, "iframe")[1]
        with pytest.raises(ValueError, match="iframe mode takes no prev_feats"):
            net.generate(f_pix, tokens, "iframe", feats)
        with pytest.raises(ValueError, match="pframe mode needs prev_feats"):
            net.generate(f_pix, tokens, "pframe")
        with pytest.raises(ValueError, match="pframe mode needs prev_feats"):
            net.generate(f_pix, tokens, "pframe", feats[:2])
        with pytest.raises(ValueError, match="mode must be one of"):
            net.set_mode("bframe")
    net.set_mode("pframe")
    assert net.mode == "pframe"


def test_adapters_are_separate() -> None:
    torch.manual_seed(1)
    model = OneStepUNet(tiny()).eval()
    lora_b = model.down_blocks[0].resnets[0].conv1.lora_B["iframe"]
    torch.nn.init.normal_(lora_b.weight, std=0.5)
    f_pix, tokens = inputs(64, 64)
    with torch.no_grad():
        model.set_mode("iframe")
        eps_i, _, feats = model(f_pix, tokens)
        model.set_mode("pframe")
        eps_p = model(f_pix, tokens, feats)[0]
    assert not torch.allclose(eps_i, eps_p)


def test_fusion_starts_as_identity_and_skips_stay_unfused() -> None:
    torch.manual_seed(2)
    model = OneStepUNet(tiny()).eval()
    f_pix, tokens = inputs(128, 192)
    with torch.no_grad():
        prev_a = model.generate(f_pix, tokens, "iframe")[1]
        prev_b = [torch.randn_like(t) for t in prev_a]
        model.set_mode("pframe")
        out_a = model(f_pix, tokens, prev_a)
        out_b = model(f_pix, tokens, prev_b)
        assert all(torch.equal(x, y) for x, y in zip(out_a[2], out_b[2]))
        assert torch.equal(out_a[0], out_b[0])

        torch.nn.init.normal_(model.down_blocks[0].pframe_motion_fusion.zero_conv.weight, std=0.1)
        seen: dict[str, torch.Tensor] = {}
        # with layers_per_block=1, up block 2 receives (down block 0 output, down block 1 resnet output)
        hook = model.up_blocks[2].register_forward_pre_hook(
            lambda m, a, kw: seen.update(skip=kw["res_hidden_states_tuple"][0]), with_kwargs=True
        )
        eps_a, _, feats_a = model(f_pix, tokens, prev_a)
        hook.remove()
        eps_b, _, feats_b = model(f_pix, tokens, prev_b)
    assert torch.equal(seen["skip"], feats_a[0])  # the skip is the unfused h_0
    assert torch.equal(feats_a[0], feats_b[0])  # h_0 is taken before fusion
    assert not torch.allclose(feats_a[1], feats_b[1])  # the fused h_0 feeds down block 1
    assert not torch.allclose(eps_a, eps_b)


def test_generate_x0_formula_and_prev_feats_untouched(net: OneStepUNet) -> None:
    f_pix, tokens = inputs(64, 128)
    with torch.no_grad():
        _, prev = net.generate(f_pix, tokens, "iframe")
        prev_copy = list(prev)
        x0, feats = net.generate(f_pix, tokens, "pframe", prev)
        assert net.mode == "pframe"
        eps, r, _ = net(f_pix, tokens, prev)
    assert len(prev) == len(prev_copy) and all(a is b for a, b in zip(prev, prev_copy))
    a = ALPHA_BAR_999
    expected = ((r.double() - math.sqrt(1 - a) * eps.double()) / math.sqrt(a)).float()
    assert x0.dtype == torch.float32
    assert torch.equal(x0, expected)
    assert len(feats) == 3


def test_load_generator_state_reports(net: OneStepUNet) -> None:
    torch.manual_seed(3)
    other = OneStepUNet(tiny())
    state = dict(other.state_dict())
    dropped = "down_blocks.1.pframe_motion_fusion.zero_conv.weight"
    del state[dropped]
    state["extra.weight"] = torch.zeros(1)
    state["conv_out.bias"] = torch.zeros(5)
    target = OneStepUNet(tiny())
    missing, unexpected, mismatches = load_generator_state(target, state)
    assert missing == [dropped]
    assert unexpected == ["extra.weight"]
    assert mismatches == [("conv_out.bias", (5,), (tiny().latent_channels,))]
    key = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.iframe.weight"
    assert torch.equal(target.state_dict()[key], other.state_dict()[key])


def test_sd15_source(monkeypatch) -> None:
    monkeypatch.delenv("S2VC_SD15", raising=False)
    assert sd15_source(official()) == official().sd15_id
    monkeypatch.setenv("S2VC_SD15", "/models/sd15")
    assert sd15_source(official()) == "/models/sd15"
    assert sd15_source(official(), "/other") == "/other"


def test_load_sd15_weights_from_local_folder(tmp_path) -> None:
    torch.manual_seed(4)
    config = tiny()
    base = UNet2DConditionModel(**unet_kwargs(config))
    base.save_pretrained(tmp_path / "unet")
    model = OneStepUNet(config)
    missing, unexpected, mismatches = load_sd15_weights(model, str(tmp_path), local_files_only=True)
    assert (missing, unexpected, mismatches) == ([], [], [])
    own = model.state_dict()
    for key, value in base_to_wrapped_keys(model, base.state_dict()).items():
        if not key.startswith("conv_in."):
            assert torch.equal(own[key], value), key


def test_bf16_iframe_then_fp32_pframe(net: OneStepUNet) -> None:
    f_pix, tokens = inputs(64, 64)
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            x0_i, feats = net.generate(f_pix, tokens, "iframe")
        x0_p, feats_p = net.generate(f_pix, tokens, "pframe", feats)
    assert x0_i.dtype == x0_p.dtype == torch.float32
    assert all(f.dtype == torch.bfloat16 for f in feats)
    assert all(f.dtype == torch.float32 for f in feats_p)
    assert torch.isfinite(x0_p).all()


def test_adapter_switches_only_when_the_frame_type_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    """peft's set_adapter (a walk over every module) runs once per change of frame type, also after a switch made
    through peft directly; the adapters, their trainability and the state-dict keys are as without the cache."""
    torch.manual_seed(3)
    model = OneStepUNet(tiny()).eval()
    keys = set(model.state_dict())
    switches: list[str] = []
    set_adapter = model.set_adapter
    monkeypatch.setattr(model, "set_adapter", lambda name: (switches.append(name), set_adapter(name)))
    for mode in ("iframe", "pframe", "pframe", "pframe", "iframe", "iframe", "pframe"):
        model.set_mode(mode)
        assert model.mode == mode
    assert switches == ["iframe", "pframe", "iframe", "pframe"]
    set_adapter("iframe")  # behind set_mode's back
    model.set_mode("pframe")
    assert switches[-1] == "pframe" and model.mode == "pframe"
    lora = dict(model.named_parameters())
    assert all(p.requires_grad == (".pframe." in n) for n, p in lora.items() if ".lora_" in n)
    assert set(model.state_dict()) == keys
