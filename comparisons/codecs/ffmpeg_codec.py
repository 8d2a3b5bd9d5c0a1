"""Shared machinery of the external encoders run through FFmpeg: raw YUV in, rate search, PyAV decode out.

Colour: RGB -> Y'CbCr 4:2:0 with ``model.video_io`` (BT.601 limited range, box-filtered chroma), written as raw
planar YUV (10-bit samples = 8-bit << 2 when the encoder only takes 10-bit input); the decoded planes come back
through the same matrix. Odd sizes are edge-padded to even and cropped after decoding. Metrics therefore see RGB
at the original size. The bitrate is 8 x the size of the raw elementary-stream file over the clip's duration.
"""
from __future__ import annotations

import functools
import math
import re
import subprocess
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from comparisons import ffmpeg
from comparisons.codecs.base import Codec, CodecError, EncodeResult, check_frames
from comparisons.codecs.ratesearch import search_rate
from model.video_io import rgb_to_yuv420, yuv420_to_rgb

COLOUR = "BT.601 limited range, 4:2:0 (2x2 box down, bilinear up), from/to 8-bit RGB"


class FFmpegCodec(Codec):
    """An encoder inside the imageio-ffmpeg FFmpeg; subclasses give its arguments and rate knob."""

    encoder: ClassVar[str]  # FFmpeg encoder name, e.g. "libx265"
    demuxer: ClassVar[str]  # elementary-stream format, e.g. "hevc"
    suffix: ClassVar[str]
    default_preset: ClassVar[str]
    input_bits: ClassVar[int] = 8
    passes: ClassVar[int] = 1
    knob: ClassVar[str] = "crf"  # "crf": x is the CRF; "bitrate": x is log(requested kbps)
    knob_range: ClassVar[tuple[float, float]] = (0.0, 51.0)
    knob_start: ClassVar[float] = 32.0
    knob_step: ClassVar[float] = 0.01
    slope: ClassVar[float] = -0.11  # guess of d(log kbps)/d(knob)
    qp_adaptation: ClassVar[str]
    gop: ClassVar[str]

    def __init__(self, preset: str | None = None, intra_period: int | None = None, tolerance: float = 0.05,
                 max_trials: int = 8) -> None:
        if intra_period is not None and intra_period < 1:
            raise CodecError(f"{self.name}: intra period must be >= 1 frame or None (one intra frame), got {intra_period}")
        self.preset = str(preset or self.default_preset)
        self.intra_period = intra_period
        self.tolerance = tolerance
        self.max_trials = max_trials

    @classmethod
    def availability(cls) -> str | None:
        try:
            exe = ffmpeg.ffmpeg_exe()
        except Exception as exc:  # the wheel is missing or has no binary for this platform
            return f"the imageio-ffmpeg FFmpeg is not available ({type(exc).__name__}: {exc})"
        if not ffmpeg.has_encoder(cls.encoder):
            return f"the FFmpeg at {exe} has no {cls.encoder} encoder"
        return None

    def version(self) -> str:
        return _version(type(self))

    def settings(self) -> dict[str, Any]:
        return {
            "preset": self.preset,
            "intra_period": self.intra_period if self.intra_period else "one intra frame for the clip",
            "gop": self.gop,
            "chroma": "4:2:0",
            "input_bit_depth": self.input_bits,
            "colour": COLOUR,
            "qp_adaptation": self.qp_adaptation,
            "rate_control": self.rate_control(),
            "tolerance": self.tolerance,
        }

    def rate_control(self) -> str:
        if self.knob == "crf":
            return (f"CRF search (secant/regula falsi, step {self.knob_step:g}) until the real file is within "
                    f"{self.tolerance:.0%} of the target")
        return (f"{self.passes}-pass target-bitrate mode, the requested bitrate corrected from the real file size "
                f"until within {self.tolerance:.0%} of the target")

    def codec_args(self, x: float, frames: int, passno: int | None, stats: Path) -> list[str]:
        """Encoder arguments for knob value ``x`` (and pass ``passno`` of a multi-pass encode)."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------------- encode
    def encode(self, frames: np.ndarray, fps: float, target_kbps: float, workdir: str | Path) -> EncodeResult:
        frames = check_frames(frames)
        if not target_kbps or target_kbps <= 0:
            raise CodecError(f"{self.name}: target bitrate must be > 0 kbps, got {target_kbps}")
        reason = self.availability()
        if reason:
            raise CodecError(f"{self.name}: {reason}")
        work = Path(workdir)
        work.mkdir(parents=True, exist_ok=True)
        t, h, w = frames.shape[:3]
        padded = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge") if (h % 2 or w % 2) else frames
        stem = f"{self.name}_{target_kbps:g}kbps"
        raw = work / f"{stem}_input.yuv"
        y, cb, cr = rgb_to_yuv420(padded)
        if self.input_bits == 10:
            y, cb, cr = (p.astype("<u2") << 2 for p in (y, cb, cr))
        raw.write_bytes(np.concatenate([y.reshape(t, -1), cb.reshape(t, -1), cr.reshape(t, -1)], 1).tobytes())
        runs: dict[float, tuple[Path, str, float]] = {}

        def trial(x: float) -> float:
            out = work / f"{stem}_trial{len(runs)}{self.suffix}"
            cmds = self._commands(x, raw, out, padded.shape[2], padded.shape[1], fps, t, work / f"{stem}.stats")
            start = time.perf_counter()
            for cmd in cmds:
                ffmpeg.run(cmd, f"{self.name} encode")
            runs[x] = (out, "; ".join(ffmpeg.command_line(c) for c in cmds), time.perf_counter() - start)
            return out.stat().st_size * 8 * fps / t / 1000.0

        lo, hi = self.knob_range
        if self.knob == "crf":
            best, trials = search_rate(trial, target_kbps, self.knob_start, self.slope, lo, hi, self.tolerance,
                                       self.max_trials, self.knob_step)
        else:
            goal = math.log(target_kbps)
            best, trials = search_rate(trial, target_kbps, goal, 1.0, goal + lo, goal + hi, self.tolerance,
                                       self.max_trials, self.knob_step)
        path, command, seconds = runs[best.x]
        final = work / f"{stem}{self.suffix}"
        path.replace(final)
        for other, *_ in runs.values():
            other.unlink(missing_ok=True)
        raw.unlink(missing_ok=True)
        for stats in work.glob(f"{stem}.stats*"):
            stats.unlink()
        decoded, decode_seconds = decode_file(final, self.demuxer, t, h, w)
        bits = final.stat().st_size * 8
        kbps = bits * fps / t / 1000.0
        knob = (lambda x: math.exp(x)) if self.knob == "bitrate" else (lambda x: x)
        return EncodeResult(
            codec=self.name, label=self.label, version=self.version(), settings=self.settings(),
            command=command.replace(str(path), str(final)),
            bitstream_path=str(final), bits=bits, frames=t, fps=float(fps), width=w, height=h,
            target_kbps=float(target_kbps), within_tolerance=abs(kbps / target_kbps - 1) <= self.tolerance,
            trials=[{self.knob_name(): round(knob(tr.x), 4), "kbps": round(tr.kbps, 3)} for tr in trials],
            encode_seconds=seconds, decode_seconds=decode_seconds, decoded=decoded)

    def knob_name(self) -> str:
        return "crf" if self.knob == "crf" else "requested_kbps"

    def _commands(self, x: float, raw: Path, out: Path, w: int, h: int, fps: float, t: int,
                  stats: Path) -> list[list[str]]:
        rate = Fraction(fps).limit_denominator(1001)
        pix = "yuv420p" if self.input_bits == 8 else "yuv420p10le"
        head = [ffmpeg.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", pix,
                "-s", f"{w}x{h}", "-r", f"{rate.numerator}/{rate.denominator}", "-i", str(raw), "-frames:v", str(t),
                "-c:v", self.encoder]
        if self.passes == 1:
            return [head + self.codec_args(x, t, None, stats) + ["-f", self.demuxer, str(out)]]
        return [head + self.codec_args(x, t, n, stats) + (["-f", "null", "-"] if n < self.passes else
                                                          ["-f", self.demuxer, str(out)])
                for n in range(1, self.passes + 1)]


def decode_file(path: Path, demuxer: str, frames: int, height: int, width: int) -> tuple[np.ndarray, float]:
    """Decode an elementary stream with PyAV (FFmpeg's decoders) to uint8 RGB cropped to ``height x width``."""
    import av

    start = time.perf_counter()
    planes: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    bits = 8
    try:
        with av.open(str(path), format=demuxer) as container:
            for frame in container.decode(video=0):
                name = frame.format.name
                if name not in ("yuv420p", "yuv420p10le"):
                    raise CodecError(f"{path.name}: decoder gave {name}, expected yuv420p or yuv420p10le")
                bits = 10 if name == "yuv420p10le" else 8
                dtype = np.dtype(np.uint8 if bits == 8 else "<u2")
                planes.append(tuple(_plane(frame.planes[i], dtype) for i in range(3)))  # type: ignore[arg-type]
    except av.error.FFmpegError as exc:
        raise CodecError(f"{path.name}: decoding failed ({exc})") from None
    if len(planes) != frames:
        raise CodecError(f"{path.name}: decoded {len(planes)} frames, expected {frames}")
    y, cb, cr = (np.stack([p[i] for p in planes]) for i in range(3))
    rgb = yuv420_to_rgb(y, cb, cr, bits=bits)[:, :height, :width]
    return np.ascontiguousarray(rgb), time.perf_counter() - start


def _plane(plane, dtype: np.dtype) -> np.ndarray:
    arr = np.frombuffer(plane, dtype).reshape(plane.height, plane.line_size // dtype.itemsize)
    return arr[:, : plane.width].copy()


@functools.lru_cache(maxsize=None)
def _version(cls: type[FFmpegCodec]) -> str:
    """Ask the encoder itself: encode one grey 64x64 frame with verbose logging and read its version line."""
    pix = "yuv420p" if cls.input_bits == 8 else "yuv420p10le"
    extra = ["-x265-params", "log-level=info"] if cls.encoder == "libx265" else []
    cmd = [ffmpeg.ffmpeg_exe(), "-hide_banner", "-loglevel", "verbose", "-f", "lavfi", "-i", "color=c=gray:s=64x64:r=25",
           "-frames:v", "1", "-pix_fmt", pix, "-c:v", cls.encoder, *extra, "-f", cls.demuxer, "-"]
    done = subprocess.run(cmd, capture_output=True)
    text = done.stderr.decode(errors="replace") + done.stdout[:4096].decode(errors="replace")
    patterns = [r"HEVC encoder version (\S+)", r"libvvenc version: (\S+)", r"SVT-AV1 Encoder Lib (v\S+)",
                r"x264 - core (\d+(?: r\d+ [0-9a-f]+)?)"]
    found = next((m.group(1) for p in patterns if (m := re.search(p, text))), "unknown version")
    return f"{cls.encoder} {found} ({ffmpeg.ffmpeg_version()})"
