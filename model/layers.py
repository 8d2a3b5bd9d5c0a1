"""Building blocks shared by the I-frame codec, the P-frame codec and the generator's fusion blocks.

Child names follow the official release so that state-dict keys match (see S2VC_ARCHITECTURE.md §2.1).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv1x1(cin: int, cout: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, bias=bias)


def zero_conv1x1(cin: int, cout: int) -> nn.Conv2d:
    """A 1x1 conv whose weights and bias start at zero (a branch added to a trained model changes nothing yet)."""
    conv = conv1x1(cin, cout)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def conv3x3(cin: int, cout: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=bias)


class DepthConv(nn.Module):
    """1x1 -> LReLU -> depthwise 3x3 -> 1x1, residual through `adaptor` when the width changes."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Sequential(conv1x1(cin, cin), nn.LeakyReLU(0.01))
        self.depth_conv = nn.Conv2d(cin, cin, 3, padding=1, groups=cin)
        self.conv2 = conv1x1(cin, cout)
        self.adaptor = conv1x1(cin, cout) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.adaptor is None else self.adaptor(x)
        return self.conv2(self.depth_conv(self.conv1(x))) + identity


class DepthConv3(nn.Module):
    """1x1 (expand) -> LReLU -> depthwise kxk -> 1x1, residual through `adaptor` when the width changes."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, expansion: float = 1.0):
        super().__init__()
        mid = int(cin * expansion)
        self.convs = nn.Sequential(
            conv1x1(cin, mid),
            nn.LeakyReLU(0.01),
            nn.Conv2d(mid, mid, kernel, padding=kernel // 2, groups=mid),
            conv1x1(mid, cout),
        )
        self.adaptor = conv1x1(cin, cout) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.adaptor is None else self.adaptor(x)
        return self.convs(x) + identity


class ConvFFN(nn.Module):
    """Gated-free FFN: 1x1 to 2*hidden, LReLU(0.1)(h1) + LReLU(0.01)(h2), 1x1 back, identity residual.

    `ConvFFN3(c)` and `ConvFFN4(c, 2)` of the release are both this module with expansion 2.
    """

    def __init__(self, channels: int, expansion: float = 2.0):
        super().__init__()
        hidden = int(channels * expansion)
        self.conv = conv1x1(channels, 2 * hidden)
        self.conv_out = conv1x1(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h1, h2 = self.conv(x).chunk(2, dim=1)
        return x + self.conv_out(F.leaky_relu(h1, 0.1) + F.leaky_relu(h2, 0.01))


class DepthConvBlock4(nn.Module):
    """DCB4: DepthConv then ConvFFN."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.block = nn.Sequential(DepthConv(cin, cout), ConvFFN(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class DepthConvBlock5(nn.Module):
    """DCB5: DepthConv3(k5) -> ConvFFN -> DepthConv -> ConvFFN."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.block = nn.Sequential(
            DepthConv3(cin, cin, kernel=5, expansion=2),
            ConvFFN(cin),
            DepthConv(cin, cout),
            ConvFFN(cout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class ResidualBlockWithStride(nn.Module):
    """RBWS: strided 3x3 conv pair with a strided 1x1 skip (`downsample`)."""

    def __init__(self, cin: int, cout: int, stride: int = 2):
        super().__init__()
        self.conv1 = conv3x3(cin, cout, stride=stride)
        self.conv2 = conv3x3(cout, cout)
        self.downsample = nn.Conv2d(cin, cout, 1, stride=stride) if stride != 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu(self.conv1(x), 0.01)
        out = F.leaky_relu(self.conv2(out), 0.1)
        identity = x if self.downsample is None else self.downsample(x)
        return out + identity


class ResidualBlockUpsample(nn.Module):
    """RBU: sub-pixel upsampling by r with a sub-pixel skip (`upsample`)."""

    def __init__(self, cin: int, cout: int, upsample: int = 2):
        super().__init__()
        self.subpel_conv = nn.Sequential(conv1x1(cin, cout * upsample**2), nn.PixelShuffle(upsample))
        self.conv = conv3x3(cout, cout)
        self.upsample = nn.Sequential(conv1x1(cin, cout * upsample**2), nn.PixelShuffle(upsample))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu(self.subpel_conv(x), 0.01)
        out = F.leaky_relu(self.conv(out), 0.1)
        return out + self.upsample(x)


class ResBlock(nn.Module):
    """The conv.py ResBlock: conv-GELU-conv-GELU plus a `skip` (1x1 when the width changes)."""

    def __init__(self, cin: int, cout: int | None = None):
        super().__init__()
        cout = cin if cout is None else cout
        self.conv1 = conv3x3(cin, cout)
        self.conv2 = conv3x3(cout, cout)
        self.skip = conv1x1(cin, cout) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.gelu(self.conv2(F.gelu(self.conv1(x))))
        return out + self.skip(x)


class ResnetBlock(nn.Module):
    """VQGAN-style ResnetBlock (no conv bias). With a width change the release adds nin_shortcut(h) to h,
    where h is the block's own output, not the input; that quirk is kept for checkpoint compatibility."""

    def __init__(self, cin: int, cout: int | None = None, groups: int = 32):
        super().__init__()
        cout = cin if cout is None else cout
        self.norm1 = nn.GroupNorm(groups, cin, eps=1e-6)
        self.conv1 = conv3x3(cin, cout, bias=False)
        self.norm2 = nn.GroupNorm(groups, cout, eps=1e-6)
        self.conv2 = conv3x3(cout, cout, bias=False)
        self.nin_shortcut = conv1x1(cout, cout, bias=False) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        if self.nin_shortcut is not None:
            return h + self.nin_shortcut(h)
        return h + x


class AttnBlock(nn.Module):
    """Single-head spatial self-attention over all positions, GroupNorm first, identity residual."""

    def __init__(self, channels: int, groups: int = 32):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.q = conv1x1(channels, channels)
        self.k = conv1x1(channels, channels)
        self.v = conv1x1(channels, channels)
        self.proj_out = conv1x1(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        n = self.norm(x)
        q = self.q(n).flatten(2).transpose(1, 2)
        k = self.k(n).flatten(2).transpose(1, 2)
        v = self.v(n).flatten(2).transpose(1, 2)
        out = F.scaled_dot_product_attention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1)).squeeze(1)
        return x + self.proj_out(out.transpose(1, 2).reshape(b, c, h, w))


class ReduceResBlock(nn.Module):
    """`vae_reduction`: GN-SiLU-conv-GN-SiLU-conv plus a 1x1 `short_cut`; maps U-Net input to a latent proxy."""

    def __init__(self, cin: int, cout: int, groups: int = 32):
        super().__init__()
        self.short_cut = conv1x1(cin, cout) if cin != cout else nn.Identity()
        self.blocks = nn.Sequential(
            nn.GroupNorm(groups, cin, eps=1e-6),
            nn.SiLU(),
            conv3x3(cin, cin),
            nn.GroupNorm(groups, cin, eps=1e-6),
            nn.SiLU(),
            conv3x3(cin, cout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x) + self.short_cut(x)


class MotionFusionBlock(nn.Module):
    """Temporal Consistency Guidance: fuses the previous frame's U-Net feature into the current one.

    `prev_warp` receives the reduced previous feature plus `motion_ch` zero channels, a placeholder the
    release keeps where optical flow once entered. `zero_conv` starts at zero so fusion begins as identity.
    """

    def __init__(self, channels: int, motion_ch: int = 160):
        super().__init__()
        half = channels // 2
        self.motion_ch = motion_ch
        self.cond_reduce = DepthConvBlock5(channels, half)
        self.prev_warp = nn.Sequential(
            DepthConvBlock5(half + motion_ch, half + motion_ch), DepthConvBlock5(half + motion_ch, half)
        )
        self.fusion = nn.Sequential(
            DepthConvBlock5(channels + half, channels + half), DepthConvBlock5(channels + half, channels)
        )
        self.zero_conv = nn.Conv2d(channels, channels, 1, bias=False)
        nn.init.zeros_(self.zero_conv.weight)

    def forward(self, x: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        cond = self.cond_reduce(prev.to(x.dtype))
        placeholder = cond.new_zeros(cond.shape[0], self.motion_ch, *cond.shape[2:])
        warped = self.prev_warp(torch.cat([cond, placeholder], dim=1))
        return x + self.zero_conv(self.fusion(torch.cat([x, warped], dim=1)))
