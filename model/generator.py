"""One-step generator: the SD 1.5 U-Net with two LoRA adapters, a control input, and TCG motion fusion.

Build order and key names follow S2VC_ARCHITECTURE.md §3.1-§3.3: base U-Net -> LoRA adapters `iframe`, `pframe`
(peft) -> plain `conv_in` (ctrl -> ctrl, no LoRA) -> `vae_reduction` -> `down_blocks[i].pframe_motion_fusion`.
The state dict therefore matches the official `P_ckpts/lmbda*/model.safetensors`.
"""
from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import nn

from model.compat import patch_torchvision
from model.config import S2VCConfig
from model.layers import MotionFusionBlock, ReduceResBlock

patch_torchvision()

from diffusers import UNet2DConditionModel  # noqa: E402
from peft import LoraConfig  # noqa: E402
from peft.tuners.tuners_utils import BaseTunerLayer  # noqa: E402

MODES = ("iframe", "pframe")
LORA_TARGETS = (
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
    "proj_in",
    "proj_out",
    "ff.net.0.proj",
    "ff.net.2",
    "conv1",
    "conv2",
    "conv_shortcut",
    "downsamplers.0.conv",
    "upsamplers.0.conv",
    "time_emb_proj",
)
LORA_EXCLUDE = r".*(conv_in|add_attentions).*"  # regex: every module name containing either word
SD15_ENV = "S2VC_SD15"


class StateDictReport(NamedTuple):
    """Outcome of a non-strict load: keys the model lacked values for, extra keys, and (key, file, model) shapes."""

    missing: list[str]
    unexpected: list[str]
    shape_mismatches: list[tuple[str, tuple[int, ...], tuple[int, ...]]]


def unet_kwargs(config: S2VCConfig) -> dict[str, Any]:
    """UNet2DConditionModel constructor arguments of the (SD 1.5-shaped) base U-Net, built without the hub."""
    return {
        "sample_size": 64,
        "in_channels": config.latent_channels,
        "out_channels": config.latent_channels,
        "down_block_types": tuple(config.unet_down_block_types),
        "up_block_types": tuple(config.unet_up_block_types),
        "block_out_channels": tuple(config.unet_block_out_channels),
        "layers_per_block": config.unet_layers_per_block,
        "attention_head_dim": config.unet_attention_head_dim,
        "norm_num_groups": config.unet_norm_num_groups,
        "cross_attention_dim": config.semantic_channels,
        "act_fn": "silu",
        "norm_eps": 1e-5,
        "flip_sin_to_cos": True,
        "freq_shift": 0,
        "center_input_sample": False,
        "downsample_padding": 1,
        "mid_block_scale_factor": 1.0,
        "use_linear_projection": False,
    }


def lora_config(config: S2VCConfig) -> LoraConfig:
    """The LoraConfig shared by both adapters (§3.1)."""
    return LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=0.0,
        bias="none",
        init_lora_weights=True,
        target_modules=list(LORA_TARGETS),
        exclude_modules=LORA_EXCLUDE,
    )


def alphas_cumprod(config: S2VCConfig) -> torch.Tensor:
    """Scaled-linear schedule: betas sqrt-spaced then squared, cumulative product in float32 (as DDIMScheduler)."""
    betas = torch.linspace(
        config.beta_start**0.5, config.beta_end**0.5, config.num_train_timesteps, dtype=torch.float32, device="cpu"
    ) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


class OneStepUNet(UNet2DConditionModel):
    """SD 1.5 U-Net turned into a one-step generator conditioned on a control feature f_pix and CSG tokens.

    `forward(f_pix, tokens, prev_feats)` returns (eps, r, feats): eps is the predicted noise, r = vae_reduction(f_pix)
    the noisy-sample proxy, feats the outputs of down blocks 0..fusion_levels-1 (before fusion).
    After construction (peft) the base U-Net weights are frozen; conv_in, vae_reduction, the fusion blocks and the
    active adapter are trainable.
    """

    def __init__(self, config: S2VCConfig):
        super().__init__(**unet_kwargs(config))
        self.s2vc_config = config
        self._lora_probe: tuple[BaseTunerLayer, ...] = ()  # a tuple: an attribute holding a module would register it
        with warnings.catch_warnings():  # peft warns that a second adapter is being added, which is intended
            warnings.filterwarnings("ignore", message="Already found a `peft_config`")
            for name in MODES:
                self.add_adapter(lora_config(config), adapter_name=name)
        ctrl = config.ctrl_channels
        self.conv_in = nn.Conv2d(ctrl, ctrl, kernel_size=3, padding=1)
        self.vae_reduction = ReduceResBlock(ctrl, config.latent_channels, groups=config.norm_groups)
        for i, channels in enumerate(config.fusion_channels):
            self.down_blocks[i].pframe_motion_fusion = MotionFusionBlock(channels, config.motion_channels)
        self.alpha_bar = float(alphas_cumprod(config)[config.timestep])  # fp32 value promoted to double
        self.set_mode("pframe")

    # --- adapters ---
    def set_mode(self, mode: str) -> None:
        """Activate the LoRA adapter of one frame type ("iframe" or "pframe").

        As in peft, the active adapter's LoRA weights become trainable and the other adapter's are frozen. peft's
        switch visits every module (tens of ms on the official U-Net), so it runs only when `mode` is not already
        the active adapter of the LoRA layers (checked on the first one: peft switches them all together).
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if self._first_lora_layer().active_adapters != [mode]:
            self.set_adapter(mode)

    def _first_lora_layer(self) -> BaseTunerLayer:
        """The first peft LoRA layer (cached: the module tree does not change after construction)."""
        if not self._lora_probe:
            self._lora_probe = (next(m for m in self.modules() if isinstance(m, BaseTunerLayer)),)
        return self._lora_probe[0]

    @property
    def mode(self) -> str:
        """The active adapter; raises if it is not exactly one of `iframe` / `pframe`."""
        active = self.active_adapters()
        if len(active) != 1 or active[0] not in MODES:
            raise RuntimeError(f"OneStepUNet needs exactly one active adapter of {MODES}, found {active}")
        return active[0]

    # --- network ---
    def forward(  # type: ignore[override]
        self,
        f_pix: torch.Tensor,
        tokens: torch.Tensor,
        prev_feats: list[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """One U-Net pass at t = config.timestep; fuses `prev_feats` into down blocks 0..2 in pframe mode."""
        mode = self.mode
        levels = self.s2vc_config.fusion_levels
        if mode == "iframe" and prev_feats is not None:
            raise ValueError("iframe mode takes no prev_feats")
        if mode == "pframe":
            if prev_feats is None or len(prev_feats) != levels:
                got = None if prev_feats is None else len(prev_feats)
                raise ValueError(f"pframe mode needs prev_feats with {levels} tensors, got {got}")

        r = self.vae_reduction(f_pix)
        timestep = torch.full((f_pix.shape[0],), self.s2vc_config.timestep, dtype=torch.long, device=f_pix.device)
        emb = self.time_embedding(self.get_time_embed(sample=f_pix, timestep=timestep))

        up_factor = 2**self.num_upsamplers
        needs_size = any(d % up_factor for d in f_pix.shape[-2:])

        h = self.conv_in(f_pix)
        skips: tuple[torch.Tensor, ...] = (h,)
        feats: list[torch.Tensor] = []
        for i, block in enumerate(self.down_blocks):
            if getattr(block, "has_cross_attention", False):
                h, res = block(hidden_states=h, temb=emb, encoder_hidden_states=tokens)
            else:
                h, res = block(hidden_states=h, temb=emb)
            skips += res  # the skips keep the unfused tensor
            if i < levels:
                feats.append(h)
                if mode == "pframe":
                    h = block.pframe_motion_fusion(h, prev_feats[i])

        h = self.mid_block(h, emb, encoder_hidden_states=tokens)

        for i, block in enumerate(self.up_blocks):
            n = len(block.resnets)
            res, skips = skips[-n:], skips[:-n]
            size = skips[-1].shape[2:] if needs_size and i < len(self.up_blocks) - 1 else None
            if getattr(block, "has_cross_attention", False):
                h = block(
                    hidden_states=h, temb=emb, res_hidden_states_tuple=res, encoder_hidden_states=tokens,
                    upsample_size=size,
                )
            else:
                h = block(hidden_states=h, temb=emb, res_hidden_states_tuple=res, upsample_size=size)

        eps = self.conv_out(self.conv_act(self.conv_norm_out(h)))
        return eps, r, feats

    def predict_x0(self, eps: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """x0 = (r - sqrt(1 - abar) * eps) / sqrt(abar), computed in float64 and returned as float32."""
        a = self.alpha_bar
        x0 = (r.double() - math.sqrt(1.0 - a) * eps.double()) / math.sqrt(a)
        return x0.float()

    def generate(
        self,
        f_pix: torch.Tensor,
        tokens: torch.Tensor,
        mode: str,
        prev_feats: list[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Select the adapter, run one step, return (x0 latent in fp32, down-block features for the next frame)."""
        self.set_mode(mode)
        eps, r, feats = self(f_pix, tokens, None if prev_feats is None else list(prev_feats))
        return self.predict_x0(eps, r), feats


# --- weights ---
def sd15_source(config: S2VCConfig, source: str | None = None) -> str:
    """Where the SD 1.5 U-Net comes from: explicit argument, else env var S2VC_SD15, else config.sd15_id."""
    return source or os.environ.get(SD15_ENV) or config.sd15_id


def load_generator_state(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> StateDictReport:
    """Non-strict load that copies every key of matching shape and reports the rest (official P_ckpts file).

    A model built on the meta device gets the file's tensors assigned instead of copied.
    """
    own = model.state_dict()
    mismatches = [
        (k, tuple(v.shape), tuple(own[k].shape))
        for k, v in state_dict.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    bad = {k for k, _, _ in mismatches}
    usable = {k: v for k, v in state_dict.items() if k in own and k not in bad}
    model.load_state_dict(usable, strict=False, assign=any(p.is_meta for p in model.parameters()))
    missing = sorted(k for k in own if k not in state_dict)
    unexpected = sorted(k for k in state_dict if k not in own)
    return StateDictReport(missing, unexpected, mismatches)


def base_to_wrapped_keys(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename plain U-Net keys to the peft layout (`x.weight` -> `x.base_layer.weight` for wrapped modules)."""
    own = model.state_dict()
    renamed = {}
    for key, value in state_dict.items():
        prefix, _, leaf = key.rpartition(".")
        wrapped = f"{prefix}.base_layer.{leaf}"
        renamed[wrapped if wrapped in own else key] = value
    return renamed


def load_sd15_weights(
    model: OneStepUNet,
    source: str | None = None,
    cache_dir: str | None = None,
    local_files_only: bool = False,
) -> StateDictReport:
    """Copy the SD 1.5 U-Net weights into the base layers; conv_in is skipped (it is replaced, ctrl -> ctrl).

    `source` is a hub id or a local diffusers folder (see `sd15_source`). The report's `missing` lists only base
    keys that SD 1.5 did not provide (LoRA, conv_in, vae_reduction and fusion weights are expected to stay).
    """
    base = UNet2DConditionModel.from_pretrained(
        sd15_source(model.s2vc_config, source),
        subfolder="unet",
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        torch_dtype=torch.float32,
    )
    state = {k: v for k, v in base.state_dict().items() if not k.startswith("conv_in.")}
    del base
    report = load_generator_state(model, base_to_wrapped_keys(model, state))
    new = (".lora_A.", ".lora_B.", "conv_in.", "vae_reduction.", ".pframe_motion_fusion.")
    missing = [k for k in report.missing if not any(s in k or k.startswith(s) for s in new)]
    return StateDictReport(missing, report.unexpected, report.shape_mismatches)
