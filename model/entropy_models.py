"""Entropy models shared by the I- and P-frame codecs (S2VC_ARCHITECTURE.md §2.5, §2.6).

* `FSQ`: the I-frame hyper-latent quantiser (finite scalar quantisation, no parameters).
* `BitEstimator`: the factorized density of the P-frame hyper-latent z (`bit_estimator_z.f1.h`, ...).
* `ScaleTable`: the log-uniform Gaussian scale tables; coded stds are always table values.
* Gaussian likelihood of integer symbols, quantisation helpers, rate-index helpers and the prior masks.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SYMBOL_MIN, SYMBOL_MAX = -128, 127  # support of every coded symbol
SUPPORT = SYMBOL_MAX - SYMBOL_MIN + 1
CODER_PRECISION = 24  # the entropy coder's probability precision: every symbol keeps at least 2**-24
LEAK = 2.0**-CODER_PRECISION
RELEASE_SCALE_MIN = RELEASE_EPS = 1e-5  # the release's I-frame rate formula: scale clamp, probability offset
QUANT_MODES = ("noise", "ste", "round")


# --------------------------------------------------------------------------------------------- quantisation
def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, identity gradient in the backward pass."""
    return x + (torch.round(x) - x).detach()


def quantize(x: torch.Tensor, mode: str) -> torch.Tensor:
    """'noise': additive U(-1/2, 1/2) (training proxy); 'ste': straight-through round; 'round': plain round."""
    if mode == "noise":
        return x + torch.empty_like(x).uniform_(-0.5, 0.5)
    if mode == "ste":
        return round_ste(x)
    if mode == "round":
        return torch.round(x)
    raise ValueError(f"unknown quantisation mode {mode!r}; choose one of {', '.join(QUANT_MODES)}")


def clamp_symbols(q: torch.Tensor) -> torch.Tensor:
    return q.clamp(SYMBOL_MIN, SYMBOL_MAX)


# --------------------------------------------------------------------------------------------- likelihoods
def leaky(p: torch.Tensor) -> torch.Tensor:
    """Mix a pmf over the 256-symbol support with 2**-24 per symbol, as the entropy coder's leaky models do.

    This is the probability floor (about 6e-8, i.e. at most 24 bits a symbol) that keeps estimates and coded
    sizes in agreement even for symbols far outside the model.
    """
    return p * (1 - SUPPORT * LEAK) + LEAK


def gaussian_likelihood(q: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """P(q) of a zero-mean Gaussian with `std` integrated over [q-1/2, q+1/2], made leaky (`leaky`).

    The end symbols -128 and 127 absorb the tails, as in the coder. Evaluated on |q| (the lower tail) for
    numerical accuracy far from the mean. Computed in fp32 whatever the inputs' dtype: under bf16 autocast the
    differences of nearby CDF values would lose almost every bit of precision.
    """
    a, std = q.float().abs(), std.float()
    upper = torch.special.ndtr((0.5 - a) / std)
    lower = torch.special.ndtr((-0.5 - a) / std)
    lower = torch.where((q <= SYMBOL_MIN) | (q >= SYMBOL_MAX), 0.0, lower)
    return leaky((upper - lower).clamp_min(0))


def release_bits(q: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """The official release's I-frame rate estimate, per symbol (S2VC_ARCHITECTURE.md §4.4):
    -log2(Phi((q + 1/2) / s) - Phi((q - 1/2) / s) + 1e-5) floored at 0, with s the raw predicted scale clamped
    at 1e-5 (no scale table, no probability floor, no support limit). Evaluated in fp32 (the release: bf16)."""
    s = scales.float().clamp_min(RELEASE_SCALE_MIN)
    q = q.float()
    p = torch.special.ndtr((q + 0.5) / s) - torch.special.ndtr((q - 0.5) / s)
    return (-torch.log2(p + RELEASE_EPS)).clamp_min(0)


def likelihood_bits(likelihood: torch.Tensor) -> torch.Tensor:
    """-log2 of the likelihoods summed over all but the batch dimension -> [B]."""
    return -torch.log2(likelihood).flatten(1).sum(dim=1)


# --------------------------------------------------------------------------------------------- inputs and rate index
def check_frame(x: torch.Tensor, multiple: int) -> tuple[int, int]:
    """Validate a padded frame [B, 3, Hp, Wp]; return (Hp, Wp)."""
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"expected a frame of shape [B, 3, Hp, Wp], got {tuple(x.shape)}")
    check_size(x.shape[-2], x.shape[-1], multiple)
    return x.shape[-2], x.shape[-1]


def check_size(hp: int, wp: int, multiple: int) -> None:
    if hp <= 0 or wp <= 0 or hp % multiple or wp % multiple:
        raise ValueError(f"frame size {hp}x{wp} must be a positive multiple of {multiple}; pad it first")


def batch_of(rate: int | torch.Tensor) -> int:
    """Batch size a decoder infers from its rate argument: 1 for an int, len(rate) for a 1-D tensor."""
    return int(rate.numel()) if isinstance(rate, torch.Tensor) else 1


def rate_tensor(rate: int | torch.Tensor, batch: int, num_rates: int, device: torch.device) -> torch.Tensor:
    """Validate a rate index (int or LongTensor [B]) and return it as a LongTensor [batch]."""
    if isinstance(rate, torch.Tensor):
        if rate.dim() == 0:
            rate = rate.reshape(1)
        if rate.dim() != 1 or rate.shape[0] not in (1, batch) or rate.dtype.is_floating_point:
            raise ValueError(f"rate must be an int or an integer tensor of shape [{batch}], got {tuple(rate.shape)}")
        r = rate.to(device=device, dtype=torch.long).expand(batch)
        if r.numel() and (int(r.min()) < 0 or int(r.max()) >= num_rates):
            raise ValueError(f"rate index out of range: got {r.tolist()}, the model has {num_rates} rate point(s)")
        return r
    if not 0 <= int(rate) < num_rates:  # a Python int: checked without reading the device
        raise ValueError(f"rate index out of range: got {[int(rate)] * batch}, the model has {num_rates} rate point(s)")
    return torch.full((batch,), int(rate), dtype=torch.long, device=device)


def initial_rate_gains(num_rates: int, channels: int) -> torch.Tensor:
    """Per-rate gains [R, C, 1, 1], log-spaced over 8x: rate 0 is the coarsest (smallest gain)."""
    exponents = torch.linspace(-1.5, 1.5, num_rates) if num_rates > 1 else torch.zeros(1)
    return (2.0**exponents).reshape(num_rates, 1, 1, 1).repeat(1, channels, 1, 1)


# --------------------------------------------------------------------------------------------- FSQ
class FSQ(nn.Module):
    """Finite scalar quantisation over dim 1: tanh bounding, round, code = q / (L // 2).

    For the official levels [4]*7 the code lies in {-1, -0.5, 0, 0.5} and the index is sum_d (q_d + 2) * 4**d,
    channel 0 least significant. Straight-through in training. Holds no parameters or persistent buffers.
    """

    def __init__(self, levels: tuple[int, ...] | list[int], eps: float = 1e-3):
        super().__init__()
        if not levels or any(level < 2 for level in levels):
            raise ValueError(f"FSQ levels must all be >= 2, got {levels}")
        self.levels = tuple(int(level) for level in levels)
        self.eps = eps
        self.codebook_size = math.prod(self.levels)
        self.bits = math.ceil(math.log2(self.codebook_size))
        basis = [math.prod(self.levels[:d]) for d in range(len(self.levels))]
        self.register_buffer("_basis", torch.tensor(basis, dtype=torch.long), persistent=False)
        self.register_buffer("_levels", torch.tensor(self.levels, dtype=torch.long), persistent=False)

    @property
    def dim(self) -> int:
        return len(self.levels)

    def _per_channel(self, t: torch.Tensor, ndim: int) -> torch.Tensor:
        return t.reshape(1, -1, *([1] * (ndim - 2)))

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        levels = self._per_channel(self._levels, z.dim()).float()
        half_l = (levels - 1) * (1 + self.eps) / 2
        offset = torch.where(levels % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half_l)
        return torch.tanh(z + shift) * half_l - offset

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z [B, D, ...] -> (codes [B, D, ...] in z's dtype, indices [B, ...] long)."""
        if z.shape[1] != self.dim:
            raise ValueError(f"FSQ expects {self.dim} channels, got {z.shape[1]}")
        with torch.autocast(z.device.type, enabled=False):
            bounded = self.bound(z.float())
            q = round_ste(bounded) if self.training else torch.round(bounded)
            half_width = self._per_channel(self._levels, z.dim()) // 2
            codes = q / half_width
        return codes.to(z.dtype), self.codes_to_indices(codes.detach())

    def codes_to_indices(self, codes: torch.Tensor) -> torch.Tensor:
        half_width = self._per_channel(self._levels, codes.dim()) // 2
        digits = torch.round(codes.float() * half_width + half_width).long()
        return (digits * self._per_channel(self._basis, codes.dim())).sum(dim=1)

    def check_indices(self, indices: torch.Tensor) -> None:
        """ValueError unless every index lies in [0, codebook_size) (reads the values: check on the host)."""
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.codebook_size):
            raise ValueError(f"FSQ index out of range [0, {self.codebook_size})")

    def indices_to_codes(self, indices: torch.Tensor, check: bool = True) -> torch.Tensor:
        """indices [B, ...] -> codes [B, D, ...] (float32); `check=False` skips `check_indices` (a host wait on a
        GPU) for indices known to be valid."""
        if check:
            self.check_indices(indices)
        shape_ndim = indices.dim() + 1
        digits = (indices.unsqueeze(1) // self._per_channel(self._basis, shape_ndim)) % self._per_channel(
            self._levels, shape_ndim
        )
        half_width = self._per_channel(self._levels, shape_ndim) // 2
        return (digits - half_width).float() / half_width


# --------------------------------------------------------------------------------------------- factorized z model
class BitParm(nn.Module):
    """One layer of the factorized density: x * softplus(h) + b, then (unless final) x + tanh(x) * tanh(a)."""

    def __init__(self, channels: int, qp_num: int, final: bool = False):
        super().__init__()
        self.final = final
        self.h = nn.Parameter(torch.empty(qp_num, channels, 1, 1).normal_(0, 0.01))
        self.b = nn.Parameter(torch.empty(qp_num, channels, 1, 1).normal_(0, 0.01))
        self.a = None if final else nn.Parameter(torch.empty(qp_num, channels, 1, 1).normal_(0, 0.01))

    def forward(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        x = x * F.softplus(self.h[index]) + self.b[index]
        if self.final:
            return x
        return x + torch.tanh(x) * torch.tanh(self.a[index])


class BitEstimator(nn.Module):
    """Factorized CDF per channel (and per rate point, `qp_num` of them); keys f1..f4 . h/b/a [qp_num, C, 1, 1]."""

    def __init__(self, channels: int, qp_num: int = 1):
        super().__init__()
        self.channels = channels
        self.qp_num = qp_num
        self.f1 = BitParm(channels, qp_num)
        self.f2 = BitParm(channels, qp_num)
        self.f3 = BitParm(channels, qp_num)
        self.f4 = BitParm(channels, qp_num, final=True)

    def cdf(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """CDF at x [B, C, ...] for rate indices `index` [B]."""
        for layer in (self.f1, self.f2, self.f3, self.f4):
            x = layer(x, index)
        return torch.sigmoid(x)

    def likelihood(self, q: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """P(q) = CDF(q + 1/2) - CDF(q - 1/2) (end symbols absorb the tails), made leaky like the coder's pmfs;
        in fp32 whatever q's dtype (see `gaussian_likelihood`)."""
        q = q.float()
        upper = torch.where(q >= SYMBOL_MAX, 1.0, self.cdf(q + 0.5, index))
        lower = torch.where(q <= SYMBOL_MIN, 0.0, self.cdf(q - 0.5, index))
        return leaky((upper - lower).clamp_min(0))

    def pmf_table(self, index: torch.Tensor) -> torch.Tensor:
        """pmfs over the integer support [-128, 127] -> [B, C, 256] (rows sum to 1; tails go to the end bins)."""
        edges = torch.arange(SYMBOL_MIN - 0.5, SYMBOL_MAX + 1.0, 1.0, device=self.f1.h.device)
        x = edges.reshape(1, 1, -1, 1).expand(index.shape[0], self.channels, -1, 1)
        cdf = self.cdf(x, index).squeeze(-1)
        cdf = torch.cat([torch.zeros_like(cdf[..., :1]), cdf[..., 1:-1], torch.ones_like(cdf[..., :1])], dim=-1)
        return (cdf[..., 1:] - cdf[..., :-1]).clamp_min(0)


# --------------------------------------------------------------------------------------------- Gaussian scale table
class ScaleTable(nn.Module):
    """Log-uniform std table; index(s) = floor((ln clamp(s) - ln min) * (L - 1) / (ln max - ln min)) (truncation)."""

    def __init__(self, min_scale: float, max_scale: float, levels: int):
        super().__init__()
        self.min_scale, self.max_scale, self.levels = min_scale, max_scale, levels
        self._log_min = math.log(min_scale)
        self._step = (levels - 1) / (math.log(max_scale) - self._log_min)
        cpu = torch.device("cpu")  # computed here whatever the default device (meta included), then moved there
        log_values = torch.linspace(math.log(min_scale), math.log(max_scale), levels, dtype=torch.float64, device=cpu)
        values = torch.exp(log_values).float()
        self.host_values = tuple(values.tolist())  # the same stds as Python floats: the coder's table key
        support = torch.arange(SYMBOL_MIN, SYMBOL_MAX + 1, dtype=torch.float32, device=cpu).expand(levels, -1)
        bits = -torch.log2(gaussian_likelihood(support, values.unsqueeze(1).expand(-1, SUPPORT)))
        default = torch.empty(0).device
        self.register_buffer("values", values.to(default), persistent=False)
        self.register_buffer("symbol_bits", bits.reshape(-1).to(default), persistent=False)

    def index(self, scales: torch.Tensor) -> torch.Tensor:
        s = scales.float().clamp(self.min_scale, self.max_scale)
        idx = torch.floor((torch.log(s) - self._log_min) * self._step).long()
        return idx.clamp(0, self.levels - 1)

    def bits(self, symbols: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """-log2 gaussian_likelihood(clamp_symbols(symbols), values[index]) per symbol, looked up in a table."""
        return self.symbol_bits.index_select(0, index * SUPPORT + (clamp_symbols(symbols.long()) - SYMBOL_MIN))

    def quantize(self, scales: torch.Tensor) -> torch.Tensor:
        """Table value of each scale, straight-through to the unquantised scale for gradients."""
        q = self.values[self.index(scales)].to(scales.dtype)
        return scales + (q - scales).detach() if scales.requires_grad else q


def video_scale_table() -> ScaleTable:
    """P-frame table: 128 levels from 0.11 to 16."""
    return ScaleTable(0.11, 16.0, 128)


def image_scale_table() -> ScaleTable:
    """I-frame table: 256 levels from 0.11 to 64."""
    return ScaleTable(0.11, 64.0, 256)


# --------------------------------------------------------------------------------------------- prior masks
# Phase (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right) used by each channel group at each step.
FOUR_PART_PHASES = ((0, 1, 2, 3), (3, 2, 1, 0), (2, 3, 0, 1), (1, 0, 3, 2))


def four_part_masks(
    channels: int, height: int, width: int, device: torch.device | None = None, dtype: torch.dtype = torch.float32
) -> list[torch.Tensor]:
    """Four masks [1, C, H, W] of the I-frame prior; each step codes one 2x2 phase per group of C/4 channels."""
    if channels % 4 or height % 2 or width % 2:
        raise ValueError(f"four-part prior needs C % 4 == 0 and even H, W; got C={channels}, {height}x{width}")
    group = channels // 4
    masks = []
    for phases in FOUR_PART_PHASES:
        m = torch.zeros(1, channels, 2, 2, device=device, dtype=dtype)
        for g, phase in enumerate(phases):
            m[:, g * group : (g + 1) * group, phase // 2, phase % 2] = 1
        masks.append(m.repeat(1, 1, height // 2, width // 2))
    return masks


def mask_positions(masks: list[torch.Tensor], batch: int, device: torch.device) -> list[torch.Tensor]:
    """Flat indices into [batch, C, H, W] of each mask's positions (masks [1, C, H, W]), in the C order of boolean
    indexing: `x.reshape(-1)[p]` is `x[mask.expand_as(x)]` without its host wait on a GPU."""
    out = []
    for m in masks:
        flat = torch.nonzero(m.reshape(-1).bool().cpu()).squeeze(1)
        step = m.numel()
        out.append((torch.arange(batch).reshape(-1, 1) * step + flat).reshape(-1).to(device))
    return out


def gather(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """x.reshape(-1)[positions] (index_select: several times faster than advanced indexing on a CPU)."""
    return x.reshape(-1).index_select(0, positions)


def with_gain(x: torch.Tensor, gain: torch.Tensor | float) -> torch.Tensor:
    """x * gain, skipped for a single-rate model's gain of exactly 1.0 (the same values, one pass less)."""
    return x if isinstance(gain, float) and gain == 1.0 else x * gain


def without_gain(x: torch.Tensor, gain: torch.Tensor | float) -> torch.Tensor:
    """x / gain, skipped for a gain of exactly 1.0."""
    return x if isinstance(gain, float) and gain == 1.0 else x / gain


def checkerboard_masks(
    channels: int, height: int, width: int, device: torch.device | None = None, dtype: torch.dtype = torch.float32
) -> list[torch.Tensor]:
    """Two masks [1, C, H, W] of the P-frame dual prior: step 0 = P0 on channels [0, C/2), P1 on the rest."""
    if channels % 2:
        raise ValueError(f"dual prior needs an even channel count, got {channels}")
    rows = torch.arange(height, device=device).reshape(-1, 1)
    cols = torch.arange(width, device=device).reshape(1, -1)
    p0 = ((rows + cols) % 2 == 0).to(dtype)
    p1 = 1 - p0
    half = channels // 2
    step0 = torch.cat([p0.expand(half, -1, -1), p1.expand(half, -1, -1)]).unsqueeze(0)
    return [step0, 1 - step0]
