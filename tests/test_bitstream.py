"""The S2VC container: round trips, one-line errors, and a fuzz test over many corrupted variants of a real stream."""
from __future__ import annotations

import hashlib
import io
import struct
import zlib

import numpy as np
import pytest
import torch

from model.bitstream import (
    FrameRecord,
    FrameType,
    StreamHeader,
    check_model,
    pack,
    picture_check,
    read_stream,
    unpack,
    write_stream,
)
from model.entropy_coder import SymbolDecoder, SymbolEncoder
from model.environment import CodingEnvironment
from model.errors import BitstreamError, ModelMismatchError

WEIGHTS = hashlib.sha256(b"tiny weights").digest()[:16]
PMFS = torch.softmax(torch.linspace(-3, 3, 4 * 9).reshape(4, 9), dim=1)
MADE_ON = CodingEnvironment("cpu", "fp32", "AVX2", "2.13.0", 1)
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x02\x00\x00\x00\x90\x91h6"


def make_header(**changes) -> StreamHeader:
    fields = dict(preset="tiny", weights_hash=WEIGHTS, width=128, height=96, fps_num=30000, fps_den=1001,
                  frame_count=4, rate_index=2, rate_name="q2", environment=MADE_ON)
    return StreamHeader(**{**fields, **changes})


def symbol_counts(header: StreamHeader) -> tuple[int, int, int]:
    """Gaussian, categorical and 14-bit symbol counts per frame, derived from the header as a decoder would."""
    return header.width * header.height // 64, header.width * header.height // 256, (header.width // 32) * (header.height // 32)


def stds_for(count: int) -> torch.Tensor:
    return torch.linspace(0.2, 12.0, count)


def table_for(count: int) -> torch.Tensor:
    return torch.arange(count) % 4


def make_stream() -> tuple[bytes, list]:
    """A real 4-frame stream (I, reset, P, P) of entropy-coded payloads, and the symbols it holds."""
    header = make_header()
    n_gauss, n_cat, n_bits = symbol_counts(header)
    generator = torch.Generator().manual_seed(5)
    records, truth = [], []
    for kind in (FrameType.I, FrameType.RESET, FrameType.P, FrameType.P):
        y = (torch.randn(n_gauss, generator=generator) * stds_for(n_gauss)).round().long()
        if kind is FrameType.I:
            side = torch.randint(0, 1 << 14, (n_bits,), generator=generator)
            enc = SymbolEncoder()
            enc.encode_gaussian(y, stds_for(n_gauss))
            enc.encode_bits(side, 14)
            parts = [enc.finish()]
        else:
            side = torch.multinomial(PMFS[table_for(n_cat)], 1, generator=generator).squeeze(1) - 4
            z_enc, y_enc = SymbolEncoder(), SymbolEncoder()
            z_enc.encode_categorical(side, PMFS, table_for(n_cat), -4)
            y_enc.encode_gaussian(y, stds_for(n_gauss))
            parts = [z_enc.finish(), y_enc.finish()]
        check = picture_check(np.full((2, 3, 3), len(records), dtype=np.uint8))
        records.append(FrameRecord(kind, pack(parts), check, 1234.5 if kind is FrameType.I else 0.0))
        truth.append((kind, y, side, check, records[-1].release_bits))
    buffer = io.BytesIO()
    write_stream(buffer, header, records)
    return buffer.getvalue(), [header, *truth]


def decode_stream(data: bytes) -> list:
    """Everything a decoder would do: container, sub-streams, entropy decoding, exhaustion checks."""
    header, frames = read_stream(data)
    n_gauss, n_cat, n_bits = symbol_counts(header)
    out: list = [header]
    for record in frames:
        if record.frame_type is FrameType.I:
            (stream,) = unpack(record.payload, 1)
            dec = SymbolDecoder(stream)
            y, side = dec.decode_gaussian(stds_for(n_gauss)), dec.decode_bits(n_bits, 14)
            dec.check_exhausted()
        else:
            z_stream, y_stream = unpack(record.payload, 2)
            z_dec, y_dec = SymbolDecoder(z_stream), SymbolDecoder(y_stream)
            side = z_dec.decode_categorical(PMFS, table_for(n_cat), -4)
            y = y_dec.decode_gaussian(stds_for(n_gauss))
            z_dec.check_exhausted()
            y_dec.check_exhausted()
        out.append((record.frame_type, y, side, record.check, record.release_bits))
    return out


def same(a: list, b: list) -> bool:
    return a[0] == b[0] and len(a) == len(b) and all(
        x[0] == y[0] and torch.equal(x[1], y[1]) and torch.equal(x[2], y[2]) and x[3:] == y[3:]
        for x, y in zip(a[1:], b[1:])
    )


@pytest.fixture(scope="module")
def stream() -> tuple[bytes, list]:
    return make_stream()


def test_round_trip_bytes_and_file(stream, tmp_path):
    data, truth = stream
    assert same(decode_stream(data), truth)
    header, frames = read_stream(data)
    assert header == truth[0] and header.fps == pytest.approx(29.97, abs=1e-3)
    assert [r.frame_type for r in frames] == ["I", "reset", "P", "P"]
    path = tmp_path / "clip.s2vc"
    written = write_stream(path, header, list(read_stream(data)[1]))
    assert written == len(data) and path.read_bytes() == data
    assert read_stream(path)[0] == header and read_stream(io.BytesIO(data))[0] == header
    assert not (tmp_path / "clip.s2vc.part").exists()


def test_overheads_are_small():
    assert len(make_header().to_bytes()) == HEADER == 50 + 4 + 5 + 5 + 7 + 1  # + the coding environment
    assert len(FrameRecord("P", b"x" * 100).to_bytes()) == 100 + 1 + 1 + 4 + 4
    assert len(FrameRecord("I", b"x" * 100).to_bytes()) == 100 + 1 + 1 + 4 + 4 + 4
    assert len(pack([b"a" * 100, b"b" * 200])) == 300 + 1 + 1 + 2


def test_environment_checks_and_release_estimate_round_trip(stream):
    header, frames = read_stream(stream[0])
    assert header.environment == MADE_ON
    records = list(frames)
    assert [r.release_bits for r in records] == [1234.5, 0.0, 0.0, 0.0]
    assert [r.check for r in records] == [picture_check(np.full((2, 3, 3), t, dtype=np.uint8)) for t in range(4)]
    assert len({r.check for r in records}) == 4 and all(len(r.check) == 4 for r in records)


def test_pack_unpack():
    for parts in ([], [b""], [b"abc", b"", b"\x00" * 300]):
        assert unpack(pack(parts)) == parts
    with pytest.raises(BitstreamError, match="2 sub-streams where 3"):
        unpack(pack([b"a", b"b"]), 3)
    with pytest.raises(BitstreamError, match="after the last sub-stream"):
        unpack(pack([b"a"]) + b"x")
    with pytest.raises(BitstreamError, match="truncated"):
        unpack(pack([b"abc"])[:-1])
    with pytest.raises(BitstreamError, match="minimally"):
        unpack(b"\x81\x00")


HEADER = len(make_header().to_bytes())
BODY = HEADER - 4  # the header without its CRC
FRAME0_CHECKSUM = HEADER + 1 + 2 + 4 + 4  # type, 2-byte varint length, picture check, release estimate


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack(">I", zlib.crc32(body))


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: b"", "not an S2VC bitstream \\(empty input\\)"),
        (lambda d: PNG, "not an S2VC bitstream \\(starts with 89504e47"),
        (lambda d: d[:2], "truncated bitstream: header magic"),
        (lambda d: d[:4] + b"\x01" + d[5:], "made by an older version of S2VC Studio \\(bitstream format 1; this "
                                            "build reads format 3\\): re-encode the clip with this version"),
        (lambda d: d[:4] + b"\x02" + d[5:], "made by an older version of S2VC Studio \\(bitstream format 2; this "
                                            "build reads format 3\\): re-encode the clip with this version"),
        (lambda d: d[:4] + b"\x04" + d[5:], "made by a newer version of S2VC Studio \\(bitstream format 4"),
        (lambda d: d[:30], "truncated bitstream: header"),
        (lambda d: d[:27] + b"\xff" + d[28:], "corrupt bitstream header \\(CRC mismatch\\)"),
        (lambda d: _with_crc(d[:26] + b"\x00\x00" + d[28:BODY]) + d[HEADER:], "implausible frame size 0x96"),
        (lambda d: _with_crc(d[:26] + b"\x40\x01" + d[28:BODY]) + d[HEADER:], "implausible frame size 16385x96"),
        (lambda d: _with_crc(d[:BODY].replace(b"\x04fp32", b"\x04fp16")) + d[HEADER:], "unknown precision mode"),
        (lambda d: _with_crc(d[:BODY].replace(b"\x03cpu", b"\x03gpu")) + d[HEADER:], "unknown device kind 'gpu'"),
        (lambda d: d[:-3], "truncated bitstream: frame 3 of 4 payload needs"),
        (lambda d: d[:FRAME0_CHECKSUM], "truncated bitstream: frame 0 of 4 checksum"),
        (lambda d: d[:HEADER + 5], "truncated bitstream: frame 0 of 4 picture check"),
        (lambda d: d[:HEADER + 6] + bytes([d[HEADER + 6] ^ 1]) + d[HEADER + 7:], "CRC mismatch at frame 0 of 4"),
        (lambda d: d[:FRAME0_CHECKSUM + 9] + bytes([d[FRAME0_CHECKSUM + 9] ^ 1]) + d[FRAME0_CHECKSUM + 10:],
         "CRC mismatch at frame 0 of 4"),
        (lambda d: d + b"\x00", "1 bytes of trailing data after the last of 4 frames"),
    ],
)
def test_error_messages(stream, mutate, message):
    with pytest.raises(BitstreamError, match=message):
        decode_stream(mutate(stream[0]))


def test_frame_count_mismatch(stream):
    data, _ = stream
    header = make_header(frame_count=5).to_bytes()
    with pytest.raises(BitstreamError, match="promises 5 frames, only 4 present"):
        decode_stream(header + data[HEADER:])
    with pytest.raises(ValueError, match="promises 5 frames but 4"):
        write_stream(io.BytesIO(), make_header(frame_count=5), read_stream(data)[1])


def test_failed_write_leaves_no_file(stream, tmp_path):
    with pytest.raises(ValueError):
        write_stream(tmp_path / "x.s2vc", make_header(frame_count=5), read_stream(stream[0])[1])
    assert list(tmp_path.iterdir()) == []


def test_header_validation():
    for changes in (dict(width=0), dict(height=16385), dict(fps_den=0), dict(frame_count=0),
                    dict(weights_hash=b"short"), dict(preset="tïny"), dict(rate_index=256)):
        with pytest.raises(ValueError):
            make_header(**changes)
    with pytest.raises(ValueError):
        FrameRecord("B", b"")


def test_check_model():
    header = make_header()
    check_model(header, "tiny", WEIGHTS)
    with pytest.raises(ModelMismatchError, match="made by model 'tiny'.*loaded model 'official'"):
        check_model(header, "official", WEIGHTS)
    other = hashlib.sha256(b"other").digest()[:16]
    with pytest.raises(ModelMismatchError, match=other.hex()):
        check_model(header, "tiny", other)


def test_fuzz_corrupted_variants(stream):
    """Thousands of corrupted variants: each decodes to exactly the original or raises BitstreamError."""
    data, truth = stream
    rng = np.random.default_rng(0)
    variants = [data[:length] for length in range(len(data))]
    for _ in range(1500):
        flipped = bytearray(data)
        for position in rng.integers(0, len(data), int(rng.integers(1, 4))):
            flipped[position] ^= int(rng.integers(1, 256))
        variants.append(bytes(flipped))
    for _ in range(300):
        at = int(rng.integers(0, len(data) + 1))
        variants.append(data[:at] + rng.bytes(int(rng.integers(1, 5))) + data[at:])
        variants.append(data[:at] + data[at + int(rng.integers(1, 5)):])
    variants += [b"", PNG, PNG * 40, rng.bytes(64), b"S2VC", data[:4] + rng.bytes(200), data + data, data * 3]
    outcomes = {"same": 0, "error": 0}
    for variant in variants:
        try:
            decoded = decode_stream(variant)
        except BitstreamError:
            outcomes["error"] += 1
        else:
            assert same(decoded, truth), "a corrupted stream decoded to something else without an error"
            outcomes["same"] += 1
    assert outcomes["error"] == len(variants) - outcomes["same"] and outcomes["error"] > 2000
