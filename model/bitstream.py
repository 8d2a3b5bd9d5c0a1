"""The S2VC container: a small self-describing header, then one checksummed record per frame.

The release has no container (S2VC_ARCHITECTURE.md §4: bare rANS bytes, sizes known out of band); this one makes a
file decodable on its own, in order, and rejects truncated, corrupt, foreign or other-model files with one-line
`BitstreamError` / `ModelMismatchError` messages. Integers are big-endian; varint = unsigned LEB128, minimal,
at most 5 bytes; a "name" is one length byte n and n ASCII bytes.

Header (format 3; 78 bytes for preset "tiny" at rate "q0" coded on an AVX512 CPU with torch "2.13.0+cpu"):
    4   magic b"S2VC"
    1   format version (3)
    1+n preset name
    16  model weights hash (first 16 bytes of the SHA-256 the model computes)
    2+2 original width, height (1..16384)
    4+4 fps numerator, denominator (>= 1)
    4   frame count (>= 1)
    1   rate index
    1+m rate name
    how the stream was coded (model/environment.py), which decides whether a machine decodes it bit for bit:
    1+a device kind name ("cpu" / "cuda")
    1+b precision mode name ("fp32" / "bf16-iframe+tf32")
    1+c kernels name (the CPU instruction set torch used, e.g. "AVX512", or the GPU's "sm_90")
    1+d torch version name
    1   CPU thread count of the coding networks (0 on a GPU)
    4   CRC32 of all header bytes before it
Frame record, frame-count times (9 bytes + the varint for P-frames, 4 more for the I-frame):
    1   frame type: 0 I, 1 P, 2 reset P
    var payload length
    4   picture check: BLAKE2b-32 of the decoded picture (uint8 RGB, H x W x 3, row-major): the decoder stops at
        the first frame whose picture differs from the encoder's
    4   (I-frame only) the release's rate estimate of this frame (float32 bits; for reporting, see `release_bpp`)
    4   CRC32 of all the record's bytes before it and the payload
    ... payload (`pack` puts several sub-streams in one payload: varint count, varint lengths, the bytes)
Nothing may follow the last record. Older formats are refused with a message: format 1 (no coding environment, no
picture checks) and format 2 (the same container, but Gaussian y symbols range-coded in raster order; format 3 codes
them grouped by scale-table row, `SymbolEncoder.encode_gaussian_indexed`).
"""
from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .environment import CodingEnvironment
from .errors import BitstreamError, ModelMismatchError

MAGIC = b"S2VC"
FORMAT_VERSION = 3
HASH_BYTES = 16
CHECK_BYTES = 4
MAX_SIZE = 16384  # largest plausible width or height
MAX_PAYLOAD = 1 << 30
_U32 = (1 << 32) - 1
_FIXED = struct.Struct(">HHIII")  # width, height, fps_num, fps_den, frame_count
_CRC = struct.Struct(">I")
_RELEASE_BITS = struct.Struct(">f")
_VARINT_BYTES = 5


class FrameType(str, Enum):
    """Frame types; the values are the decoded-picture buffer's names (model/dpb.py)."""

    I = "I"  # noqa: E741
    P = "P"
    RESET = "reset"


_TYPE_CODES = {FrameType.I: 0, FrameType.P: 1, FrameType.RESET: 2}
_CODE_TYPES = {code: kind for kind, code in _TYPE_CODES.items()}


def _name_bytes(name: str, what: str) -> bytes:
    if not isinstance(name, str) or not name.isascii() or len(name) > 255:
        raise ValueError(f"{what} must be an ASCII string of at most 255 characters, got {name!r}")
    return name.encode("ascii")


@dataclass(frozen=True)
class StreamHeader:
    """What a decoder needs besides the model: which model, the original picture size, timing, the rate point, and
    how the stream was coded (which machines can decode it bit for bit)."""

    preset: str
    weights_hash: bytes
    width: int
    height: int
    fps_num: int
    fps_den: int
    frame_count: int
    rate_index: int
    rate_name: str
    environment: CodingEnvironment

    def __post_init__(self) -> None:
        _name_bytes(self.preset, "preset name")
        _name_bytes(self.rate_name, "rate name")
        _name_bytes(self.environment.kernels, "kernels name")
        _name_bytes(self.environment.torch, "torch version")
        if not isinstance(self.weights_hash, bytes) or len(self.weights_hash) != HASH_BYTES:
            raise ValueError(f"weights hash must be {HASH_BYTES} bytes, got {self.weights_hash!r}")
        if not (1 <= self.width <= MAX_SIZE and 1 <= self.height <= MAX_SIZE):
            raise ValueError(f"implausible frame size {self.width}x{self.height} (each side must be 1..{MAX_SIZE})")
        if not (1 <= self.fps_num <= _U32 and 1 <= self.fps_den <= _U32):
            raise ValueError(f"implausible frame rate {self.fps_num}/{self.fps_den}")
        if not 1 <= self.frame_count <= _U32:
            raise ValueError(f"implausible frame count {self.frame_count}")
        if not 0 <= self.rate_index <= 255:
            raise ValueError(f"rate index {self.rate_index} outside 0..255")

    @property
    def fps(self) -> float:
        return self.fps_num / self.fps_den

    def to_bytes(self) -> bytes:
        preset, rate = _name_bytes(self.preset, "preset name"), _name_bytes(self.rate_name, "rate name")
        env = self.environment
        made = [_name_bytes(text, "coding environment") for text in (env.device, env.precision, env.kernels, env.torch)]
        body = b"".join(
            [
                MAGIC,
                bytes([FORMAT_VERSION, len(preset)]),
                preset,
                self.weights_hash,
                _FIXED.pack(self.width, self.height, self.fps_num, self.fps_den, self.frame_count),
                bytes([self.rate_index, len(rate)]),
                rate,
                *(bytes([len(name)]) + name for name in made),
                bytes([self.environment.threads]),
            ]
        )
        return body + _CRC.pack(zlib.crc32(body))


def picture_check(picture: np.ndarray) -> bytes:
    """The record's check of a decoded picture: BLAKE2b-32 of its uint8 bytes in row-major order."""
    return hashlib.blake2b(np.ascontiguousarray(picture, dtype=np.uint8).data, digest_size=CHECK_BYTES).digest()


@dataclass(frozen=True)
class FrameRecord:
    """One coded frame: its type (a FrameType or its name "I" / "P" / "reset"), its payload bytes, the
    `picture_check` of its decoded picture, and (I-frame) the release's estimate of its bits."""

    frame_type: FrameType
    payload: bytes
    check: bytes = bytes(CHECK_BYTES)
    release_bits: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "frame_type", FrameType(self.frame_type))
        object.__setattr__(self, "payload", bytes(self.payload))
        if len(self.payload) > MAX_PAYLOAD:
            raise ValueError(f"frame payload of {len(self.payload)} bytes exceeds {MAX_PAYLOAD}")
        if not isinstance(self.check, bytes) or len(self.check) != CHECK_BYTES:
            raise ValueError(f"picture check must be {CHECK_BYTES} bytes, got {self.check!r}")
        as_written = _RELEASE_BITS.unpack(_RELEASE_BITS.pack(self.release_bits))[0]  # float32, as in the file
        object.__setattr__(self, "release_bits", as_written)

    def to_bytes(self) -> bytes:
        head = bytes([_TYPE_CODES[self.frame_type]]) + _varint(len(self.payload)) + self.check
        if self.frame_type is FrameType.I:
            head += _RELEASE_BITS.pack(self.release_bits)
        return head + _CRC.pack(zlib.crc32(self.payload, zlib.crc32(head))) + self.payload


# --------------------------------------------------------------------------------------------- byte helpers
def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


class _Reader:
    """Bounds-checked reads from a byte string; every shortfall is a BitstreamError naming what was cut."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    @property
    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, count: int, what: str) -> bytes:
        if count > self.left:
            raise BitstreamError(f"truncated bitstream: {what} needs {count} bytes, {self.left} left")
        self.pos += count
        return self.data[self.pos - count : self.pos]

    def varint(self, what: str) -> int:
        value = 0
        for index in range(_VARINT_BYTES):
            byte = self.take(1, what)[0]
            value |= (byte & 0x7F) << (7 * index)
            if not byte & 0x80:
                if byte == 0 and index:
                    raise BitstreamError(f"corrupt bitstream: {what} is not minimally encoded")
                return value
        raise BitstreamError(f"corrupt bitstream: {what} is longer than {_VARINT_BYTES} bytes")


def pack(parts: Sequence[bytes]) -> bytes:
    """Several byte strings in one: varint count, varint length of each, then the parts back to back."""
    return b"".join([_varint(len(parts)), *(_varint(len(part)) for part in parts), *map(bytes, parts)])


def unpack(data: bytes, count: int | None = None) -> list[bytes]:
    """Inverse of `pack`; BitstreamError if malformed or (when given) the part count differs from `count`."""
    reader = _Reader(bytes(data))
    found = reader.varint("sub-stream count")
    if count is not None and found != count:
        raise BitstreamError(f"corrupt payload: {found} sub-streams where {count} were expected")
    if found > reader.left:
        raise BitstreamError(f"corrupt payload: {found} sub-streams cannot fit in {reader.left} bytes")
    lengths = [reader.varint(f"sub-stream {index} length") for index in range(found)]
    parts = [reader.take(length, f"sub-stream {index}") for index, length in enumerate(lengths)]
    if reader.left:
        raise BitstreamError(f"corrupt payload: {reader.left} bytes after the last sub-stream")
    return parts


# --------------------------------------------------------------------------------------------- files
def write_stream(dest: str | Path | BinaryIO, header: StreamHeader, frames: Iterable[FrameRecord]) -> int:
    """Write the header and the records (frames may be a generator); returns the bytes written.

    A path is written through `<path>.part` and renamed at the end. ValueError if the number of frames differs
    from `header.frame_count`.
    """
    if isinstance(dest, (str, Path)):
        path = Path(dest)
        part = path.with_name(path.name + ".part")
        try:
            with open(part, "wb") as handle:
                written = write_stream(handle, header, frames)
            part.replace(path)
        finally:
            part.unlink(missing_ok=True)
        return written
    written, count = dest.write(header.to_bytes()), 0
    for record in frames:
        written += dest.write(record.to_bytes())
        count += 1
    if count != header.frame_count:
        raise ValueError(f"header promises {header.frame_count} frames but {count} were written")
    return written


def read_stream(
    source: str | Path | bytes | bytearray | memoryview | BinaryIO,
) -> tuple[StreamHeader, Iterator[FrameRecord]]:
    """Parse the header now and return it with an iterator that checks and yields the frames in order.

    The iterator raises BitstreamError at the first truncated or corrupt frame, and after the last frame if the
    frame count differs or bytes follow.
    """
    if isinstance(source, (str, Path)):
        data = Path(source).read_bytes()
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        data = source.read()
    reader = _Reader(data)
    header = _read_header(reader)
    return header, _read_frames(reader, header.frame_count)


def _read_header(reader: _Reader) -> StreamHeader:
    head = reader.data[: len(MAGIC)]
    if not reader.data:
        raise BitstreamError("not an S2VC bitstream (empty input)")
    if head != MAGIC[: len(head)]:
        raise BitstreamError(f"not an S2VC bitstream (starts with {head.hex()}, expected {MAGIC.hex()})")
    reader.take(len(MAGIC), "header magic")
    version = reader.take(1, "header version")[0]
    if version < FORMAT_VERSION:
        raise BitstreamError(f"this stream was made by an older version of S2VC Studio (bitstream format {version}; "
                             f"this build reads format {FORMAT_VERSION}): re-encode the clip with this version")
    if version > FORMAT_VERSION:
        raise BitstreamError(f"this stream was made by a newer version of S2VC Studio (bitstream format {version}; "
                             f"this build reads format {FORMAT_VERSION}): decode it with that version")
    preset = reader.take(reader.take(1, "header preset length")[0], "header preset name")
    weights_hash = reader.take(HASH_BYTES, "header weights hash")
    width, height, fps_num, fps_den, frame_count = _FIXED.unpack(reader.take(_FIXED.size, "header size and timing"))
    rate_index, rate_length = reader.take(2, "header rate index")
    rate = reader.take(rate_length, "header rate name")
    made = [reader.take(reader.take(1, f"header {what} length")[0], f"header {what}")
            for what in ("device kind", "precision mode", "kernels name", "torch version")]
    threads = reader.take(1, "header thread count")[0]
    body = reader.data[: reader.pos]
    if _CRC.unpack(reader.take(_CRC.size, "header checksum"))[0] != zlib.crc32(body):
        raise BitstreamError("corrupt bitstream header (CRC mismatch)")
    try:
        environment = CodingEnvironment(*(name.decode("ascii") for name in made), threads)
        return StreamHeader(
            preset.decode("ascii"), weights_hash, width, height, fps_num, fps_den, frame_count, rate_index,
            rate.decode("ascii"), environment,
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise BitstreamError(f"corrupt bitstream header: {exc}") from None


def _read_frames(reader: _Reader, frame_count: int) -> Iterator[FrameRecord]:
    for index in range(frame_count):
        where = f"frame {index} of {frame_count}"
        if not reader.left:
            raise BitstreamError(f"truncated bitstream: header promises {frame_count} frames, only {index} present")
        start = reader.pos
        code = reader.take(1, f"{where} type")[0]
        length = reader.varint(f"{where} payload length")
        if length > MAX_PAYLOAD:
            raise BitstreamError(f"corrupt bitstream: implausible payload length {length} at {where}")
        check = reader.take(CHECK_BYTES, f"{where} picture check")
        is_intra = code == _TYPE_CODES[FrameType.I]
        release = reader.take(_RELEASE_BITS.size, f"{where} release estimate") if is_intra else b""
        head = reader.data[start : reader.pos]
        crc = _CRC.unpack(reader.take(_CRC.size, f"{where} checksum"))[0]
        payload = reader.take(length, f"{where} payload")
        if crc != zlib.crc32(payload, zlib.crc32(head)):
            raise BitstreamError(f"corrupt bitstream: CRC mismatch at {where}")
        if code not in _CODE_TYPES:
            raise BitstreamError(f"corrupt bitstream: unknown frame type {code} at {where}")
        release_bits = _RELEASE_BITS.unpack(release)[0] if release else 0.0
        yield FrameRecord(_CODE_TYPES[code], payload, check, release_bits)
    if reader.left:
        raise BitstreamError(
            f"corrupt bitstream: {reader.left} bytes of trailing data after the last of {frame_count} frames"
        )


def check_model(header: StreamHeader, preset: str, weights_hash: bytes) -> None:
    """ModelMismatchError unless the stream was made by this preset with these weights (16-byte hash)."""
    if header.preset != preset or header.weights_hash != bytes(weights_hash):
        raise ModelMismatchError(
            f"bitstream was made by model '{header.preset}' (weights {header.weights_hash.hex()}), "
            f"not by the loaded model '{preset}' (weights {bytes(weights_hash).hex()})"
        )
