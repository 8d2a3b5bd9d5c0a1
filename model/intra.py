"""I-frame codec: the release's IntraNoAR (S2VC_ARCHITECTURE.md §1.3, §2.2, §2.3, §2.5, §2.6).

Attribute names are the official state-dict keys (`enc.unet.*`, `hyper_enc.fusion.*`, ...). Widths derive from
S2VCConfig: internal width W = intra_unet_channels[0], N = intra_y_channels, sem = intra_unet_channels[-1],
S = semantic_channels, ctrl = ctrl_channels, z = len(fsq_levels).

The hyper-latent is FSQ-quantised (fixed-length indices); y uses the four-part spatial prior with the image scale
table, and its symbols are coded exactly whatever their size (an escape beyond [-128, 127], as the release's
rANS; model/symbol_escape.py). With `config.num_rates > 1` a learned per-rate gain `y_q_scale` [R, N, 1, 1]
scales y (and the predicted means and scales) before quantisation and is divided out afterwards; with one rate
there is no such parameter.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from model.compat import patch_torchvision
from model.config import S2VCConfig
from model.entropy_models import (
    FSQ,
    batch_of,
    check_frame,
    check_size,
    clamp_symbols,
    four_part_masks,
    gather,
    gaussian_likelihood,
    image_scale_table,
    initial_rate_gains,
    likelihood_bits,
    mask_positions,
    quantize,
    rate_tensor,
    release_bits,
    with_gain,
    without_gain,
)
from model.layers import AttnBlock, DepthConvBlock4, ResidualBlockUpsample, ResnetBlock, conv1x1, conv3x3
from model.symbol_escape import escape_bits

patch_torchvision()

from diffusers import UNet2DModel  # noqa: E402


class AnalysisUNet(UNet2DModel):
    """`enc.unet`: a diffusers UNet2DModel with a strided ResnetBlock stem as conv_in and a fixed time step.

    forward(x [B, ctrl, H/8, W/8]) -> (y-branch [B, W, H/16, W/16], sem = mid-block output [B, sem, H/64, W/64]).
    """

    def __init__(self, config: S2VCConfig):
        channels = tuple(config.intra_unet_channels)
        groups = config.norm_groups
        super().__init__(
            in_channels=config.ctrl_channels,
            out_channels=channels[0],
            down_block_types=("AttnDownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
            up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
            block_out_channels=channels,
            layers_per_block=2,
            attention_head_dim=config.intra_unet_attention_head_dim,
            norm_num_groups=groups,
        )
        self.timestep = config.timestep
        width = channels[0]
        self.conv_in = nn.Sequential(
            ResnetBlock(config.ctrl_channels, width, groups),
            ResnetBlock(width, width, groups),
            ResnetBlock(width, width, groups),
            conv3x3(width, width, stride=2),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        t = torch.full((x.shape[0],), self.timestep, dtype=torch.long, device=x.device)
        emb = self.time_embedding(self.time_proj(t).to(x.dtype))
        h = self.conv_in(x)
        skips: tuple[torch.Tensor, ...] = (h,)
        for block in self.down_blocks:
            h, res = block(hidden_states=h, temb=emb)
            skips += res
        sem = self.mid_block(h, emb)
        h = sem
        for block in self.up_blocks:
            n = len(block.resnets)
            h = block(h, skips[-n:], emb)
            skips = skips[:-n]
        return self.conv_out(self.conv_act(self.conv_norm_out(h))), sem


class IntraEncoder(nn.Module):
    """`enc`: pixel embedding (k8s8) fused with the VAE latent, analysis U-Net, transform to y."""

    def __init__(self, config: S2VCConfig):
        super().__init__()
        width, groups = config.intra_unet_channels[0], config.norm_groups
        self.pix_emb = nn.Conv2d(3, config.intra_pix_channels, 8, stride=8)
        self.pix_fusion = conv1x1(config.intra_pix_channels + config.latent_channels, config.ctrl_channels)
        self.unet = AnalysisUNet(config)
        self.trans_coding = nn.Sequential(
            ResnetBlock(width, width, groups),
            AttnBlock(width, groups),
            ResnetBlock(width, width, groups),
            DepthConvBlock4(width, width),
            DepthConvBlock4(width, config.intra_y_channels),
        )

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.pix_fusion(torch.cat([self.pix_emb(x), cond.to(x.dtype)], dim=1))
        feat, sem = self.unet(h)
        return self.trans_coding(feat), sem


class IntraDecoder(nn.Module):
    """`dec`: y_hat (H/16) and the semantic map (H/64) -> f_pix (ctrl channels at H/8)."""

    def __init__(self, config: S2VCConfig):
        super().__init__()
        width, groups = config.intra_unet_channels[0], config.norm_groups
        half, sem = width // 2, config.semantic_channels
        self.trans_coding = nn.Sequential(
            DepthConvBlock4(config.intra_y_channels, width), DepthConvBlock4(width, width)
        )
        self.blocks = nn.Sequential(
            *(ResnetBlock(width, width, groups) for _ in range(3)),
            conv1x1(width, 4 * width),
            nn.PixelShuffle(2),
            conv3x3(width, half),
            *(ResnetBlock(half, half, groups) for _ in range(3)),
        )
        self.sem_up = nn.Sequential(
            ResidualBlockUpsample(sem, width),
            DepthConvBlock4(width, width),
            ResidualBlockUpsample(width, half),
            DepthConvBlock4(half, half),
            ResidualBlockUpsample(half, half),
        )
        self.conv_out = DepthConvBlock4(2 * half, config.ctrl_channels)

    def forward(self, y_hat: torch.Tensor, y_semantic: torch.Tensor) -> torch.Tensor:
        pix = self.blocks(self.trans_coding(y_hat))
        return self.conv_out(torch.cat([pix, self.sem_up(y_semantic)], dim=1))


class SemanticAdaptor(nn.Module):
    """`semantic_adaptor`: z_semantic (N channels at H/64) -> CSG semantic map (S channels)."""

    def __init__(self, config: S2VCConfig):
        super().__init__()
        s, groups = config.semantic_channels, config.norm_groups
        self.to_semantic = nn.Sequential(
            DepthConvBlock4(config.intra_y_channels, s),
            ResnetBlock(s, s, groups),
            AttnBlock(s, groups),
            AttnBlock(s, groups),
            ResnetBlock(s, s, groups),
            AttnBlock(s, groups),
            AttnBlock(s, groups),
            DepthConvBlock4(s, s),
        )

    def forward(self, z_semantic: torch.Tensor) -> torch.Tensor:
        return self.to_semantic(z_semantic)


class IntraHyperEncoder(nn.Module):
    """`hyper_enc`: y (H/16) down to H/64, fused with the U-Net's semantic map -> z (FSQ dim channels)."""

    def __init__(self, config: S2VCConfig):
        super().__init__()
        n, width, groups = config.intra_y_channels, config.intra_unet_channels[0], config.norm_groups
        sem = config.intra_unet_channels[-1]
        self.y_trans_coding = nn.Sequential(
            DepthConvBlock4(n, n), conv3x3(n, n, stride=2), DepthConvBlock4(n, n), conv3x3(n, n, stride=2)
        )
        self.fusion = nn.Sequential(
            DepthConvBlock4(n + sem, sem),
            AttnBlock(sem, groups),
            DepthConvBlock4(sem, width),
            AttnBlock(width, groups),
            DepthConvBlock4(width, width),
            conv1x1(width, len(config.fsq_levels)),
        )

    def forward(self, y: torch.Tensor, sem: torch.Tensor) -> torch.Tensor:
        return self.fusion(torch.cat([self.y_trans_coding(y), sem], dim=1))


class IntraHyperDecoder(nn.Module):
    """`hyper_dec`: z_hat -> (entropy features N@H/16, z_semantic N@H/64)."""

    def __init__(self, config: S2VCConfig):
        super().__init__()
        n = config.intra_y_channels
        self.feat_in = nn.Sequential(conv1x1(len(config.fsq_levels), n), nn.LeakyReLU(0.01))
        self.to_entropy = nn.Sequential(
            DepthConvBlock4(n, n),
            ResidualBlockUpsample(n, n),
            DepthConvBlock4(n, n),
            ResidualBlockUpsample(n, n),
            DepthConvBlock4(n, n),
        )

    def forward(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z_semantic = self.feat_in(z_hat)
        return self.to_entropy(z_semantic), z_semantic


class IntraCodec(nn.Module):
    """IntraNoAR. forward / compress / decompress; see docs/INTERFACES.md."""

    def __init__(self, config: S2VCConfig):
        super().__init__()
        n = config.intra_y_channels
        if n % 4:
            raise ValueError(f"intra_y_channels must be divisible by 4 (four-part prior), got {n}")
        self.config = config
        self.train_quant = "ste"  # quantisation proxy used in training mode: "ste" or "noise"
        self.enc = IntraEncoder(config)
        self.dec = IntraDecoder(config)
        self.semantic_adaptor = SemanticAdaptor(config)
        self.hyper_enc = IntraHyperEncoder(config)
        self.hyper_dec = IntraHyperDecoder(config)
        self.z_vq = FSQ(config.fsq_levels)
        self.y_prior_fusion = nn.Sequential(DepthConvBlock4(n, 2 * n), DepthConvBlock4(2 * n, 2 * n))
        self.y_spatial_prior_reduction = conv1x1(2 * n, n)
        self.y_spatial_prior_adaptor_1 = DepthConvBlock4(2 * n, 2 * n)
        self.y_spatial_prior_adaptor_2 = DepthConvBlock4(2 * n, 2 * n)
        self.y_spatial_prior_adaptor_3 = DepthConvBlock4(2 * n, 2 * n)
        self.y_spatial_prior = nn.Sequential(*(DepthConvBlock4(2 * n, 2 * n) for _ in range(3)))
        if config.num_rates > 1:
            self.y_q_scale = nn.Parameter(initial_rate_gains(config.num_rates, n))
        else:
            self.register_parameter("y_q_scale", None)
        self.scale_table = image_scale_table()
        self._position_cache: dict = {}

    # ------------------------------------------------------------------------------------------ helpers
    def _rate(self, rate: int | torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
        return rate_tensor(rate, batch, self.config.num_rates, device)

    def _gain(self, rate: torch.Tensor) -> torch.Tensor | float:
        """Per-rate y gain [B, N, 1, 1]; exactly 1.0 (a no-op) for a single-rate model."""
        return 1.0 if self.y_q_scale is None else self.y_q_scale[rate].clamp_min(1e-3)

    def _check_cond(self, x: torch.Tensor, cond: torch.Tensor) -> None:
        expected = (x.shape[0], self.config.latent_channels, x.shape[-2] // 8, x.shape[-1] // 8)
        if tuple(cond.shape) != expected:
            raise ValueError(f"cond must have shape {expected}, got {tuple(cond.shape)}")

    def _prior_context(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z_hat -> (params [B, 2N, H/16, W/16], common [B, N, ...], y_semantic [B, S, H/64, W/64])."""
        feat, z_semantic = self.hyper_dec(z_hat)
        params = self.y_prior_fusion(feat)
        return params, self.y_spatial_prior_reduction(params), self.semantic_adaptor(z_semantic)

    def _step_params(
        self, step: int, params: torch.Tensor, common: torch.Tensor, y_hat: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(scales, means) for prior step 0..3; steps >= 1 condition on the y_hat decoded so far."""
        if step == 0:
            scales, means = params.chunk(2, dim=1)
        else:
            adaptor = getattr(self, f"y_spatial_prior_adaptor_{step}")
            scales, means = self.y_spatial_prior(adaptor(torch.cat([y_hat, common], dim=1))).chunk(2, dim=1)
        return scales, means

    def _masks(self, y_like: torch.Tensor) -> list[torch.Tensor]:
        b, c, h, w = y_like.shape
        return [m.bool() for m in four_part_masks(c, h, w, device=y_like.device)]

    def _outputs(self, y_hat: torch.Tensor, y_semantic: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"f_pix": self.dec(y_hat, y_semantic), "tokens": y_semantic.flatten(2).transpose(1, 2)}

    # ------------------------------------------------------------------------------------------ training / estimate
    def forward(self, x: torch.Tensor, cond: torch.Tensor, rate: int | torch.Tensor = 0) -> dict[str, Any]:
        """x [B,3,Hp,Wp] in [-1,1], cond = scaled VAE latent of x. Returns f_pix, tokens, likelihoods, bits [B].

        Training mode uses `train_quant` for y and straight-through FSQ; eval mode rounds and clamps exactly as
        `compress` does, so its bits equal the coded estimate.
        """
        check_frame(x, self.config.pad_multiple)
        self._check_cond(x, cond)
        r = self._rate(rate, x.shape[0], x.device)
        mode = self.train_quant if self.training else "round"
        y, sem = self.enc(x, cond)
        z_hat, _ = self.z_vq(self.hyper_enc(y, sem))
        params, common, y_semantic = self._prior_context(z_hat)
        gain = self._gain(r)
        y_s = y * gain
        y_hat = torch.zeros_like(y)
        lik_y = torch.ones_like(y)
        q_all = torch.zeros_like(y)
        for step, mask in enumerate(self._masks(y)):
            scales, means = self._step_params(step, params, common, y_hat)
            std = self.scale_table.quantize(scales * gain)
            means_s = means * gain
            q = quantize(y_s - means_s, mode)
            coded = q if self.training else clamp_symbols(q)  # out-of-range symbols: end bin + escape
            lik_y = torch.where(mask, gaussian_likelihood(coded, std), lik_y)
            q_all = torch.where(mask, q, q_all)
            y_hat = torch.where(mask, (q + means_s) / gain, y_hat)
        lik_z = torch.full_like(z_hat[:, :1], 2.0 ** -self.z_vq.bits)
        out = self._outputs(y_hat, y_semantic)
        out["likelihoods"] = {"y": lik_y, "z": lik_z}
        out["bits"] = likelihood_bits(lik_y) + likelihood_bits(lik_z)
        if not self.training:
            out["bits"] = out["bits"] + escape_bits(q_all.detach())
        return out

    # ------------------------------------------------------------------------------------------ entropy coding
    @torch.no_grad()
    def compress(self, x: torch.Tensor, cond: torch.Tensor, rate: int | torch.Tensor, enc: Any) -> dict[str, Any]:
        """Write the FSQ indices (fixed length), then y in 4 prior steps. Returns f_pix, tokens, bits [B]."""
        check_frame(x, self.config.pad_multiple)
        self._check_cond(x, cond)
        r = self._rate(rate, x.shape[0], x.device)
        y, sem = self.enc(x, cond)
        _, indices = self.z_vq(self.hyper_enc(y, sem))
        enc.encode_bits(indices.flatten(), self.z_vq.bits)
        bits = torch.full((x.shape[0],), float(indices[0].numel() * self.z_vq.bits), device=x.device)
        y_hat, y_semantic, y_bits, y_release_bits = self._code_y(indices, r, y.shape[-2:], y=y, enc=enc)
        out = self._outputs(y_hat, y_semantic)
        out["bits"] = bits + y_bits
        out["release_bits"] = y_release_bits
        return out

    @torch.no_grad()
    def decompress(self, dec: Any, hp: int, wp: int, rate: int | torch.Tensor = 0) -> dict[str, torch.Tensor]:
        """Read what `compress` wrote for a frame of padded size hp x wp. Returns f_pix, tokens."""
        check_size(hp, wp, self.config.pad_multiple)
        device = next(self.parameters()).device
        batch = batch_of(rate)
        r = self._rate(rate, batch, device)
        h64, w64 = hp // 64, wp // 64
        indices = dec.decode_bits(batch * h64 * w64, self.z_vq.bits, below=self.z_vq.codebook_size)
        indices = indices.to(device).reshape(batch, h64, w64)
        y_hat, y_semantic, _, _ = self._code_y(indices, r, (hp // 16, wp // 16), dec=dec)
        return self._outputs(y_hat, y_semantic)

    def _code_y(
        self,
        indices: torch.Tensor,
        rate: torch.Tensor,
        size: tuple[int, int],
        y: torch.Tensor | None = None,
        enc: Any = None,
        dec: Any = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Shared encoder/decoder loop over the four prior steps; encodes when `y` and `enc` are given.

        Returns y_hat, y_semantic, the coded y bits [B] (escapes included) and the release's estimate of them [B]
        (`release_bits`). Symbols beyond [-128, 127] are coded exactly with an escape (model/symbol_escape.py).
        """
        z_hat = self.z_vq.indices_to_codes(indices, check=False).to(self.y_spatial_prior_reduction.weight.dtype)
        params, common, y_semantic = self._prior_context(z_hat)
        gain = self._gain(rate)
        batch, n = indices.shape[0], self.config.intra_y_channels
        y_hat = params.new_zeros(batch, n, *size)
        gains = gain.expand_as(y_hat).reshape(-1) if isinstance(gain, torch.Tensor) else None
        bits = params.new_zeros(batch)
        release = torch.zeros(batch, device=params.device)
        stds = self.scale_table.host_values
        for step, positions in enumerate(self._positions(y_hat)):
            scales, means = self._step_params(step, params, common, y_hat)
            step_gain = gain if gains is None else gains.index_select(0, positions)
            scaled = with_gain(gather(scales, positions), step_gain)
            means_s = with_gain(gather(means, positions), step_gain)
            index = self.scale_table.index(scaled)
            if enc is not None:
                symbols = torch.round(with_gain(gather(y, positions), step_gain) - means_s).long()
                enc.encode_gaussian_indexed(symbols, index, stds, escape=True)
                q = symbols.to(y_hat.dtype)  # may be bf16: inexact above 256, as the dense q was
                bits += self.scale_table.bits(symbols, index).reshape(batch, -1).sum(dim=1)
                bits += escape_bits(symbols.reshape(batch, -1))
                release += release_bits(symbols, scaled).reshape(batch, -1).sum(dim=1)
            else:
                q = dec.decode_gaussian_indexed(index, stds, escape=True).to(y_hat.dtype)
            update = without_gain(q + means_s, step_gain)
            y_hat = y_hat.to(torch.promote_types(update.dtype, y_hat.dtype))
            y_hat.view(-1).index_copy_(0, positions, update.to(y_hat.dtype))
        return y_hat, y_semantic, bits, release

    def _positions(self, y_hat: torch.Tensor) -> list[torch.Tensor]:
        """Flat indices of each prior step's symbols in y_hat (cached per shape and device)."""
        key = (tuple(y_hat.shape), y_hat.device)
        if key not in self._position_cache:
            b, c, h, w = y_hat.shape
            self._position_cache = {key: mask_positions(four_part_masks(c, h, w), b, y_hat.device)}
        return self._position_cache[key]
