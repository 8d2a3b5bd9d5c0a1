"""Exact coding of Gaussian symbols beyond the coder's [-128, 127] support (an escape, as the release's rANS has).

A symbol is coded as its value clamped to the support (`SymbolEncoder.encode_gaussian`, where the end bins absorb
the tails); every symbol that lands on an end bin (-128 or 127) is followed by its distance beyond that bin,
excess = |symbol - clamped| >= 0, in an Elias-gamma style code of fixed-length pieces: 5 bits for L - 1, where L is
the bit length of excess + 1 (1..32), then the L - 1 bits of excess + 1 below its leading one. An end-bin symbol
without excess costs 5 bits more; no symbol is ever changed.

Only the coder's public calls are used (`encode_gaussian`, `encode_bits` and their decoders), in a fixed order:
the clamped symbols, then the lengths of all end-bin symbols, then their low bits grouped by length (ascending).
"""
from __future__ import annotations

from typing import Any

import torch

from .entropy_models import SYMBOL_MAX, SYMBOL_MIN

LENGTH_BITS = 5
MAX_EXCESS = (1 << 32) - 2  # excess + 1 must fit in 32 bits


def _bit_length(values: torch.Tensor) -> torch.Tensor:
    """Bit length of positive integers (1 for 1, 2 for 2..3, ...)."""
    return torch.floor(torch.log2(values.double())).long() + 1


def _excess(symbols: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(clamped symbols, excess + 1 of every end-bin symbol in flattened order)."""
    clamped = symbols.clamp(SYMBOL_MIN, SYMBOL_MAX)
    edge = (clamped == SYMBOL_MIN) | (clamped == SYMBOL_MAX)
    excess = (symbols - clamped).abs()[edge]
    if excess.numel() and int(excess.max()) > MAX_EXCESS:
        raise ValueError(f"Gaussian symbol {int(symbols.abs().max())} is too large to code (beyond +-2**32)")
    return clamped, excess + 1


def encode_gaussian_escaped(enc: Any, symbols: torch.Tensor, stds: torch.Tensor) -> None:
    """`enc.encode_gaussian` for integer symbols of any magnitude (see the module docstring)."""
    clamped, values = _excess(symbols.long())
    enc.encode_gaussian(clamped, stds)
    if not values.numel():
        return
    lengths = _bit_length(values)
    enc.encode_bits(lengths - 1, LENGTH_BITS)
    for length in torch.unique(lengths).tolist():
        if length > 1:
            enc.encode_bits(values[lengths == length] - (1 << (length - 1)), length - 1)


def decode_gaussian_escaped(dec: Any, stds: torch.Tensor) -> torch.Tensor:
    """Symbols written by `encode_gaussian_escaped` with these stds -> LongTensor of the stds' shape."""
    symbols = dec.decode_gaussian(stds)
    edge = (symbols == SYMBOL_MIN) | (symbols == SYMBOL_MAX)
    count = int(edge.sum())
    if not count:
        return symbols
    lengths = dec.decode_bits(count, LENGTH_BITS).to(symbols.device) + 1
    values = torch.ones_like(lengths) << (lengths - 1)
    for length in torch.unique(lengths).tolist():
        if length > 1:
            at = lengths == length
            values[at] += dec.decode_bits(int(at.sum()), length - 1).to(symbols.device)
    sign = torch.where(symbols[edge] == SYMBOL_MAX, 1, -1)
    symbols = symbols.clone()
    symbols[edge] += sign * (values - 1)
    return symbols


def escape_bits(symbols: torch.Tensor) -> torch.Tensor:
    """Bits the escape adds to `symbols` [B, ...] -> [B] (5 + L - 1 per end-bin symbol)."""
    clamped = symbols.clamp(SYMBOL_MIN, SYMBOL_MAX)
    edge = (clamped == SYMBOL_MIN) | (clamped == SYMBOL_MAX)
    values = (symbols - clamped).abs().double() + 1
    bits = torch.where(edge, LENGTH_BITS + torch.floor(torch.log2(values)), 0.0)
    return bits.flatten(1).sum(dim=1).float()
