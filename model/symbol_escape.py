"""Exact coding of Gaussian symbols beyond the coder's [-128, 127] support (an escape, as the release's rANS has).

A symbol is coded as its value clamped to the support (the coder's Gaussian tables, where the end bins absorb
the tails); every symbol that lands on an end bin (-128 or 127) is followed by its distance beyond that bin,
excess = |symbol - clamped| >= 0, in an Elias-gamma style code of fixed-length pieces: 5 bits for L - 1, where L is
the bit length of excess + 1 (1..32), then the L - 1 bits of excess + 1 below its leading one. An end-bin symbol
without excess costs 5 bits more; no symbol is ever changed.

The coder applies it inside `SymbolEncoder.encode_gaussian_indexed(..., escape=True)` and its decoder, on host
arrays, in a fixed order: the clamped symbols, then the lengths of all end-bin symbols, then their low bits grouped
by length (ascending).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .entropy_models import SYMBOL_MAX, SYMBOL_MIN

LENGTH_BITS = 5
MAX_EXCESS = (1 << 32) - 2  # excess + 1 must fit in 32 bits


def _bit_length(values: np.ndarray) -> np.ndarray:
    """Bit length of positive integers below 2**53 (1 for 1, 2 for 2..3, ...), exactly."""
    return np.frexp(values.astype(np.float64))[1].astype(np.int64)


def escape_excess(symbols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(symbols clamped to the support, excess + 1 of every end-bin symbol in order); ValueError beyond 2**32."""
    symbols = symbols.astype(np.int64)
    clamped = np.clip(symbols, SYMBOL_MIN, SYMBOL_MAX)
    edge = (clamped == SYMBOL_MIN) | (clamped == SYMBOL_MAX)
    excess = np.abs(symbols[edge] - clamped[edge])
    if excess.size and excess.max() > MAX_EXCESS:
        raise ValueError(f"Gaussian symbol {np.abs(symbols).max()} is too large to code (beyond +-2**32)")
    return clamped, excess + 1


def escape_codes(values: np.ndarray) -> list[tuple[np.ndarray, int]]:
    """The fixed-length codes (values, nbits) that follow the clamped symbols, in coding order."""
    if not values.size:
        return []
    lengths = _bit_length(values)
    codes = [(lengths - 1, LENGTH_BITS)]
    for length in np.flatnonzero(np.bincount(lengths)):  # the lengths present, ascending (np.unique is slow)
        if length > 1:
            codes.append((values[lengths == length] - (1 << (int(length) - 1)), int(length) - 1))
    return codes


def unescape(symbols: np.ndarray, read_bits: Callable[[int, int], np.ndarray]) -> np.ndarray:
    """Decoded clamped symbols -> the original ones, reading the escape codes with read_bits(count, nbits)."""
    edge = (symbols == SYMBOL_MIN) | (symbols == SYMBOL_MAX)
    count = int(edge.sum())
    if not count:
        return symbols
    lengths = read_bits(count, LENGTH_BITS) + 1
    values = np.left_shift(1, lengths - 1)
    for length in np.flatnonzero(np.bincount(lengths)):  # the lengths present, ascending (np.unique is slow)
        if length > 1:
            at = lengths == length
            values[at] += read_bits(int(at.sum()), int(length) - 1)
    symbols = symbols.copy()
    symbols[edge] += np.where(symbols[edge] == SYMBOL_MAX, 1, -1) * (values - 1)
    return symbols


def escape_bits(symbols: torch.Tensor) -> torch.Tensor:
    """Bits the escape adds to `symbols` [B, ...] -> [B] (5 + L - 1 per end-bin symbol)."""
    clamped = symbols.clamp(SYMBOL_MIN, SYMBOL_MAX)
    edge = (clamped == SYMBOL_MIN) | (clamped == SYMBOL_MAX)
    values = (symbols - clamped).abs().double() + 1
    bits = torch.where(edge, LENGTH_BITS + torch.floor(torch.log2(values)), 0.0)
    return bits.flatten(1).sum(dim=1).float()
