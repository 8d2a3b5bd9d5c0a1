"""P-frame codec: the release's DMC_OneDC (S2VC_ARCHITECTURE.md §1.4, §1.5, §2.4, §2.6).

Attribute names are the official state-dict keys. Widths derive from S2VCConfig: ch = inter_channels,
ch0 = 3*ch/2, ch1 = 2*ch (the concatenated input of encoder and decoder), Y = inter_y_channels,
Z = inter_z_channels; the temporal prior is 2Y wide, the prior fusion 3Y = [q_dec | scales | means] and the
spatial prior maps 4Y -> 3Y -> 2Y = [scales | means]. recon_pix ends at ctrl_channels, recon_semantic at
semantic_channels (H/64).

z uses the factorized `bit_estimator_z` (one density per rate point); y the two-step checkerboard prior with
a learned quantisation step q_dec and the video scale table. With `config.num_rates > 1` a learned per-rate
gain `y_q_scale` [R, Y, 1, 1] multiplies y / q_dec (and the predicted means and scales) before quantisation.

With `config.inter_latent_input` (not in the release) the encoder's input is `pix_emb(x) + latent_emb(latent)`,
the frame's autoencoder latent through a 1x1 conv that starts at zero (the model computes what it did without it);
only the encoder needs the latent, so decoding and the bitstream are unchanged.

With `config.inter_x0_skip` (not in the release) `add_reference` adds `x0_skip` (a per-channel gain [1, C, 1, 1],
starting at zero) times the reference x0 latent to the generator's x0 of a P-frame; encoder and decoder both hold
that reference, so the bitstream is unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from model.config import S2VCConfig
from model.entropy_models import (
    SYMBOL_MIN,
    BitEstimator,
    batch_of,
    check_frame,
    check_size,
    checkerboard_masks,
    clamp_symbols,
    gather,
    gaussian_likelihood,
    initial_rate_gains,
    leaky,
    likelihood_bits,
    mask_positions,
    quantize,
    rate_tensor,
    video_scale_table,
    with_gain,
    without_gain,
)
from model.layers import (
    AttnBlock,
    ConvFFN,
    DepthConvBlock4,
    DepthConvBlock5,
    ResBlock,
    ResidualBlockUpsample,
    ResidualBlockWithStride,
    conv1x1,
    zero_conv1x1,
)

Q_DEC_MIN = 0.5


@dataclass
class RefState:
    """What a P-frame is predicted from: the last P feature, or (reset frames) the last x0 latent."""

    ref_feature: torch.Tensor | None = None  # [B, inter_channels, H/8, W/8]
    ref_latent: torch.Tensor | None = None  # [B, latent_channels, H/8, W/8]
    is_reset: bool = False


class ConvStack(nn.Module):
    """A Sequential stored under the child name `conv` (the release's key layout for most sub-networks)."""

    def __init__(self, *layers: nn.Module):
        super().__init__()
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def dcb5_trunk(cin: int, ch: int) -> nn.Sequential:
    """cin -> 3ch/2 (x3) -> ch (x3): the body of the contextual encoder and decoder."""
    ch0 = ch * 3 // 2
    return nn.Sequential(
        DepthConvBlock5(cin, ch0),
        DepthConvBlock5(ch0, ch0),
        DepthConvBlock5(ch0, ch0),
        DepthConvBlock5(ch0, ch),
        DepthConvBlock5(ch, ch),
        DepthConvBlock5(ch, ch),
    )


class FeatureExtractor(nn.Module):
    """`feature_extractor`: propagated feature -> (ctx, ctx_t), both ch wide at H/8."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = nn.Sequential(*(DepthConvBlock5(ch, ch) for _ in range(3)))
        self.conv2 = nn.Sequential(*(DepthConvBlock5(ch, ch) for _ in range(3)))

    def forward(self, feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ctx = self.conv1(feature)
        return ctx, self.conv2(ctx)


class ContextualEncoder(nn.Module):
    """`encoder`: x_emb (+) ctx -> y (Y channels at H/16)."""

    def __init__(self, ch: int, y_ch: int):
        super().__init__()
        self.conv1 = dcb5_trunk(2 * ch, ch)
        self.conv2 = nn.Sequential(ResidualBlockWithStride(ch, ch, 2), ResBlock(ch), conv1x1(ch, y_ch))

    def forward(self, x_emb: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(torch.cat([x_emb, ctx], dim=1)))


class ContextualDecoder(nn.Module):
    """`decoder`: y_hat (H/16) and ctx -> feature (ch channels at H/8)."""

    def __init__(self, ch: int, y_ch: int):
        super().__init__()
        self.conv1 = nn.Sequential(conv1x1(y_ch, ch), ResBlock(ch), ResidualBlockUpsample(ch, ch))
        self.conv2 = dcb5_trunk(2 * ch, ch)

    def forward(self, y_hat: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        return self.conv2(torch.cat([self.conv1(y_hat), ctx], dim=1))


class ReconHead(nn.Module):
    """`recon_pix`: feature -> f_pix (ctrl channels)."""

    def __init__(self, ch: int, out_ch: int):
        super().__init__()
        self.net = nn.Sequential(ResBlock(ch), ResBlock(ch), ResBlock(ch, out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SemanticHead(nn.Module):
    """`recon_semantic`: feature (H/8) -> CSG semantic map (semantic channels at H/64)."""

    def __init__(self, ch: int, sem_ch: int, groups: int):
        super().__init__()
        ch0 = ch * 3 // 2
        self.net_ds = nn.Sequential(
            ResidualBlockWithStride(ch, ch0, 2), ResidualBlockWithStride(ch0, ch0, 2), ResBlock(ch0)
        )
        self.net_attn = nn.Sequential(
            nn.Conv2d(ch0, sem_ch, 2, stride=2),
            AttnBlock(sem_ch, groups),
            ConvFFN(sem_ch),
            AttnBlock(sem_ch, groups),
            ConvFFN(sem_ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net_attn(self.net_ds(x))


class InterCodec(nn.Module):
    """DMC_OneDC. forward / compress / decompress; see docs/INTERFACES.md."""

    def __init__(self, config: S2VCConfig):
        super().__init__()
        ch, y_ch, z_ch = config.inter_channels, config.inter_y_channels, config.inter_z_channels
        if ch % 2 or y_ch % 2:
            raise ValueError(f"inter_channels and inter_y_channels must be even, got {ch}, {y_ch}")
        self.config = config
        self.train_quant = "ste"  # quantisation proxy used in training mode: "ste" or "noise"
        self.bit_estimator_z = BitEstimator(z_ch, qp_num=config.num_rates)
        self.pix_emb = nn.Conv2d(3, ch, 8, stride=8)
        self.latent_emb = zero_conv1x1(config.latent_channels, ch) if config.inter_latent_input else None
        self.x0_skip = (
            nn.Parameter(torch.zeros(1, config.latent_channels, 1, 1)) if config.inter_x0_skip else None
        )
        self.feature_adaptor_i = ResBlock(config.latent_channels, ch)
        self.feature_adaptor_p = ResBlock(ch)
        self.feature_extractor = FeatureExtractor(ch)
        self.encoder = ContextualEncoder(ch, y_ch)
        self.hyper_encoder = ConvStack(
            DepthConvBlock4(y_ch, y_ch),
            DepthConvBlock4(y_ch, y_ch),
            ResidualBlockWithStride(y_ch, y_ch, 2),
            ResidualBlockWithStride(y_ch, y_ch, 2),
            conv1x1(y_ch, z_ch),
        )
        self.hyper_decoder = ConvStack(
            conv1x1(z_ch, y_ch),
            ResidualBlockUpsample(y_ch, y_ch),
            ResidualBlockUpsample(y_ch, y_ch),
            DepthConvBlock4(y_ch, y_ch),
            DepthConvBlock4(y_ch, y_ch),
        )
        self.temporal_prior_encoder = ConvStack(
            ResidualBlockWithStride(ch, 2 * y_ch, 2), DepthConvBlock4(2 * y_ch, 2 * y_ch)
        )
        self.y_prior_fusion = ConvStack(*(DepthConvBlock4(3 * y_ch, 3 * y_ch) for _ in range(3)))
        self.y_spatial_prior = ConvStack(
            DepthConvBlock4(4 * y_ch, 3 * y_ch),
            DepthConvBlock4(3 * y_ch, 3 * y_ch),
            DepthConvBlock4(3 * y_ch, 2 * y_ch),
        )
        self.decoder = ContextualDecoder(ch, y_ch)
        self.recon_pix = ReconHead(ch, config.ctrl_channels)
        self.recon_semantic = SemanticHead(ch, config.semantic_channels, config.norm_groups)
        if config.num_rates > 1:
            self.y_q_scale = nn.Parameter(initial_rate_gains(config.num_rates, y_ch))
        else:
            self.register_parameter("y_q_scale", None)
        self.scale_table = video_scale_table()
        self._position_cache: dict = {}

    # ------------------------------------------------------------------------------------------ helpers
    def _device(self) -> torch.device:
        return self.pix_emb.weight.device

    def _gain(self, rate: torch.Tensor) -> torch.Tensor | float:
        """Per-rate y gain [B, Y, 1, 1]; exactly 1.0 (a no-op) for a single-rate model."""
        return 1.0 if self.y_q_scale is None else self.y_q_scale[rate].clamp_min(1e-3)

    def _embed(self, x: torch.Tensor, latent: torch.Tensor | None) -> torch.Tensor:
        """The encoder's view of the frame: the pixel embedding, plus the latent's where the config says so."""
        if self.latent_emb is None:
            return self.pix_emb(x)
        if latent is None:
            raise ValueError("this P-frame codec's encoder also takes the frame's latent (config.inter_latent_input)")
        expected = (x.shape[0], self.config.latent_channels, x.shape[-2] // 8, x.shape[-1] // 8)
        if tuple(latent.shape) != expected:
            raise ValueError(f"latent must have shape {expected}, got {tuple(latent.shape)}")
        return self.pix_emb(x) + self.latent_emb(latent.to(x.dtype))

    def _context(self, ref: RefState, batch: int, hp: int, wp: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Reset frames adapt the x0 latent, others the propagated feature -> (ctx, ctx_t)."""
        if ref.is_reset:
            source, adaptor, name = ref.ref_latent, self.feature_adaptor_i, "latent"
            width = self.config.latent_channels
        else:
            source, adaptor, name = ref.ref_feature, self.feature_adaptor_p, "feature"
            width = self.config.inter_channels
        expected = (batch, width, hp // 8, wp // 8)
        if source is None:
            raise ValueError(f"{'a reset' if ref.is_reset else 'a non-reset'} P-frame needs ref_{name}")
        if tuple(source.shape) != expected:
            raise ValueError(f"ref_{name} must have shape {expected}, got {tuple(source.shape)}")
        return self.feature_extractor(adaptor(source.to(self.pix_emb.weight.dtype)))

    def _params(self, z_hat: torch.Tensor, ctx_t: torch.Tensor) -> torch.Tensor:
        """[q_dec | scales | means] from the hyper-decoder and the temporal prior."""
        return self.y_prior_fusion(torch.cat([self.hyper_decoder(z_hat), self.temporal_prior_encoder(ctx_t)], dim=1))

    def _step_params(
        self, step: int, params: torch.Tensor, y_hat0: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(scales, means) for step 0 (from params) or step 1 (spatial prior on the step-0 result)."""
        if step == 0:
            _, scales, means = params.chunk(3, dim=1)
            return scales, means
        scales, means = self.y_spatial_prior(torch.cat([y_hat0, params], dim=1)).chunk(2, dim=1)
        return scales, means

    @staticmethod
    def _q_dec(params: torch.Tensor) -> torch.Tensor:
        return params[:, : params.shape[1] // 3].clamp_min(Q_DEC_MIN)

    def _masks(self, y_like: torch.Tensor) -> list[torch.Tensor]:
        b, c, h, w = y_like.shape
        return [m.bool() for m in checkerboard_masks(c, h, w, device=y_like.device)]

    def _outputs(self, y_hat: torch.Tensor, ctx: torch.Tensor) -> dict[str, torch.Tensor]:
        feature = self.decoder(y_hat, ctx)
        semantic = self.recon_semantic(feature)
        return {
            "feature": feature,
            "f_pix": self.recon_pix(feature),
            "tokens": semantic.flatten(2).transpose(1, 2),
        }

    def add_reference(self, x0: torch.Tensor, ref: RefState) -> torch.Tensor:
        """The P-frame's x0 latent: the generator's `x0`, plus `x0_skip` x the reference x0 with `inter_x0_skip`."""
        if self.x0_skip is None:
            return x0
        if ref.ref_latent is None or ref.ref_latent.shape != x0.shape:
            got = None if ref.ref_latent is None else tuple(ref.ref_latent.shape)
            raise ValueError(f"inter_x0_skip needs the reference x0 latent of shape {tuple(x0.shape)}, got {got}")
        return x0 + self.x0_skip * ref.ref_latent.to(x0.dtype)

    # ------------------------------------------------------------------------------------------ training / estimate
    def forward(
        self, x: torch.Tensor, ref: RefState, rate: int | torch.Tensor = 0, latent: torch.Tensor | None = None
    ) -> dict[str, Any]:
        """x [B,3,Hp,Wp] in [-1,1] (and its latent [B, latent_channels, Hp/8, Wp/8] when the config's
        `inter_latent_input` is set). Returns feature, f_pix, tokens, likelihoods {"y", "z"}, bits [B].

        Training mode uses `train_quant` for y and z; eval mode rounds and clamps exactly as `compress` does.
        """
        hp, wp = check_frame(x, self.config.pad_multiple)
        r = rate_tensor(rate, x.shape[0], self.config.num_rates, x.device)
        mode = self.train_quant if self.training else "round"
        ctx, ctx_t = self._context(ref, x.shape[0], hp, wp)
        y = self.encoder(self._embed(x, latent), ctx)
        z_hat = quantize(self.hyper_encoder(y), mode)
        if not self.training:
            z_hat = clamp_symbols(z_hat)
        lik_z = self.bit_estimator_z.likelihood(z_hat, r)
        params = self._params(z_hat, ctx_t)
        q_dec, gain = self._q_dec(params), self._gain(r)
        y_s = y * q_dec.reciprocal() * gain
        y_hat0 = torch.zeros_like(y)
        y_hat_s = torch.zeros_like(y)
        lik_y = torch.ones_like(y)
        for step, mask in enumerate(self._masks(y)):
            scales, means = self._step_params(step, params, y_hat0)
            std = self.scale_table.quantize(scales * gain)
            means_s = means * gain
            q = quantize(y_s - means_s, mode)
            if not self.training:
                q = clamp_symbols(q)
            lik_y = torch.where(mask, gaussian_likelihood(q, std), lik_y)
            y_hat_s = torch.where(mask, q + means_s, y_hat_s)
            if step == 0:
                y_hat0 = y_hat_s / gain
        out = self._outputs(y_hat_s / gain * q_dec, ctx)
        out["likelihoods"] = {"y": lik_y, "z": lik_z}
        out["bits"] = likelihood_bits(lik_y) + likelihood_bits(lik_z)
        return out

    # ------------------------------------------------------------------------------------------ entropy coding
    @torch.no_grad()
    def compress(
        self, x: torch.Tensor, ref: RefState, rate: int | torch.Tensor, enc: Any, latent: torch.Tensor | None = None
    ) -> dict[str, Any]:
        """Write z (factorized, per-channel pmfs), then y step 0 and step 1. Returns feature, f_pix, tokens, bits."""
        hp, wp = check_frame(x, self.config.pad_multiple)
        r = rate_tensor(rate, x.shape[0], self.config.num_rates, x.device)
        ctx, ctx_t = self._context(ref, x.shape[0], hp, wp)
        y = self.encoder(self._embed(x, latent), ctx)
        z_hat = clamp_symbols(torch.round(self.hyper_encoder(y)))
        pmfs, table = self._z_tables(r, z_hat.shape)
        symbols = z_hat.long().flatten()
        enc.encode_categorical(symbols, pmfs, table, SYMBOL_MIN)
        z_bits = likelihood_bits(leaky(pmfs[table, symbols - SYMBOL_MIN]).reshape(x.shape[0], -1))
        y_hat, y_bits = self._code_y(z_hat, ctx_t, r, y=y, enc=enc)
        out = self._outputs(y_hat, ctx)
        out["bits"] = z_bits + y_bits
        return out

    @torch.no_grad()
    def decompress(
        self, dec: Any, ref: RefState, hp: int, wp: int, rate: int | torch.Tensor = 0
    ) -> dict[str, torch.Tensor]:
        """Read what `compress` wrote for a frame of padded size hp x wp. Returns feature, f_pix, tokens."""
        check_size(hp, wp, self.config.pad_multiple)
        batch = batch_of(rate)
        r = rate_tensor(rate, batch, self.config.num_rates, self._device())
        ctx, ctx_t = self._context(ref, batch, hp, wp)
        shape = (batch, self.config.inter_z_channels, hp // 64, wp // 64)
        pmfs, table = self._z_tables(r, shape)
        symbols = dec.decode_categorical(pmfs, table, SYMBOL_MIN).to(self._device())
        z_hat = symbols.reshape(shape).to(ctx.dtype)
        y_hat, _ = self._code_y(z_hat, ctx_t, r, dec=dec)
        return self._outputs(y_hat, ctx)

    def _z_tables(self, rate: torch.Tensor, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """pmfs [B*Z, 256] (one per batch item and channel) and the pmf index of every z symbol (C order)."""
        b, c = shape[0], shape[1]
        pmfs = self.bit_estimator_z.pmf_table(rate).reshape(b * c, -1)
        table = torch.arange(b * c, device=pmfs.device).reshape(b, c, 1, 1).expand(shape).flatten()
        return pmfs, table

    def _code_y(
        self,
        z_hat: torch.Tensor,
        ctx_t: torch.Tensor,
        rate: torch.Tensor,
        y: torch.Tensor | None = None,
        enc: Any = None,
        dec: Any = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Shared encoder/decoder loop over the two checkerboard steps; encodes when `y` and `enc` are given."""
        params = self._params(z_hat, ctx_t)
        q_dec, gain = self._q_dec(params), self._gain(rate)
        batch = params.shape[0]
        y_hat_s = q_dec.new_zeros(q_dec.shape)  # contiguous (q_dec may not be): filled through a flat view
        y_hat0 = torch.zeros_like(q_dec)
        gains = gain.expand_as(q_dec).reshape(-1) if isinstance(gain, torch.Tensor) else None
        bits = params.new_zeros(batch)
        stds = self.scale_table.host_values
        for step, positions in enumerate(self._positions(y_hat_s)):
            scales, means = self._step_params(step, params, y_hat0)
            step_gain = gain if gains is None else gains.index_select(0, positions)
            index = self.scale_table.index(with_gain(gather(scales, positions), step_gain))
            means_s = with_gain(gather(means, positions), step_gain)
            if enc is not None:
                y_s = with_gain(gather(y, positions) * gather(q_dec, positions).reciprocal(), step_gain)
                symbols = clamp_symbols(torch.round(y_s - means_s)).long()
                enc.encode_gaussian_indexed(symbols, index, stds)
                q = symbols.to(y_hat_s.dtype)
                bits += self.scale_table.bits(symbols, index).reshape(batch, -1).sum(dim=1)
            else:
                q = dec.decode_gaussian_indexed(index, stds).to(y_hat_s.dtype)
            update = q + means_s
            y_hat_s = y_hat_s.to(torch.promote_types(update.dtype, y_hat_s.dtype))
            y_hat_s.view(-1).index_copy_(0, positions, update.to(y_hat_s.dtype))
            if step == 0:
                y_hat0 = without_gain(y_hat_s, gain)
        return without_gain(y_hat_s, gain) * q_dec, bits

    def _positions(self, y_hat: torch.Tensor) -> list[torch.Tensor]:
        """Flat indices of each checkerboard step's symbols in y_hat (cached per shape and device)."""
        key = (tuple(y_hat.shape), y_hat.device)
        if key not in self._position_cache:
            b, c, h, w = y_hat.shape
            self._position_cache = {key: mask_positions(checkerboard_masks(c, h, w), b, y_hat.device)}
        return self._position_cache[key]
