"""The escape for Gaussian symbols beyond [-128, 127]: exact round trips, exact bit counts, and the I-frame codec
coding a forced large symbol exactly (it used to clamp it to 127 without a word)."""
from __future__ import annotations

import pytest
import torch

from model.config import tiny
from model.entropy_coder import SymbolDecoder, SymbolEncoder, gaussian_indexed_bits
from model.entropy_models import image_scale_table
from model.intra import IntraCodec
from model.symbol_escape import escape_bits
from tests.test_entropy_models import single_thread  # noqa: F401 (autouse)

EXTREMES = [0, 5, -7, 126, 127, 128, 129, -127, -128, -129, -130, 1000, -70_000, 2**31, -(2**32 - 1)]
TABLE = image_scale_table()


def _round_trip(symbols: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, bytes]:
    enc = SymbolEncoder()
    enc.encode_gaussian_indexed(symbols, index, TABLE.host_values, escape=True)
    enc.encode_bits(torch.tensor([5]), 3)  # something after the escapes: they must end where they should
    data = enc.finish()
    dec = SymbolDecoder(data)
    out = dec.decode_gaussian_indexed(index, TABLE.host_values, escape=True)
    assert dec.decode_bits(1, 3).tolist() == [5]
    dec.check_exhausted()
    return out, data


def test_extreme_symbols_round_trip_exactly() -> None:
    symbols = torch.tensor(EXTREMES)
    out, _ = _round_trip(symbols, torch.full((len(EXTREMES),), 40))
    assert torch.equal(out, symbols)


def test_random_symbols_round_trip_and_bits_are_exact() -> None:
    g = torch.Generator().manual_seed(1)
    index = torch.randint(0, 256, (4000,), generator=g)
    symbols = torch.round(torch.randn(4000, generator=g) * TABLE.values[index] * 4).long()
    assert int(symbols.abs().max()) > 128  # the test needs escapes
    out, data = _round_trip(symbols, index)
    assert torch.equal(out, symbols)
    model_bits = gaussian_indexed_bits(symbols.clamp(-128, 127), index, TABLE.host_values)
    model_bits += float(escape_bits(symbols.reshape(1, -1))) + 3
    assert model_bits <= 8 * len(data) <= model_bits + 96  # flush and 32-bit word padding only


def test_forced_large_symbols_on_both_ends_in_a_2d_tensor() -> None:
    """Every end-bin case at once, shaped [4, 5]: in range, on an end bin, one past it, and far past it."""
    symbols = torch.tensor(EXTREMES + [3, -3, 127, -128, 4_000_000_000]).reshape(4, 5)
    index = torch.arange(20).reshape(4, 5) * 12
    out, _ = _round_trip(symbols, index)
    assert torch.equal(out, symbols) and out.shape == (4, 5)


def test_escape_bit_counts() -> None:
    # in range: nothing; an end bin without excess: 5 bits; excess e: 5 + floor(log2(e + 1))
    symbols = torch.tensor([[0, 126, 127, -128, 128, -131, 127 + 1000]])
    assert escape_bits(symbols).tolist() == [5 + 5 + (5 + 1) + (5 + 2) + (5 + 9)]


def test_in_range_symbols_cost_nothing_extra() -> None:
    index = torch.full((3,), 100)
    symbols = torch.tensor([3, -126, 126])
    escaped, plain = SymbolEncoder(), SymbolEncoder()
    escaped.encode_gaussian_indexed(symbols, index, TABLE.host_values, escape=True)
    plain.encode_gaussian_indexed(symbols, index, TABLE.host_values)
    assert escaped.finish() == plain.finish()


def test_too_large_symbol_is_refused() -> None:
    enc = SymbolEncoder()
    enc.encode_gaussian_indexed(torch.tensor([2**33]), torch.zeros(1, dtype=torch.long), TABLE.host_values, True)
    with pytest.raises(ValueError, match="too large to code"):
        enc.finish()


def test_intra_codes_a_forced_large_symbol_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two y values pushed far out (+1000, -5000): encoder and decoder must both rebuild them (y_hat within half a
    quantisation step), where the clamp to [-128, 127] used to change them without a word."""
    torch.manual_seed(0)
    codec = IntraCodec(tiny()).eval()
    real_encoder, real_decoder = codec.enc.forward, codec.dec.forward

    def large_y(x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, sem = real_encoder(x, cond)
        y = y.clone()
        y[0, 0, 0, 0] = 1000.0
        y[0, 1, 0, 1] = -5000.0
        return y, sem

    y_hats: list[torch.Tensor] = []

    def spy(y_hat: torch.Tensor, y_semantic: torch.Tensor) -> torch.Tensor:
        y_hats.append(y_hat)
        return real_decoder(y_hat, y_semantic)

    monkeypatch.setattr(codec.enc, "forward", large_y)
    monkeypatch.setattr(codec.dec, "forward", spy)
    g = torch.Generator().manual_seed(2)
    x, cond = torch.rand(1, 3, 64, 64, generator=g) * 2 - 1, torch.randn(1, 32, 8, 8, generator=g)
    enc = SymbolEncoder()
    with torch.no_grad():
        sent = codec.compress(x, cond, 1, enc)
        data = enc.finish()
        dec = SymbolDecoder(data)
        got = codec.decompress(dec, 64, 64, 1)
        dec.check_exhausted()
        estimate = codec(x, cond, 1)
    step = 1 / float(codec.y_q_scale.detach()[1, :2].min())  # one quantisation step of channels 0 and 1 at rate 1
    for y_hat in y_hats:  # encoder, decoder, estimate
        assert abs(float(y_hat[0, 0, 0, 0]) - 1000.0) <= step / 2 + 1e-3
        assert abs(float(y_hat[0, 1, 0, 1]) + 5000.0) <= step / 2 + 1e-3
    assert torch.equal(sent["f_pix"], got["f_pix"]) and torch.equal(sent["f_pix"], estimate["f_pix"])
    assert torch.allclose(sent["bits"], estimate["bits"], rtol=1e-5)
    assert abs(8 * len(data) - sent["bits"].item()) <= 0.01 * sent["bits"].item() + 96
