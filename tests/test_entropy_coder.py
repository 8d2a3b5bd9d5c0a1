"""Round trips, exact size accounting and error paths of the constriction range-coder wrapper."""
from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch

from model.entropy_coder import (
    SYMBOL_MAX,
    SYMBOL_MIN,
    SymbolDecoder,
    SymbolEncoder,
    categorical_bits,
    gaussian_bits,
    gaussian_indexed_bits,
)
from model.entropy_models import image_scale_table, video_scale_table
from model.errors import BitstreamError

TABLE = image_scale_table()

OFFSET = -7


def gaussian_case(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-uniform stds over [0.05, 100] with symbols drawn from them, plus both support edges."""
    stds = torch.exp(torch.empty(n).uniform_(math.log(0.05), math.log(100.0), generator=generator))
    symbols = (torch.randn(n, generator=generator) * stds).round().clamp(SYMBOL_MIN, SYMBOL_MAX).long()
    symbols[:4] = torch.tensor([SYMBOL_MIN, SYMBOL_MAX, SYMBOL_MIN, SYMBOL_MAX])
    stds[2:4] = 0.0  # clamped to STD_MIN: the edge symbols cost the leaky floor, 24 bits each
    return symbols, stds


def categorical_case(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Five tables over 24 bins (some bins of probability 0) and symbols v = bin + OFFSET."""
    pmfs = torch.rand(5, 24, generator=generator) ** 4
    pmfs[:, 3] = 0.0
    pmfs = pmfs / pmfs.sum(dim=1, keepdim=True)
    table = torch.randint(0, 5, (n,), generator=generator)
    bins = torch.multinomial(pmfs[table], 1, generator=generator).squeeze(1)
    bins[:3] = torch.tensor([0, 23, 3])  # both ends and a zero-probability bin
    return bins + OFFSET, pmfs, table


def encode_all(gauss, cat, bits) -> bytes:
    enc = SymbolEncoder()
    enc.encode_gaussian(*gauss)
    enc.encode_categorical(cat[0], cat[1], cat[2], OFFSET)
    enc.encode_bits(bits, 14)
    return enc.finish()


def decode_all(data: bytes, gauss, cat, bits) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    dec = SymbolDecoder(data)
    out = dec.decode_gaussian(gauss[1]), dec.decode_categorical(cat[1], cat[2], OFFSET), dec.decode_bits(len(bits), 14)
    dec.check_exhausted()
    return out


@pytest.fixture
def case():
    generator = torch.Generator().manual_seed(1)
    gauss = gaussian_case(3000, generator)
    cat = categorical_case(500, generator)
    bits = torch.randint(0, 1 << 14, (64,), generator=generator)
    return gauss, cat, bits


def test_round_trip_mixed_stream(case):
    gauss, cat, bits = case
    data = encode_all(*case)
    g, c, b = decode_all(data, *case)
    assert torch.equal(g, gauss[0]) and torch.equal(c, cat[0]) and torch.equal(b, bits)
    assert g.dtype == c.dtype == b.dtype == torch.int64


def test_shapes_and_multidimensional_tensors():
    generator = torch.Generator().manual_seed(2)
    stds = torch.rand(2, 3, 4, 5, generator=generator) * 4 + 0.1
    symbols = (torch.randn(2, 3, 4, 5, generator=generator) * stds).round().long()
    table = torch.arange(3).reshape(1, 3, 1, 1).expand(2, 3, 4, 5)
    pmfs = torch.softmax(torch.randn(3, 256, generator=generator), dim=1)
    cat = torch.randint(SYMBOL_MIN, SYMBOL_MAX + 1, (2, 3, 4, 5), generator=generator)
    enc = SymbolEncoder()
    enc.encode_gaussian(symbols, stds.to(torch.bfloat16).float())
    enc.encode_categorical(cat, pmfs, table, SYMBOL_MIN)
    dec = SymbolDecoder(enc.finish())
    assert torch.equal(dec.decode_gaussian(stds.to(torch.bfloat16).float()), symbols)
    assert torch.equal(dec.decode_categorical(pmfs, table, SYMBOL_MIN), cat)
    dec.check_exhausted()


@pytest.mark.parametrize("nbits", [1, 14, 16, 17, 32])
def test_fixed_length_codes(nbits):
    values = torch.randint(0, 1 << min(nbits, 62), (300,), dtype=torch.int64) % (1 << nbits)
    values[:2] = torch.tensor([0, (1 << nbits) - 1])
    enc = SymbolEncoder()
    enc.encode_bits(values, nbits)
    data = enc.finish()
    assert len(data) * 8 - 300 * nbits <= 64  # exactly nbits each, plus the flush
    dec = SymbolDecoder(data)
    assert torch.equal(dec.decode_bits(300, nbits), values)
    dec.check_exhausted()


def test_empty_stream():
    enc = SymbolEncoder()
    enc.encode_gaussian(torch.zeros(0, dtype=torch.long), torch.ones(0))
    assert enc.finish() == b""
    dec = SymbolDecoder(b"")
    assert dec.decode_gaussian(torch.ones(0)).numel() == 0
    dec.check_exhausted()
    with pytest.raises(BitstreamError):
        dec.decode_bits(3, 14)


def test_real_size_matches_exact_model_bits():
    """8*10^4 symbols: the coded size is the exact information content plus the flush (at most 64 bits)."""
    generator = torch.Generator().manual_seed(3)
    gauss = gaussian_case(60000, generator)
    cat = categorical_case(20000, generator)
    for name, encode, estimate in [
        ("gaussian", lambda e: e.encode_gaussian(*gauss), gaussian_bits(*gauss)),
        ("categorical", lambda e: e.encode_categorical(cat[0], cat[1], cat[2], OFFSET), categorical_bits(*cat, OFFSET)),
    ]:
        enc = SymbolEncoder()
        encode(enc)
        real = len(enc.finish()) * 8
        assert -1 <= real - estimate <= 64, (name, real, estimate)


def test_model_bits_match_the_float_model_for_likely_symbols():
    """Away from the 24-bit floor the fixed-point model is the float model (within 0.1%)."""
    stds = torch.full((1000,), 3.0)
    symbols = torch.arange(-5, 6).repeat(91)[:1000]
    x = symbols.double()
    mass = torch.special.ndtr((x.abs() + 0.5) / 3.0) - torch.special.ndtr((x.abs() - 0.5) / 3.0)
    assert gaussian_bits(symbols, stds) == pytest.approx(float(-torch.log2(mass).sum()), rel=1e-3)
    assert gaussian_bits(torch.tensor([SYMBOL_MAX]), torch.tensor([1e-3])) == pytest.approx(24.0)


def test_invalid_arguments_raise_value_error():
    """Dtypes, shapes and widths are checked at the call; values when the stream is finished (the tensors may live
    on a GPU until then)."""
    pmfs = torch.full((2, 4), 0.25)
    stds = TABLE.host_values
    for call, match in [
        (lambda e: e.encode_gaussian(torch.tensor([128]), torch.ones(1)), "out of range"),
        (lambda e: e.encode_gaussian(torch.tensor([-129]), torch.ones(1)), "out of range"),
        (lambda e: e.encode_gaussian(torch.tensor([0]), torch.tensor([float("nan")])), "NaN"),
        (lambda e: e.encode_gaussian_indexed(torch.tensor([128]), torch.tensor([0]), stds), "out of range"),
        (lambda e: e.encode_gaussian_indexed(torch.tensor([0]), torch.tensor([256]), stds), "std indices"),
        (lambda e: e.encode_categorical(torch.tensor([4]), pmfs, torch.tensor([0]), 0), "out of range"),
        (lambda e: e.encode_categorical(torch.tensor([1]), pmfs, torch.tensor([2]), 0), "table"),
        (lambda e: e.encode_categorical(torch.tensor([1]), -pmfs, torch.tensor([0]), 0), "non-negative"),
        (lambda e: e.encode_bits(torch.tensor([1 << 14]), 14), "out of range"),
    ]:
        enc = SymbolEncoder()
        call(enc)
        with pytest.raises(ValueError, match=match):
            enc.finish()
    enc = SymbolEncoder()
    with pytest.raises(ValueError, match="integer"):
        enc.encode_gaussian(torch.tensor([0.0]), torch.ones(1))
    with pytest.raises(ValueError, match="integer"):
        enc.encode_gaussian_indexed(torch.tensor([0]), torch.tensor([0.0]), stds)
    with pytest.raises(ValueError, match="differ in shape"):
        enc.encode_gaussian_indexed(torch.tensor([0, 1]), torch.tensor([0]), stds)
    with pytest.raises(ValueError, match="nbits"):
        enc.encode_bits(torch.tensor([0]), 0)
    assert enc.finish() == b""  # the refused calls left nothing behind


@pytest.mark.parametrize("table", [image_scale_table(), video_scale_table()], ids=["image", "video"])
def test_indexed_tables_code_exactly_like_constriction_quantized_gaussian(table):
    """Every row of both scale tables: the same symbols at one std give the same bytes whether coded with the
    precomputed table or with constriction's own QuantizedGaussian (the models are identical to the last bit)."""
    generator = torch.Generator().manual_seed(4)
    for row in range(table.levels):
        symbols = (torch.randn(600, generator=generator) * table.values[row] * 1.5).round().clamp(-128, 127).long()
        symbols[:3] = torch.tensor([SYMBOL_MIN, SYMBOL_MAX, 0])
        direct, indexed = SymbolEncoder(), SymbolEncoder()
        direct.encode_gaussian(symbols, torch.full((600,), table.host_values[row]))
        indexed.encode_gaussian_indexed(symbols, torch.full((600,), row), table.host_values)
        assert direct.finish() == indexed.finish(), row


def test_indexed_stream_is_the_per_std_coder_on_symbols_grouped_by_row():
    """Format 3's y coding is format 2's coder (constriction QuantizedGaussian at the table's std) applied to the
    same symbols reordered: rows ascending, raster order within a row; the bytes are identical."""
    generator = torch.Generator().manual_seed(6)
    index = torch.randint(0, TABLE.levels, (2, 9, 40), generator=generator)
    symbols = (torch.randn(2, 9, 40, generator=generator) * TABLE.values[index] * 2).round().clamp(-128, 127).long()
    indexed, reference = SymbolEncoder(), SymbolEncoder()
    indexed.encode_gaussian_indexed(symbols, index, TABLE.host_values)
    for row in torch.unique(index).tolist():
        at = index == row
        reference.encode_gaussian(symbols[at], torch.full((int(at.sum()),), TABLE.host_values[row]))
    assert indexed.finish() == reference.finish()


def test_indexed_round_trip_grouped_by_row_and_exact_size():
    """Random rows, shaped [3, 7, 50], between other calls: exact round trip; the size is the tables' information
    content plus at most the flush."""
    generator = torch.Generator().manual_seed(5)
    index = torch.randint(0, TABLE.levels, (3, 7, 50), generator=generator)
    symbols = (torch.randn(3, 7, 50, generator=generator) * TABLE.values[index]).round().clamp(-128, 127).long()
    enc = SymbolEncoder()
    enc.encode_bits(torch.tensor([3]), 2)
    enc.encode_gaussian_indexed(symbols, index, TABLE.host_values)
    enc.encode_bits(torch.tensor([1]), 2)
    data = enc.finish()
    dec = SymbolDecoder(data)
    assert dec.decode_bits(1, 2).tolist() == [3]
    out = dec.decode_gaussian_indexed(index, TABLE.host_values)
    assert dec.decode_bits(1, 2).tolist() == [1]
    dec.check_exhausted()
    assert torch.equal(out, symbols) and out.dtype == torch.int64
    bits = gaussian_indexed_bits(symbols, index, TABLE.host_values) + 4
    assert bits <= 8 * len(data) <= bits + 64


def test_truncated_corrupt_and_random_data_raise_bitstream_error(case):
    """Every truncation and many byte flips either decode or raise BitstreamError: nothing else, no hang."""
    data = encode_all(*case)
    rng = np.random.default_rng(0)
    variants = [data[:k] for k in range(0, len(data), 3)]
    variants += [data + b"\x00\x00\x00\x01", data + data[:8], rng.bytes(4 * 50)]
    for _ in range(150):
        flipped = bytearray(data)
        flipped[rng.integers(len(data))] ^= 1 << int(rng.integers(8))
        variants.append(bytes(flipped))
    errors = 0
    for variant in variants:
        try:
            decode_all(variant, *case)
        except BitstreamError:
            errors += 1
    assert errors >= 0.9 * len(variants)  # the container's CRC catches the few silent corruptions
    with pytest.raises(BitstreamError, match="32-bit words"):
        SymbolDecoder(data[:-1])


def test_decode_bits_below_refuses_larger_values_as_corrupt_data():
    enc = SymbolEncoder()
    enc.encode_bits(torch.tensor([5, 119, 120]), 7)
    data = enc.finish()
    assert SymbolDecoder(data).decode_bits(3, 7, below=121).tolist() == [5, 119, 120]
    with pytest.raises(BitstreamError, match="7-bit value 120 >= 120"):
        SymbolDecoder(data).decode_bits(3, 7, below=120)


def test_finish_fetching_returns_the_stream_and_the_extra_tensors_exactly():
    """Mixed dtypes and shapes (bf16 arrives as float32, exactly): the stream equals plain `finish`'s."""
    generator = torch.Generator().manual_seed(7)
    index = torch.randint(0, TABLE.levels, (2, 3, 5), generator=generator)
    symbols = torch.randint(-5, 6, (2, 3, 5), generator=generator)
    picture = torch.randint(0, 256, (4, 6, 3), generator=generator).to(torch.uint8).permute(1, 0, 2)
    extras = [picture, torch.tensor(1234.5), torch.tensor([0.1, -2.0], dtype=torch.bfloat16), torch.tensor([True, False])]
    plain, fetching = SymbolEncoder(), SymbolEncoder()
    for enc in (plain, fetching):
        enc.encode_gaussian_indexed(symbols, index, TABLE.host_values)
        enc.encode_bits(torch.tensor([9]), 4)
    data, arrays = fetching.finish_fetching(extras)
    assert data == plain.finish()
    assert [a.dtype for a in arrays] == [np.uint8, np.float32, np.float32, np.bool_]
    assert np.array_equal(arrays[0].reshape(6, 4, 3), picture.numpy())
    assert arrays[1].tolist() == [1234.5] and arrays[3].tolist() == [True, False]
    assert arrays[2].tolist() == extras[2].float().tolist()


FORMAT_3_SHA256 = "3ee7dddf6b5d97788fecacc4dc5ce4e49eff9e7361b73e3cd514f2cd618fe15a"


def test_format_3_y_coding_gives_the_pinned_bytes():
    """Golden bytes of the y coding (both scale tables, escapes, fixed-length codes): integer tables and an
    integer coder, integer-derived symbols: the same on every machine. A change here changes the bitstream: bump FORMAT_VERSION."""
    generator = torch.Generator().manual_seed(2025)
    enc = SymbolEncoder()
    for table, escape in ((image_scale_table(), True), (video_scale_table(), False)):
        index = torch.randint(0, table.levels, (1, 8, 4, 6), generator=generator)
        symbols = (torch.randint(-30, 31, (1, 8, 4, 6), generator=generator) * table.values[index] / 10).round().long()
        if escape:
            symbols.view(-1)[:3] = torch.tensor([300, -70000, 127])
        else:
            symbols = symbols.clamp(-128, 127)
        enc.encode_gaussian_indexed(symbols, index, table.host_values, escape=escape)
    enc.encode_bits(torch.arange(5) * 3000, 14)
    data = enc.finish()
    assert len(data) == 236 and hashlib.sha256(data).hexdigest() == FORMAT_3_SHA256

