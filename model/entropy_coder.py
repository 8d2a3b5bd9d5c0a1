"""Real entropy coding with constriction's range coder (a queue: symbols decode in the order they were encoded).

Three kinds of symbols share one byte stream, in any order, as long as the decoder repeats the encoder's calls:
* zero-mean quantised Gaussians over [-128, 127] (constriction `QuantizedGaussian`, leaky: every symbol codable);
  the codecs' y latents use the same models through `encode_gaussian_indexed`: the std of each symbol is an entry
  of a fixed scale table, its pmf a precomputed integer table row (model/gaussian_tables.py), and the symbols are
  coded grouped by row (no per-symbol Gaussian evaluation; escapes for larger symbols, model/symbol_escape.py);
* categorical symbols, one probability row per symbol picked from a table of pmfs (constriction `Categorical`,
  fast leaky quantisation); symbols are coded grouped by table row (stable order), 15-30x faster than passing
  one probability row per symbol (2k symbols, 16 rows of 256 bins);
* fixed-length codes (`Uniform` over 2**w values, at most 16 bits per piece: exactly w bits each).

The encoder records its calls and codes them in `finish` (one host transfer for tensors on a GPU).
`gaussian_bits` / `gaussian_indexed_bits` / `categorical_bits` give the exact information content -log2 p of the
same 24-bit fixed-point models the coder uses (mirroring constriction's quantisers; only an ulp of `erf` can
differ). The coded size is that plus at most 64 bits of flush and 32-bit word padding.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import constriction
import numpy as np
import torch

from .errors import BitstreamError
from .gaussian_tables import GaussianTable, gaussian_table, table_key
from .symbol_escape import escape_codes, escape_excess, unescape

SYMBOL_MIN, SYMBOL_MAX = -128, 127
STD_MIN, STD_MAX = 1e-5, 1e5  # Gaussian stds are clamped to this range by the coder and by `gaussian_bits`
MAX_BITS = 32  # widest fixed-length code
PRECISION = 24  # constriction's probability precision (the "default" preset)
_TOTAL = float(1 << PRECISION)
_GAUSSIAN_FREE_WEIGHT = float((1 << PRECISION) - (SYMBOL_MAX - SYMBOL_MIN + 1))
_BIT_PIECE = 16

_queue = constriction.stream.queue
_model = constriction.stream.model
_GAUSSIAN = _model.QuantizedGaussian(SYMBOL_MIN, SYMBOL_MAX)


# --------------------------------------------------------------------------------------------- input checks
def _numpy(tensor: torch.Tensor) -> np.ndarray:
    """Flattened CPU numpy array (casts happen in numpy: torch's threaded casts are slow on a busy CPU)."""
    tensor = tensor.detach().cpu()
    if tensor.dtype in (torch.bfloat16, torch.float16):
        tensor = tensor.float()
    return tensor.reshape(-1).numpy()


def _integer(symbols: torch.Tensor, what: str) -> None:
    if symbols.dtype.is_floating_point or symbols.dtype.is_complex:
        raise ValueError(f"{what} must be an integer tensor, got {symbols.dtype}")


def _checked(values: np.ndarray, low: int, high: int, what: str) -> np.ndarray:
    """int64 copy of `values`; ValueError unless every value lies in [low, high]."""
    values = values.astype(np.int64)
    if values.size and (values.min() < low or values.max() > high):
        raise ValueError(f"{what} out of range [{low}, {high}]: got [{values.min()}, {values.max()}]")
    return values


def _symbols(symbols: torch.Tensor, low: int, high: int, what: str) -> np.ndarray:
    """Flattened int64 copy of `symbols`; ValueError unless every value lies in [low, high]."""
    _integer(symbols, what)
    return _checked(_numpy(symbols), low, high, what)


def _clip_stds(values: np.ndarray) -> np.ndarray:
    """float64 stds clamped to [STD_MIN, STD_MAX]; ValueError on NaN."""
    values = values.astype(np.float64)
    if np.isnan(values).any():
        raise ValueError("Gaussian stds contain NaN")
    return np.clip(values, STD_MIN, STD_MAX)


def _pmfs(table: np.ndarray) -> np.ndarray:
    """pmfs [T, L] as C-contiguous float64; ValueError unless finite, non-negative, rows normalisable."""
    table = np.ascontiguousarray(table, dtype=np.float64)
    if not np.isfinite(table).all() or (table < 0).any():
        raise ValueError("pmfs must be finite and non-negative")
    if (table.sum(axis=1) < np.finfo(np.float64).tiny).any():
        raise ValueError("every pmf row needs a positive sum")
    return table


def _tensor_pmfs(pmfs: torch.Tensor) -> np.ndarray:
    if pmfs.dim() != 2 or pmfs.shape[1] < 2:
        raise ValueError(f"pmfs must have shape [T, L] with L >= 2, got {tuple(pmfs.shape)}")
    return _pmfs(_numpy(pmfs).reshape(pmfs.shape))


def _table(table: torch.Tensor, rows: int, shape: torch.Size) -> np.ndarray:
    if table.shape != shape:
        raise ValueError(f"table shape {tuple(table.shape)} differs from symbol shape {tuple(shape)}")
    return _symbols(table, 0, rows - 1, "pmf table indices")


def _groups(table: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(row, positions) for every pmf row in use, rows ascending, positions in their original order."""
    order = np.argsort(table, kind="stable")
    starts = np.flatnonzero(np.diff(table[order], prepend=-1))
    for start, end in zip(starts, [*starts[1:], order.size]):
        yield int(table[order[start]]), order[start:end]


def _bit_pieces(nbits: int) -> list[tuple[int, int]]:
    """(shift, width) pieces of at most 16 bits, most significant first."""
    if not 1 <= nbits <= MAX_BITS:
        raise ValueError(f"nbits must be in [1, {MAX_BITS}], got {nbits}")
    return [(shift, min(_BIT_PIECE, nbits - shift)) for shift in reversed(range(0, nbits, _BIT_PIECE))]


def _categorical(row: np.ndarray) -> constriction.stream.model.Categorical:
    return _model.Categorical(row, perfect=False)


# --------------------------------------------------------------------------------------------- host transfer
_NUMPY_DTYPES = {torch.bool: np.bool_, torch.uint8: np.uint8, torch.int8: np.int8, torch.int16: np.int16,
                 torch.int32: np.int32, torch.int64: np.int64, torch.float32: np.float32, torch.float64: np.float64}


def _host(tensors: Sequence[torch.Tensor]) -> list[np.ndarray]:
    """Flattened numpy copies of `tensors` with one read per device (one host wait on a GPU, whatever their
    number): each device's tensors travel packed as the bytes of one uint8 tensor. Floating tensors arrive as
    float32 (exact for bf16 / fp16) or float64."""
    flat = []
    for t in tensors:
        t = t.detach().reshape(-1)
        flat.append(t.float() if t.dtype in (torch.bfloat16, torch.float16) else t)
    out: list[np.ndarray | None] = [None] * len(flat)
    for device in dict.fromkeys(t.device for t in flat):
        indices = [i for i, t in enumerate(flat) if t.device == device]
        packed = torch.cat([flat[i].contiguous().view(torch.uint8) for i in indices]).cpu().numpy()
        start = 0
        for i in indices:
            size = flat[i].numel() * flat[i].element_size()
            out[i] = packed[start : start + size].view(_NUMPY_DTYPES[flat[i].dtype])
            start += size
    return out


def _grouped(index: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(order, bounds): positions sorted by row (stable), and where each row's run starts and ends."""
    small = index.astype(np.uint8 if rows <= 256 else np.uint16)
    order = np.argsort(small, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(small, minlength=rows))])
    return order, bounds


def _indexed(symbols: torch.Tensor | None, index: torch.Tensor, stds: Sequence[float]) -> GaussianTable:
    if symbols is not None and symbols.shape != index.shape:
        raise ValueError(f"symbols {tuple(symbols.shape)} and std indices {tuple(index.shape)} differ in shape")
    if index.dtype.is_floating_point:
        raise ValueError(f"std indices must be an integer tensor, got {index.dtype}")
    return gaussian_table(table_key(stds))


# --------------------------------------------------------------------------------------------- coder
class SymbolEncoder:
    """Collects symbols into one range-coded byte stream.

    The calls only record their tensors (which may live on a GPU): `finish` fetches everything in one transfer and
    codes it, so a frame's encoder waits for the device once. Values are checked there (ValueError); shapes and
    dtypes at the call.
    """

    def __init__(self) -> None:
        self._encoder = _queue.RangeEncoder()
        self._pending: list[tuple[str, list[torch.Tensor], tuple]] = []

    def encode_gaussian(self, symbols: torch.Tensor, stds: torch.Tensor) -> None:
        """Zero-mean quantised Gaussian symbols in [-128, 127] with per-symbol stds (same shape)."""
        if symbols.shape != stds.shape:
            raise ValueError(f"symbols {tuple(symbols.shape)} and stds {tuple(stds.shape)} differ in shape")
        _integer(symbols, "Gaussian symbols")
        self._pending.append(("gaussian", [symbols, stds], ()))

    def encode_gaussian_indexed(
        self, symbols: torch.Tensor, index: torch.Tensor, stds: Sequence[float], escape: bool = False
    ) -> None:
        """Symbol i coded with the quantised zero-mean Gaussian of std stds[index[i]] (model/gaussian_tables.py),
        grouped by table row. Symbols must lie in [-128, 127], or, with `escape`, may have any size up to
        +-2**32 (model/symbol_escape.py)."""
        table = _indexed(symbols, index, stds)
        _integer(symbols, "Gaussian symbols")
        self._pending.append(("indexed", [symbols, index], (table, escape)))

    def encode_categorical(self, symbols: torch.Tensor, pmfs: torch.Tensor, table: torch.Tensor, offset: int) -> None:
        """Value v coded in bin v - offset of pmf row table[i] (table has the symbols' shape)."""
        if pmfs.dim() != 2 or pmfs.shape[1] < 2:
            raise ValueError(f"pmfs must have shape [T, L] with L >= 2, got {tuple(pmfs.shape)}")
        if table.shape != symbols.shape:
            raise ValueError(f"table shape {tuple(table.shape)} differs from symbol shape {tuple(symbols.shape)}")
        _integer(symbols, "categorical symbols")
        self._pending.append(("categorical", [symbols, pmfs, table], (offset, tuple(pmfs.shape))))

    def encode_bits(self, values: torch.Tensor, nbits: int) -> None:
        """Fixed-length codes: each value in [0, 2**nbits) costs exactly nbits bits."""
        _bit_pieces(nbits)
        _integer(values, f"{nbits}-bit values")
        self._pending.append(("bits", [values], (nbits,)))

    def finish(self) -> bytes:
        """The coded stream so far: little-endian 32-bit words (empty when nothing was encoded)."""
        return self.finish_fetching([])[0]

    def finish_fetching(self, tensors: Sequence[torch.Tensor]) -> tuple[bytes, list[np.ndarray]]:
        """`finish`, fetching `tensors` (flattened, as numpy arrays) in the same read as the recorded symbols: a
        frame's coder output and picture reach the host with one wait."""
        pending, self._pending = self._pending, []
        recorded = [t for _, args, _ in pending for t in args]
        arrays = _host([*recorded, *tensors])
        coded = iter(arrays[: len(recorded)])
        for kind, args, extra in pending:
            getattr(self, f"_code_{kind}")(*[next(coded) for _ in args], *extra)
        return self._encoder.get_compressed().astype("<u4").tobytes(), arrays[len(recorded) :]

    # the coding itself, on host arrays
    def _code_gaussian(self, symbols: np.ndarray, stds: np.ndarray) -> None:
        values = _checked(symbols, SYMBOL_MIN, SYMBOL_MAX, "Gaussian symbols").astype(np.int32)
        scales = _clip_stds(stds)
        if values.size:
            self._encoder.encode(values, _GAUSSIAN, np.zeros_like(scales), scales)

    def _code_indexed(self, symbols: np.ndarray, index: np.ndarray, table: GaussianTable, escape: bool) -> None:
        _checked(index, 0, table.rows - 1, "std indices")
        if escape:
            symbols, excess = escape_excess(symbols)
        bins = (_checked(symbols, SYMBOL_MIN, SYMBOL_MAX, "Gaussian symbols") - SYMBOL_MIN).astype(np.int32)
        order, bounds = _grouped(index, table.rows)
        bins = bins[order]
        for row in np.flatnonzero(np.diff(bounds)):
            self._encoder.encode(bins[bounds[row] : bounds[row + 1]], table.models[row])
        if escape:
            for values, nbits in escape_codes(excess):
                self._code_bits(values, nbits)

    def _code_categorical(
        self, symbols: np.ndarray, pmfs: np.ndarray, table: np.ndarray, offset: int, shape: tuple[int, int]
    ) -> None:
        rows = _pmfs(pmfs.reshape(shape))
        index = _checked(table, 0, rows.shape[0] - 1, "pmf table indices")
        bins = (_checked(symbols, offset, offset + rows.shape[1] - 1, "categorical symbols") - offset).astype(np.int32)
        for row, positions in _groups(index):
            self._encoder.encode(bins[positions], _categorical(rows[row]))

    def _code_bits(self, values: np.ndarray, nbits: int) -> None:
        data = _checked(values, 0, (1 << nbits) - 1, f"{nbits}-bit values")
        for shift, width in _bit_pieces(nbits):
            if data.size:
                piece = ((data >> shift) & ((1 << width) - 1)).astype(np.int32)
                self._encoder.encode(piece, _model.Uniform(1 << width))


class SymbolDecoder:
    """Reads a `SymbolEncoder` stream back; the calls must repeat the encoder's, with the same models."""

    def __init__(self, data: bytes) -> None:
        if len(data) % 4:
            raise BitstreamError(f"entropy-coded stream of {len(data)} bytes is not a whole number of 32-bit words")
        self._empty = not data
        self._decoder = _queue.RangeDecoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))

    def _decode(self, count: int, *model_and_params) -> np.ndarray:
        if count == 0:
            return np.zeros(0, dtype=np.int32)
        if self._empty:
            raise BitstreamError("entropy-coded stream ended before all symbols were decoded")
        try:
            return self._decoder.decode(*model_and_params)
        except BaseException as exc:  # constriction raises AssertionError/ValueError; a Rust panic is a BaseException
            if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
                raise
            raise BitstreamError(f"corrupt entropy-coded data ({type(exc).__name__}: {exc})") from None

    def decode_gaussian(self, stds: torch.Tensor) -> torch.Tensor:
        """Symbols coded by `encode_gaussian` with these stds -> LongTensor of the stds' shape and device."""
        scales = _clip_stds(_numpy(stds))
        values = self._decode(scales.size, _GAUSSIAN, np.zeros_like(scales), scales)
        return torch.from_numpy(values.astype(np.int64)).reshape(stds.shape).to(stds.device)

    def decode_gaussian_indexed(self, index: torch.Tensor, stds: Sequence[float], escape: bool = False) -> torch.Tensor:
        """Symbols coded by `encode_gaussian_indexed` -> LongTensor of the index's shape and device (one host wait:
        fetching the index)."""
        table = _indexed(None, index, stds)
        rows = _checked(_numpy(index), 0, table.rows - 1, "std indices")
        order, bounds = _grouped(rows, table.rows)
        grouped = np.empty(rows.size, dtype=np.int64)
        for row in np.flatnonzero(np.diff(bounds)):
            count = int(bounds[row + 1] - bounds[row])
            grouped[bounds[row] : bounds[row + 1]] = self._decode(count, table.models[row], count)
        symbols = np.empty_like(grouped)
        symbols[order] = grouped + SYMBOL_MIN
        if escape:
            symbols = unescape(symbols, self._bits)
        return torch.from_numpy(symbols).reshape(index.shape).to(index.device)

    def decode_categorical(self, pmfs: torch.Tensor, table: torch.Tensor, offset: int) -> torch.Tensor:
        """Symbols coded by `encode_categorical` -> LongTensor of the table's shape and device."""
        if pmfs.dim() != 2 or pmfs.shape[1] < 2:
            raise ValueError(f"pmfs must have shape [T, L] with L >= 2, got {tuple(pmfs.shape)}")
        host_pmfs, host_table = _host([pmfs, table])
        rows = _pmfs(host_pmfs.reshape(pmfs.shape))
        index = _checked(host_table, 0, rows.shape[0] - 1, "pmf table indices")
        out = np.empty(index.size, dtype=np.int64)
        for row, positions in _groups(index):
            out[positions] = self._decode(positions.size, _categorical(rows[row]), positions.size)
        return torch.from_numpy(out + offset).reshape(table.shape).to(table.device)

    def decode_bits(self, count: int, nbits: int, below: int | None = None) -> torch.Tensor:
        """`count` fixed-length codes of `nbits` bits -> LongTensor [count] (on the CPU); with `below`, a value
        >= below is a BitstreamError (checked here, on the host)."""
        values = self._bits(count, nbits)
        if below is not None and values.size and values.max() >= below:
            raise BitstreamError(f"corrupt entropy-coded data ({nbits}-bit value {values.max()} >= {below})")
        return torch.from_numpy(values)

    def _bits(self, count: int, nbits: int) -> np.ndarray:
        out = np.zeros(count, dtype=np.int64)
        for shift, width in _bit_pieces(nbits):
            out |= self._decode(count, _model.Uniform(1 << width), count).astype(np.int64) << shift
        return out

    def check_exhausted(self) -> None:
        """BitstreamError if data is left over (a corrupt stream, or one decoded with the wrong model)."""
        if not self._empty and not self._decoder.maybe_exhausted():
            raise BitstreamError("entropy-coded stream has data left after the last symbol")


# --------------------------------------------------------------------------------------------- exact model bits
def _gaussian_cdf(x: np.ndarray, std: np.ndarray) -> np.ndarray:
    """The CDF exactly as constriction evaluates it: (1 + erf(x / (std * sqrt 2))) / 2 in float64."""
    return (1.0 + torch.special.erf(torch.from_numpy(x / (std * math.sqrt(2.0)))).numpy()) / 2.0


def gaussian_bits(symbols: torch.Tensor, stds: torch.Tensor) -> float:
    """Exact -log2 p of `symbols` under the coder's leaky 24-bit quantised Gaussians (sum over all symbols)."""
    if symbols.shape != stds.shape:
        raise ValueError(f"symbols {tuple(symbols.shape)} and stds {tuple(stds.shape)} differ in shape")
    q = _symbols(symbols, SYMBOL_MIN, SYMBOL_MAX, "Gaussian symbols").astype(np.float64)
    std = _clip_stds(_numpy(stds))
    slack = q - SYMBOL_MIN
    left = np.floor(_GAUSSIAN_FREE_WEIGHT * _gaussian_cdf(q - 0.5, std)) + slack
    right = np.floor(_GAUSSIAN_FREE_WEIGHT * _gaussian_cdf(q + 0.5, std)) + slack + 1
    left = np.where(q == SYMBOL_MIN, 0.0, left)
    right = np.where(q == SYMBOL_MAX, _TOTAL, right)
    return float((PRECISION - np.log2(right - left)).sum())


def categorical_bits(symbols: torch.Tensor, pmfs: torch.Tensor, table: torch.Tensor, offset: int) -> float:
    """Exact -log2 p of `symbols` under the coder's leaky 24-bit quantised categorical models (sum)."""
    rows = _tensor_pmfs(pmfs)
    index = _table(table, rows.shape[0], symbols.shape)
    levels = rows.shape[1]
    bins = _symbols(symbols, offset, offset + levels - 1, "categorical symbols") - offset
    cumulative = np.cumsum(rows, axis=1)  # sequential sums, as constriction accumulates them
    scale = ((1 << PRECISION) - levels) / cumulative[:, -1]
    left_float = np.where(bins > 0, cumulative[index, bins - 1], 0.0)
    left = np.trunc(left_float * scale[index]) + bins
    right = np.where(bins == levels - 1, _TOTAL, np.trunc(cumulative[index, bins] * scale[index]) + bins + 1)
    return float((PRECISION - np.log2(right - left)).sum())


def gaussian_indexed_bits(symbols: torch.Tensor, index: torch.Tensor, stds: Sequence[float]) -> float:
    """Exact -log2 p of symbols in [-128, 127] under `encode_gaussian_indexed`'s tables (sum over all symbols)."""
    table = _indexed(symbols, index, stds)
    rows = _symbols(index, 0, table.rows - 1, "std indices")
    bins = _symbols(symbols, SYMBOL_MIN, SYMBOL_MAX, "Gaussian symbols") - SYMBOL_MIN
    return float(table.bits[rows, bins].sum())
