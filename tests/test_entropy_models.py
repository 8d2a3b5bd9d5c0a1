"""Entropy models: FSQ, factorized z density, scale tables, likelihoods, quantisation, rate helpers, prior masks.

Also defines `FakeSymbolEncoder` / `FakeSymbolDecoder`, a list-backed stand-in for model/entropy_coder.py with the
same API, used by the codec round-trip tests. It checks that the decoder asks for exactly the stds (and pmfs) the
encoder used, which is the determinism the real coder relies on.
"""
from __future__ import annotations

import math
from collections import deque

import pytest
import torch

from model.entropy_models import (
    FSQ,
    LEAK,
    BitEstimator,
    ScaleTable,
    checkerboard_masks,
    four_part_masks,
    gaussian_likelihood,
    image_scale_table,
    initial_rate_gains,
    leaky,
    likelihood_bits,
    quantize,
    rate_tensor,
    video_scale_table,
)


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """One intra-op thread: the test machines are shared, and oversubscribed threads make tiny models crawl."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# --------------------------------------------------------------------------------------------- fake coder
class FakeSymbolEncoder:
    """Queues what it is given; `finish()` returns the queue (stands in for the bytes)."""

    def __init__(self) -> None:
        self.queue: list[tuple] = []

    def encode_gaussian_indexed(
        self, symbols: torch.Tensor, index: torch.Tensor, stds: tuple[float, ...], escape: bool = False
    ) -> None:
        assert symbols.dtype == torch.long and index.dtype == torch.long and symbols.shape == index.shape
        assert escape or symbols.numel() == 0 or (-128 <= int(symbols.min()) and int(symbols.max()) <= 127)
        assert index.numel() == 0 or (0 <= int(index.min()) and int(index.max()) < len(stds))
        self.queue.append(("gaussian", symbols.clone(), index.clone(), stds, escape))

    def encode_categorical(self, symbols: torch.Tensor, pmfs: torch.Tensor, table: torch.Tensor, offset: int) -> None:
        assert symbols.dtype == torch.long and table.dtype == torch.long and symbols.shape == table.shape
        bins = symbols - offset
        assert bool(((bins >= 0) & (bins < pmfs.shape[1])).all())
        self.queue.append(("categorical", symbols.clone(), pmfs.clone(), table.clone(), offset))

    def encode_bits(self, values: torch.Tensor, nbits: int) -> None:
        assert bool(((values >= 0) & (values < 2**nbits)).all())
        self.queue.append(("bits", values.clone(), nbits))

    def finish(self) -> list[tuple]:
        return list(self.queue)


class FakeSymbolDecoder:
    """Replays a FakeSymbolEncoder queue in FIFO order, asserting the decoder-side models are identical."""

    def __init__(self, data: list[tuple]) -> None:
        self.queue = deque(data)

    def _pop(self, kind: str) -> tuple:
        item = self.queue.popleft()
        assert item[0] == kind, f"decoder asked for {kind} but the encoder wrote {item[0]}"
        return item

    def decode_gaussian_indexed(self, index: torch.Tensor, stds: tuple[float, ...], escape: bool = False) -> torch.Tensor:
        _, symbols, enc_index, enc_stds, enc_escape = self._pop("gaussian")
        assert torch.equal(index, enc_index) and stds == enc_stds and escape == enc_escape, "decoder stds differ"
        return symbols.reshape(index.shape)

    def decode_categorical(self, pmfs: torch.Tensor, table: torch.Tensor, offset: int) -> torch.Tensor:
        _, symbols, enc_pmfs, enc_table, enc_offset = self._pop("categorical")
        assert torch.equal(pmfs, enc_pmfs) and torch.equal(table, enc_table) and offset == enc_offset
        return symbols.reshape(table.shape)

    def decode_bits(self, count: int, nbits: int, below: int | None = None) -> torch.Tensor:
        _, values, enc_nbits = self._pop("bits")
        assert nbits == enc_nbits and values.numel() == count
        assert below is None or values.numel() == 0 or int(values.max()) < below
        return values

    def check_exhausted(self) -> None:
        assert not self.queue, f"{len(self.queue)} coded item(s) left unread"


def test_fake_coder_rejects_mismatched_stds() -> None:
    enc = FakeSymbolEncoder()
    enc.encode_gaussian_indexed(torch.tensor([1, -2]), torch.tensor([0, 1]), (1.0, 2.0))
    dec = FakeSymbolDecoder(enc.finish())
    with pytest.raises(AssertionError, match="stds differ"):
        dec.decode_gaussian_indexed(torch.tensor([0, 0]), (1.0, 2.0))


# --------------------------------------------------------------------------------------------- FSQ
def test_fsq_codes_and_index_formula() -> None:
    fsq = FSQ((4,) * 7).eval()
    assert fsq.bits == 14 and fsq.codebook_size == 16384
    assert len(fsq.state_dict()) == 0
    z = torch.tensor([-9.0, -0.6, 0.1, 9.0, 0.0, 0.4, -9.0]).reshape(1, 7, 1, 1)
    codes, idx = fsq(z)
    assert set(codes.unique().tolist()) <= {-1.0, -0.5, 0.0, 0.5}
    assert codes[0, 0].item() == -1.0 and codes[0, 3].item() == 0.5
    q = (codes.flatten() * 2).long()
    expected = sum(int(q[d] + 2) * 4**d for d in range(7))
    assert idx.shape == (1, 1, 1) and idx.item() == expected


def test_fsq_index_round_trip() -> None:
    fsq = FSQ((4,) * 7).eval()
    indices = torch.randint(0, 16384, (2, 3, 5))
    codes = fsq.indices_to_codes(indices)
    assert codes.shape == (2, 7, 3, 5)
    assert torch.equal(fsq.codes_to_indices(codes), indices)
    # invert the tanh bounding (half_l = 1.5 * 1.001, shift = atanh(0.5 / half_l)) and quantise again
    half_l = 1.5 * 1.001
    z = torch.atanh((2 * codes + 0.5) / half_l) - math.atanh(0.5 / half_l)
    recoded, idx = fsq(z)
    assert torch.equal(idx, indices) and torch.equal(recoded, codes)


def test_fsq_mixed_levels_and_errors() -> None:
    fsq = FSQ((3, 5, 8))
    assert fsq.codebook_size == 120 and fsq.bits == 7
    indices = torch.arange(120).reshape(1, 120, 1)
    assert torch.equal(fsq.codes_to_indices(fsq.indices_to_codes(indices)), indices)
    with pytest.raises(ValueError, match="3 channels"):
        fsq(torch.zeros(1, 4, 1, 1))
    with pytest.raises(ValueError, match="out of range"):
        fsq.indices_to_codes(torch.tensor([120]))


def test_fsq_straight_through_in_training() -> None:
    fsq = FSQ((4,) * 7).train()
    z = torch.randn(1, 7, 2, 2, requires_grad=True)
    codes, _ = fsq(z)
    codes.sum().backward()
    assert z.grad is not None and bool((z.grad > 0).all())


# --------------------------------------------------------------------------------------------- BitEstimator
def test_bit_estimator_keys_and_shapes() -> None:
    est = BitEstimator(64, qp_num=1)
    shapes = {k: tuple(v.shape) for k, v in est.state_dict().items()}
    assert shapes == {f"f{i}.{p}": (1, 64, 1, 1) for i in (1, 2, 3) for p in "hba"} | {
        "f4.h": (1, 64, 1, 1),
        "f4.b": (1, 64, 1, 1),
    }
    assert sum(v.numel() for v in est.state_dict().values()) == 704
    assert BitEstimator(16, qp_num=4).f2.a.shape == (4, 16, 1, 1)


def test_bit_estimator_pmf_table_matches_likelihood() -> None:
    est = BitEstimator(5, qp_num=3)
    with torch.no_grad():
        for p in est.parameters():
            p.normal_(0, 1)
    rate = torch.tensor([2, 0])
    pmfs = est.pmf_table(rate)
    assert pmfs.shape == (2, 5, 256)
    assert torch.allclose(pmfs.sum(-1), torch.ones(2, 5), atol=1e-5)
    q = torch.arange(-3.0, 4.0).reshape(1, 1, 7, 1).expand(2, 5, 7, 1)
    lik = est.likelihood(q, rate)
    assert torch.allclose(lik[..., 0], leaky(pmfs[..., 125:132]), atol=1e-6)
    x = torch.linspace(-20, 20, 50).reshape(1, 1, 50, 1).expand(2, 5, 50, 1)
    cdf = est.cdf(x, rate)
    assert bool((cdf.diff(dim=2) >= 0).all())
    assert not torch.allclose(est.pmf_table(torch.tensor([0])), est.pmf_table(torch.tensor([1])))


# --------------------------------------------------------------------------------------------- scale tables
def test_scale_table_values_and_truncating_index() -> None:
    table = video_scale_table()
    assert table.values.shape == (128,) and len(table.state_dict()) == 0
    assert math.isclose(table.values[0].item(), 0.11, rel_tol=1e-6)
    assert math.isclose(table.values[-1].item(), 16.0, rel_tol=1e-6)
    step = 127 / (math.log(16) - math.log(0.11))
    for s in (0.2, 0.5, 1.0, 3.3, 15.0):
        assert table.index(torch.tensor([s])).item() == math.floor((math.log(s) - math.log(0.11)) * step)
    mid = math.sqrt(table.values[40].item() * table.values[41].item())
    assert table.index(torch.tensor([mid, 1e-4, -1.0, 100.0])).tolist() == [40, 0, 0, 127]
    image = image_scale_table()
    assert image.values.shape == (256,) and math.isclose(image.values[-1].item(), 64.0, rel_tol=1e-6)
    assert image.index(torch.tensor([64.0, 1000.0])).tolist() == [255, 255]


def test_scale_table_quantize_is_straight_through() -> None:
    table = ScaleTable(0.11, 16.0, 128)
    s = torch.tensor([0.3, 2.0, 7.0], requires_grad=True)
    q = table.quantize(s)
    assert torch.allclose(q, table.values[table.index(s)])
    assert bool((q <= s + 1e-6).all())
    q.sum().backward()
    assert torch.equal(s.grad, torch.ones(3))
    with torch.no_grad():
        assert torch.equal(table.quantize(s), table.values[table.index(s)])


# ------------------------------------------------------------------------------------- likelihoods and quantisation
def test_gaussian_likelihood() -> None:
    std = torch.full((256,), 2.0)
    q = torch.arange(-128.0, 128.0)
    lik = gaussian_likelihood(q, std)
    assert abs(lik.sum().item() - 1.0) < 1e-6
    assert torch.allclose(lik[128 + 3], lik[128 - 3])
    expected = torch.special.ndtr(torch.tensor(3.5 / 2)) - torch.special.ndtr(torch.tensor(2.5 / 2))
    assert torch.allclose(lik[128 + 3], leaky(expected))
    # the end symbols absorb the tails; a symbol far outside the model keeps the coder's 2**-24
    wide = gaussian_likelihood(torch.tensor([-128.0, 127.0]), torch.tensor([200.0, 200.0]))
    assert torch.allclose(wide, leaky(torch.special.ndtr(torch.tensor([-127.5, -126.5]) / 200)))
    assert gaussian_likelihood(torch.tensor([100.0]), torch.tensor([0.11])).item() == pytest.approx(LEAK)
    bits = likelihood_bits(torch.full((2, 3, 4, 4), 0.5))
    assert torch.equal(bits, torch.full((2,), 48.0))


def test_likelihoods_match_the_real_coder() -> None:
    coder = pytest.importorskip("model.entropy_coder")
    q = torch.randint(-20, 21, (500,))
    q[:5] = torch.tensor([-128, 127, 90, -90, 0])
    stds = video_scale_table().values[torch.randint(0, 128, (500,))]
    ours = likelihood_bits(gaussian_likelihood(q.float(), stds).unsqueeze(0)).item()
    assert ours == pytest.approx(coder.gaussian_bits(q, stds), rel=2e-3)  # 24-bit rounding in the tails
    est = BitEstimator(3, qp_num=2)
    with torch.no_grad():
        for p in est.parameters():
            p.normal_(0, 1)
    pmfs = est.pmf_table(torch.tensor([1])).reshape(3, 256)
    z = torch.randint(-6, 7, (3, 40))
    z[0, 0] = 120
    table = torch.arange(3).reshape(3, 1).expand(3, 40)
    lik = est.likelihood(z.float().reshape(1, 3, 40, 1), torch.tensor([1]))
    ours = likelihood_bits(lik).item()
    assert ours == pytest.approx(coder.categorical_bits(z.flatten(), pmfs, table.flatten(), -128), rel=2e-3)


def test_quantize_modes() -> None:
    x = torch.tensor([-1.6, -0.4, 0.5, 2.49], requires_grad=True)
    assert torch.equal(quantize(x, "round"), torch.round(x))
    ste = quantize(x, "ste")
    assert torch.equal(ste, torch.round(x))
    ste.sum().backward()
    assert torch.equal(x.grad, torch.ones(4))
    noisy = quantize(x.detach(), "noise")
    assert bool(((noisy - x).abs() <= 0.5).all()) and not torch.equal(noisy, torch.round(x))
    with pytest.raises(ValueError, match="quantisation mode"):
        quantize(x, "floor")


# --------------------------------------------------------------------------------------------- rate helpers
def test_rate_tensor_validation() -> None:
    cpu = torch.device("cpu")
    assert rate_tensor(2, 3, 4, cpu).tolist() == [2, 2, 2]
    assert rate_tensor(torch.tensor([0, 3]), 2, 4, cpu).tolist() == [0, 3]
    with pytest.raises(ValueError, match="out of range"):
        rate_tensor(4, 1, 4, cpu)
    with pytest.raises(ValueError, match="out of range"):
        rate_tensor(1, 1, 1, cpu)
    with pytest.raises(ValueError, match="shape"):
        rate_tensor(torch.tensor([0, 1, 2]), 2, 4, cpu)


def test_initial_rate_gains_are_log_spaced_over_8x() -> None:
    gains = initial_rate_gains(4, 6)
    assert gains.shape == (4, 6, 1, 1)
    g = gains[:, 0, 0, 0]
    assert bool((g.diff() > 0).all())
    assert g[-1].item() / g[0].item() == pytest.approx(8.0)
    assert torch.allclose(g[1:] / g[:-1], torch.full((3,), 2.0))


# --------------------------------------------------------------------------------------------- prior masks
def test_four_part_masks() -> None:
    masks = torch.cat(four_part_masks(8, 4, 6))
    assert masks.shape == (4, 8, 4, 6)
    assert torch.equal(masks.sum(0), torch.ones(8, 4, 6))
    assert torch.equal(masks.sum((2, 3)), torch.full((4, 8), 6.0))
    # step 0: group 0 (channels 0-1) top-left, group 3 (channels 6-7) bottom-right; step 1 reverses the phases
    assert masks[0, 0, 0, 0] == 1 and masks[0, 7, 1, 1] == 1 and masks[0, 2, 0, 1] == 1 and masks[0, 4, 1, 0] == 1
    assert masks[1, 0, 1, 1] == 1 and masks[2, 0, 1, 0] == 1 and masks[3, 0, 0, 1] == 1
    with pytest.raises(ValueError, match="C % 4"):
        four_part_masks(6, 4, 4)


def test_checkerboard_masks() -> None:
    m0, m1 = checkerboard_masks(4, 3, 4)
    assert torch.equal(m0 + m1, torch.ones(1, 4, 3, 4))
    assert m0[0, 0, 0, 0] == 1 and m0[0, 0, 0, 1] == 0 and m0[0, 0, 1, 1] == 1
    assert m0[0, 2, 0, 0] == 0 and m0[0, 2, 0, 1] == 1
    assert m0.sum().item() == 24
    with pytest.raises(ValueError, match="even"):
        checkerboard_masks(3, 2, 2)
