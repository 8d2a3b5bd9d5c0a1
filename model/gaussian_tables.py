"""Quantised zero-mean Gaussian tables over [-128, 127], one row per std of a scale table, built once per process.

Every coded y symbol has a std taken from a fixed scale table (`model.entropy_models.ScaleTable`), so the entropy
coder needs only one fixed-point pmf per table entry instead of one Gaussian evaluation per symbol. Row k holds the
24-bit leaky quantisation of N(0, stds[k]) that constriction's `QuantizedGaussian` uses: bin b (symbol b - 128)
spans [F(b) + b, F(b + 1) + b + 1) of 2**24 with F(b) = floor((2**24 - 256) * Phi((b - 128.5) / std)) for
0 < b < 256, F(0) = 0 and F(256) = 2**24 - 256; every bin keeps at least 1/2**24 (at most 24 bits a symbol).
Phi is evaluated with the C library's `erf` in float64, one scalar at a time, so every machine builds the same
integers. The rows are handed to constriction as integer weights summing to 2**24 - 256, which its categorical
quantiser keeps exactly (scale factor 1): `weights`, `bits` and the coder agree to the last bit.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import constriction
import numpy as np

SYMBOL_MIN, SYMBOL_MAX = -128, 127
LEVELS = SYMBOL_MAX - SYMBOL_MIN + 1
PRECISION = 24
FREE_WEIGHT = (1 << PRECISION) - LEVELS  # what is left after the one-unit floor of every bin


@dataclass(frozen=True)
class GaussianTable:
    """weights [L, 256] (int64, rows sum to FREE_WEIGHT), bits [L, 256] (-log2 of each bin's coded probability)
    and one constriction categorical model per row."""

    weights: np.ndarray
    bits: np.ndarray
    models: tuple

    @property
    def rows(self) -> int:
        return self.weights.shape[0]


def _weights(std: float) -> np.ndarray:
    scale = 1.0 / (std * math.sqrt(2.0))
    cdf = [math.floor(FREE_WEIGHT * (1.0 + math.erf((b + SYMBOL_MIN - 0.5) * scale)) / 2.0) for b in range(1, LEVELS)]
    edges = np.maximum.accumulate(np.array([0, *cdf, FREE_WEIGHT], dtype=np.int64).clip(0, FREE_WEIGHT))
    return np.diff(edges)


@functools.lru_cache(maxsize=8)
def gaussian_table(stds: tuple[float, ...]) -> GaussianTable:
    """The table for these stds (a scale table's values, as Python floats); cached."""
    if not stds or any(not (math.isfinite(s) and s > 0) for s in stds):
        raise ValueError("a Gaussian table needs finite positive stds")
    weights = np.stack([_weights(s) for s in stds])
    bits = PRECISION - np.log2(weights + 1.0)
    models = tuple(constriction.stream.model.Categorical(row.astype(np.float64), perfect=False) for row in weights)
    return GaussianTable(weights, bits, models)


def table_key(stds: Sequence[float]) -> tuple[float, ...]:
    return tuple(float(s) for s in stds)
