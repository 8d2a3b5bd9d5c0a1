"""Read and write video clips as uint8 RGB frames ``[T, H, W, 3]`` plus a frame rate.

Readers: containers PyAV opens (mp4, mkv, mov, webm, ...), YUV4MPEG2 (``.y4m``, 4:2:0, 8 to 16 bit), raw planar
``yuv420p`` (``.yuv`` or ``.i420``; size and fps given, or read from a standard test-set name such as
``BasketballPass_416x240_50.yuv``, see `raw_name_hints`) and folders of PNG frames (fps must be given).
Writers: ``.mp4`` (browser-playable H.264 yuv420p), ``.y4m`` (8-bit 4:2:0) and PNG folders.

Colour conversion (one place, vectorised): Y'CbCr <-> R'G'B' with the BT.601 matrix (Kr=0.299, Kb=0.114) and
limited ("TV", 16-235 / 16-240 at 8 bit) range unless stated otherwise; ``matrix="bt709"`` and ``full_range`` are
available. 4:2:0 chroma is made by 2x2 box averaging (centred chroma siting, as y4m ``C420jpeg``) and restored by
separable bilinear interpolation (weights 3/4, 1/4) with edge replication; odd sizes are edge-padded then cropped.
Containers are converted with the same code when they decode to yuv420p/yuvj420p/yuv420p10le (BT.709 when the
stream is tagged BT.709, else BT.601; full range when tagged so), any other pixel format through FFmpeg's swscale.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

MATRICES = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}  # (Kr, Kb)
RAW_SUFFIXES = (".yuv", ".i420")  # raw planar 8-bit yuv420p
# "_WxH" then optionally "_F" or "_Ffps" (JCT-VC/JVET "BasketballPass_416x240_50", UVG "Beauty_1920x1080_120fps_...")
_NAME_HINTS = re.compile(r"(?:^|_)(\d+)x(\d+)(?:_(\d+(?:\.\d+)?)(?:fps)?(?=_|$))?", re.IGNORECASE)


class VideoReadError(ValueError):
    """A clip cannot be read; the message is one line naming the file and the problem."""


class VideoWriteError(ValueError):
    """A clip cannot be written; the message is one line naming the file and the problem."""


@dataclass(frozen=True)
class VideoInfo:
    """What a clip is, found without decoding it all. ``frames`` is None when the container does not say."""

    path: str
    kind: str  # "container", "y4m", "yuv", "png"
    width: int
    height: int
    fps: float
    frames: int | None
    codec: str


# ----------------------------------------------------------------------------------------------- colour conversion
def _coefficients(matrix: str) -> tuple[float, float]:
    if matrix not in MATRICES:
        raise ValueError(f"unknown colour matrix {matrix!r}; use one of {sorted(MATRICES)}")
    return MATRICES[matrix]


def rgb_to_yuv420(frames: np.ndarray, bits: int = 8, matrix: str = "bt601",
                  full_range: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RGB uint8 ``[T,H,W,3]`` -> planes Y ``[T,H,W]``, Cb and Cr ``[T,ceil(H/2),ceil(W/2)]`` (uint8 or uint16)."""
    kr, kb = _coefficients(matrix)
    rgb = np.asarray(frames, dtype=np.float32) / 255.0
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = kr * r + (1.0 - kr - kb) * g + kb * b
    cb = (b - y) / (2.0 * (1.0 - kb))
    cr = (r - y) / (2.0 * (1.0 - kr))
    cb, cr = _box_down(cb), _box_down(cr)
    scale = float(1 << (bits - 8))
    if full_range:
        peak = float((1 << bits) - 1)
        yq, cbq, crq = y * peak, cb * peak + (1 << (bits - 1)), cr * peak + (1 << (bits - 1))
    else:
        yq, cbq, crq = (16 + 219 * y) * scale, (128 + 224 * cb) * scale, (128 + 224 * cr) * scale
    dtype = np.uint8 if bits == 8 else np.uint16
    top = (1 << bits) - 1
    return tuple(np.clip(np.rint(p), 0, top).astype(dtype) for p in (yq, cbq, crq))  # type: ignore[return-value]


def yuv420_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray, bits: int = 8, matrix: str = "bt601",
                  full_range: bool = False) -> np.ndarray:
    """Planes Y ``[T,H,W]``, Cb/Cr ``[T,ceil(H/2),ceil(W/2)]`` -> RGB uint8 ``[T,H,W,3]``."""
    kr, kb = _coefficients(matrix)
    h, w = y.shape[-2:]
    yf = y.astype(np.float32)
    cbf = _bilinear_up(cb.astype(np.float32), h, w)
    crf = _bilinear_up(cr.astype(np.float32), h, w)
    if full_range:
        peak = float((1 << bits) - 1)
        mid = float(1 << (bits - 1))
        yn, cbn, crn = yf / peak, (cbf - mid) / peak, (crf - mid) / peak
    else:
        scale = float(1 << (bits - 8))
        yn, cbn, crn = (yf / scale - 16) / 219, (cbf / scale - 128) / 224, (crf / scale - 128) / 224
    r = yn + 2.0 * (1.0 - kr) * crn
    b = yn + 2.0 * (1.0 - kb) * cbn
    g = (yn - kr * r - kb * b) / (1.0 - kr - kb)
    rgb = np.stack([r, g, b], axis=-1) * 255.0
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _box_down(plane: np.ndarray) -> np.ndarray:
    """2x2 mean over the last two axes, edge-padding odd sizes."""
    h, w = plane.shape[-2:]
    pad = [(0, 0)] * (plane.ndim - 2) + [(0, h % 2), (0, w % 2)]
    p = np.pad(plane, pad, mode="edge") if (h % 2 or w % 2) else plane
    return 0.25 * (p[..., 0::2, 0::2] + p[..., 1::2, 0::2] + p[..., 0::2, 1::2] + p[..., 1::2, 1::2])


def _bilinear_up(plane: np.ndarray, h: int, w: int) -> np.ndarray:
    """Double the last two axes with centred-siting bilinear weights (3/4, 1/4), then crop to ``h x w``."""
    def up(x: np.ndarray, axis: int) -> np.ndarray:
        prev = np.concatenate([np.take(x, [0], axis), np.take(x, range(x.shape[axis] - 1), axis)], axis)
        nxt = np.concatenate([np.take(x, range(1, x.shape[axis]), axis), np.take(x, [-1], axis)], axis)
        even, odd = 0.75 * x + 0.25 * prev, 0.75 * x + 0.25 * nxt
        out = np.stack([even, odd], axis=axis + 1)
        shape = list(x.shape)
        shape[axis] *= 2
        return out.reshape(shape)

    return up(up(plane, plane.ndim - 2), plane.ndim - 1)[..., :h, :w]


# ----------------------------------------------------------------------------------------------------- reading
def probe_video(path: str | Path, size: tuple[int, int] | None = None, fps: float | None = None) -> VideoInfo:
    """Size, frame rate and frame count of a clip without decoding it (``size=(W, H)`` for raw ``.yuv``)."""
    p = _existing(path)
    if p.is_dir():
        files = _png_files(p)
        w, h = _png_size(files[0])
        return VideoInfo(str(p), "png", w, h, _need_fps(p, fps), len(files), "png")
    suffix = p.suffix.lower()
    if suffix == ".y4m":
        hdr = _Y4M.open(p)
        return VideoInfo(str(p), "y4m", hdr.width, hdr.height, fps or hdr.fps, hdr.count, f"y4m {hdr.colour}")
    if suffix in RAW_SUFFIXES:
        size, fps = _raw_defaults(p, size, fps)
        w, h, n = _raw_layout(p, size)
        return VideoInfo(str(p), "yuv", w, h, _need_fps(p, fps), n, "yuv420p")
    return _probe_container(p, _image_fps(p, fps))


def read_video(path: str | Path, start: int = 0, frames: int | None = None, size: tuple[int, int] | None = None,
               fps: float | None = None) -> tuple[np.ndarray, float]:
    """Frames ``start .. start+frames-1`` of a clip as uint8 RGB ``[T,H,W,3]`` and its frame rate.

    ``size=(W, H)`` and ``fps`` are required for raw ``.yuv`` / ``.i420`` whose name does not state them;
    ``fps`` for PNG folders (it overrides a container's).
    Raises VideoReadError with a one-line reason for anything unreadable or empty.
    """
    if start < 0 or (frames is not None and frames < 1):
        raise VideoReadError(f"{path}: bad trim start={start} frames={frames} (need start >= 0, frames >= 1)")
    p = _existing(path)
    if p.is_dir():
        out, rate = _read_png(p, start, frames), _need_fps(p, fps)
    elif p.suffix.lower() == ".y4m":
        hdr = _Y4M.open(p)
        out, rate = hdr.read(start, frames), fps or hdr.fps
    elif p.suffix.lower() in RAW_SUFFIXES:
        size, fps = _raw_defaults(p, size, fps)
        out, rate = _read_raw(p, size, start, frames), _need_fps(p, fps)
    else:
        out, rate = _read_container(p, start, frames, _image_fps(p, fps))
    if len(out) == 0:
        raise VideoReadError(f"{p}: no frames at start={start} (the clip is shorter)")
    return out, float(rate)


def raw_name_hints(path: str | Path) -> tuple[tuple[int, int] | None, float | None]:
    """``((W, H), fps)`` stated by a raw clip's file name as the standard test sets write it, None where it does not:
    ``BasketballPass_416x240_50.yuv`` -> ((416, 240), 50.0); ``Beauty_1920x1080_120fps_420_8bit_YUV.yuv`` ->
    ((1920, 1080), 120.0); ``cars_320x240.i420`` -> ((320, 240), None)."""
    match = _NAME_HINTS.search(Path(path).stem)
    if not match:
        return None, None
    return (int(match[1]), int(match[2])), (float(match[3]) if match[3] else None)


def _raw_defaults(p: Path, size: tuple[int, int] | None,
                  fps: float | None) -> tuple[tuple[int, int] | None, float | None]:
    """The given size and fps, each falling back to what the file name states."""
    named_size, named_fps = raw_name_hints(p)
    return size or named_size, fps or named_fps


def _existing(path: str | Path) -> Path:
    p = Path(path)
    if not p.exists():
        raise VideoReadError(f"{p}: no such file or folder")
    if p.is_file() and p.stat().st_size == 0:
        raise VideoReadError(f"{p}: file is empty (0 bytes)")
    return p


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def _image_fps(p: Path, fps: float | None) -> float | None:
    """A single image is a one-frame clip whose frame rate must be given (FFmpeg would silently say 25)."""
    return _need_fps(p, fps) if p.suffix.lower() in IMAGE_SUFFIXES else fps


def _need_fps(p: Path, fps: float | None) -> float:
    if not fps or fps <= 0:
        raise VideoReadError(f"{p}: the frame rate is not stored in this format; pass fps")
    return float(fps)


def _png_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("*.png"), key=lambda f: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", f.name)])
    if not files:
        raise VideoReadError(f"{folder}: folder holds no .png frames")
    return files


def _png_size(file: Path) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(file) as im:
            return im.size
    except Exception as exc:
        raise VideoReadError(f"{file}: not a readable PNG ({type(exc).__name__})") from None


def _read_png(folder: Path, start: int, frames: int | None) -> np.ndarray:
    from PIL import Image

    files = _png_files(folder)[start:None if frames is None else start + frames]
    out = []
    for f in files:
        try:
            with Image.open(f) as im:
                out.append(np.asarray(im.convert("RGB")))
        except Exception as exc:
            raise VideoReadError(f"{f}: not a readable PNG ({type(exc).__name__})") from None
        if out[-1].shape != out[0].shape:
            raise VideoReadError(f"{f}: frame size {out[-1].shape[1]}x{out[-1].shape[0]} differs from the first "
                                 f"frame's {out[0].shape[1]}x{out[0].shape[0]}")
    return np.stack(out) if out else np.zeros((0, 0, 0, 3), np.uint8)


def _raw_layout(p: Path, size: tuple[int, int] | None) -> tuple[int, int, int]:
    if not size or size[0] < 1 or size[1] < 1:
        raise VideoReadError(f"{p}: raw yuv420p needs its size (width, height), given or in the name as in "
                             "Clip_416x240_50.yuv")
    w, h = int(size[0]), int(size[1])
    frame_bytes = w * h + 2 * ((w + 1) // 2) * ((h + 1) // 2)
    n, rest = divmod(p.stat().st_size, frame_bytes)
    if rest:
        raise VideoReadError(f"{p}: {p.stat().st_size} bytes is not a whole number of {w}x{h} yuv420p frames "
                             f"({frame_bytes} B each): wrong size or truncated file")
    return w, h, n


def _read_raw(p: Path, size: tuple[int, int] | None, start: int, frames: int | None) -> np.ndarray:
    w, h, n = _raw_layout(p, size)
    count = max(0, (n - start) if frames is None else min(frames, n - start))
    cw, ch = (w + 1) // 2, (h + 1) // 2
    frame_bytes = w * h + 2 * cw * ch
    data = np.fromfile(p, np.uint8, count=count * frame_bytes, offset=start * frame_bytes).reshape(count, frame_bytes)
    y = data[:, : w * h].reshape(count, h, w)
    cb = data[:, w * h: w * h + cw * ch].reshape(count, ch, cw)
    cr = data[:, w * h + cw * ch:].reshape(count, ch, cw)
    return yuv420_to_rgb(y, cb, cr)


@dataclass
class _Y4M:
    """A YUV4MPEG2 file: the stream header parsed, frames read by offset."""

    path: Path
    width: int
    height: int
    fps: float
    bits: int
    full_range: bool
    colour: str
    data_start: int
    frame_header: int
    count: int

    @classmethod
    def open(cls, p: Path) -> "_Y4M":
        with open(p, "rb") as f:
            line = f.readline(1024)
            if not line.startswith(b"YUV4MPEG2 ") or not line.endswith(b"\n"):
                raise VideoReadError(f"{p}: not a YUV4MPEG2 file (bad stream header)")
            tags = dict((t[:1], t[1:]) for t in line[10:].decode("ascii", "replace").split())
            first = f.readline(1024)
        try:
            w, h = int(tags["W"]), int(tags["H"])
            num, den = (int(v) for v in tags.get("F", "0:1").split(":"))
        except (KeyError, ValueError):
            raise VideoReadError(f"{p}: y4m header lacks a valid size or frame rate") from None
        colour = tags.get("C", "420jpeg")
        m = re.fullmatch(r"420(jpeg|paldv|mpeg2)?(?:p(\d+))?", colour)
        if not m:
            raise VideoReadError(f"{p}: unsupported y4m colour space C{colour} (only 4:2:0 is read)")
        bits = int(m.group(2) or 8)
        full = "XCOLORRANGE=FULL" in line.decode("ascii", "replace").upper()
        frame_header = len(first)
        if not first.startswith(b"FRAME"):
            raise VideoReadError(f"{p}: y4m holds no frames (FRAME marker missing)")
        bps = 1 if bits == 8 else 2
        payload = (w * h + 2 * ((w + 1) // 2) * ((h + 1) // 2)) * bps
        n, rest = divmod(p.stat().st_size - len(line), frame_header + payload)
        if rest:
            raise VideoReadError(f"{p}: truncated y4m ({n} whole frames and {rest} stray bytes)")
        fps = num / den if num > 0 and den > 0 else 0.0
        return cls(p, w, h, fps, bits, full, f"C{colour}", len(line), frame_header, n)

    def read(self, start: int, frames: int | None) -> np.ndarray:
        count = max(0, (self.count - start) if frames is None else min(frames, self.count - start))
        w, h, cw, ch = self.width, self.height, (self.width + 1) // 2, (self.height + 1) // 2
        dtype = np.dtype(np.uint8 if self.bits == 8 else "<u2")
        samples = w * h + 2 * cw * ch
        record = self.frame_header + samples * dtype.itemsize
        with open(self.path, "rb") as f:
            f.seek(self.data_start + start * record)
            raw = f.read(count * record)
        buf = np.frombuffer(raw, np.uint8).reshape(count, record)
        if count and not np.all(buf[:, :5] == np.frombuffer(b"FRAME", np.uint8)):
            raise VideoReadError(f"{self.path}: corrupt y4m (frame headers of varying length or missing)")
        planes = buf[:, self.frame_header:].copy().view(dtype).reshape(count, samples)
        y = planes[:, : w * h].reshape(count, h, w)
        cb = planes[:, w * h: w * h + cw * ch].reshape(count, ch, cw)
        cr = planes[:, w * h + cw * ch:].reshape(count, ch, cw)
        return yuv420_to_rgb(y, cb, cr, bits=self.bits, full_range=self.full_range)


def _open_container(p: Path):  # -> av.container.InputContainer
    import av

    try:
        container = av.open(str(p), mode="r")
    except av.error.FFmpegError as exc:
        raise VideoReadError(f"{p}: not a readable video ({_av_reason(exc)})") from None
    if not container.streams.video:
        container.close()
        raise VideoReadError(f"{p}: holds no video stream")
    return container


def _av_reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split())[:160]


def _stream_fps(p: Path, stream, fps: float | None) -> float:
    rate = fps or stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate or float(rate) <= 0:
        raise VideoReadError(f"{p}: the container does not state a frame rate; pass fps")
    return float(rate)


def _probe_container(p: Path, fps: float | None) -> VideoInfo:
    with _open_container(p) as container:
        s = container.streams.video[0]
        w, h = s.codec_context.width, s.codec_context.height
        if not w or not h:
            raise VideoReadError(f"{p}: the video stream has no frame size (corrupt or unsupported)")
        return VideoInfo(str(p), "container", w, h, _stream_fps(p, s, fps), s.frames or None, s.codec_context.name)


def _read_container(p: Path, start: int, frames: int | None, fps: float | None) -> tuple[np.ndarray, float]:
    with _open_container(p) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = _stream_fps(p, stream, fps)
        out = _decode(p, container, stream, rate, start, frames, seek=start > 0 and bool(stream.time_base))
        if out is None:  # frames without timestamps after a seek: decode from the beginning instead
            container.seek(0)
            out = _decode(p, container, stream, rate, start, frames, seek=False)
        expected = (stream.frames or 0) - start
    if not out:
        raise VideoReadError(f"{p}: no decodable frames (truncated, corrupt or too short for start={start})")
    if frames is None and len(out) < expected:
        raise VideoReadError(f"{p}: truncated: decoded {len(out)} of the {expected} frames the container lists")
    if len({f.shape for f in out}) > 1:
        raise VideoReadError(f"{p}: the frame size changes inside the clip, which is not supported")
    return np.stack(out), rate


def _decode(p: Path, container, stream, rate: float, start: int, frames: int | None, seek: bool) -> list | None:
    """Decode frames ``start ..``; with ``seek``, jump to the key frame before ``start`` first (None: cannot)."""
    import av

    t0, tb = stream.start_time or 0, stream.time_base
    if seek:
        try:
            container.seek(t0 + int(start / rate / tb), stream=stream, backward=True)
        except av.error.FFmpegError:
            container.seek(0)
    out: list[np.ndarray] = []
    index = -1
    try:
        for frame in container.decode(stream):
            if frame.pts is not None and tb:
                index = round(float((frame.pts - t0) * tb) * rate)
            elif seek:
                return None
            else:
                index += 1
            if index < start:
                continue
            out.append(_frame_to_rgb(frame))
            if frames is not None and len(out) >= frames:
                break
    except av.error.FFmpegError as exc:
        where = f"after {len(out)} frames " if out else ""
        raise VideoReadError(f"{p}: truncated or corrupt video {where}({_av_reason(exc)})") from None
    return out


def _plane(plane, dtype: np.dtype) -> np.ndarray:
    arr = np.frombuffer(plane, dtype)
    return arr.reshape(plane.height, plane.line_size // dtype.itemsize)[:, : plane.width]


def _frame_to_rgb(frame) -> np.ndarray:
    name = frame.format.name
    if name in ("yuv420p", "yuvj420p", "yuv420p10le"):
        dtype = np.dtype(np.uint8 if name != "yuv420p10le" else "<u2")
        y, cb, cr = (_plane(frame.planes[i], dtype)[None] for i in range(3))
        matrix = "bt709" if frame.colorspace == 1 else "bt601"
        full = name == "yuvj420p" or frame.color_range == 2
        return yuv420_to_rgb(y, cb, cr, bits=10 if name.endswith("10le") else 8, matrix=matrix, full_range=full)[0]
    return frame.to_ndarray(format="rgb24")


# ----------------------------------------------------------------------------------------------------- writing
def write_video(path: str | Path, frames: np.ndarray, fps: float) -> Path:
    """Write frames by the path's form: ``.mp4`` (H.264), ``.y4m`` (8-bit 4:2:0) or a folder (PNG frames)."""
    p = Path(path)
    frames = _check_frames(p, frames)
    suffix = p.suffix.lower()
    if suffix == ".mp4":
        return write_mp4(p, frames, fps)
    if suffix == ".y4m":
        return write_y4m(p, frames, fps)
    if suffix == "":
        return write_png_folder(p, frames)
    raise VideoWriteError(f"{p}: cannot write {suffix!r}; use .mp4, .y4m or a folder name for PNG frames")


def _check_frames(p: Path, frames: np.ndarray) -> np.ndarray:
    a = np.asarray(frames)
    if a.ndim != 4 or a.shape[-1] != 3 or a.dtype != np.uint8 or len(a) == 0:
        raise VideoWriteError(f"{p}: frames must be uint8 [T,H,W,3] with T >= 1, got {a.dtype} {list(a.shape)}")
    return a


def write_png_folder(folder: str | Path, frames: np.ndarray) -> Path:
    """PNG frames ``f001.png``, ``f002.png``, ... (at least 3 digits) in ``folder``."""
    from PIL import Image

    p = Path(folder)
    frames = _check_frames(p, frames)
    p.mkdir(parents=True, exist_ok=True)
    digits = max(3, len(str(len(frames))))
    for i, frame in enumerate(frames, 1):
        Image.fromarray(frame).save(p / f"f{i:0{digits}d}.png")
    return p


def write_y4m(path: str | Path, frames: np.ndarray, fps: float) -> Path:
    """8-bit 4:2:0 YUV4MPEG2 (``C420jpeg``: centred chroma), BT.601 limited range."""
    p = Path(path)
    frames = _check_frames(p, frames)
    rate = Fraction(fps).limit_denominator(1001)
    t, h, w = frames.shape[:3]
    y, cb, cr = rgb_to_yuv420(frames)
    header = f"YUV4MPEG2 W{w} H{h} F{rate.numerator}:{rate.denominator} Ip A1:1 C420jpeg XCOLORRANGE=LIMITED\n"
    body = np.concatenate([np.frombuffer(b"FRAME\n", np.uint8)[None].repeat(t, 0),
                           y.reshape(t, -1), cb.reshape(t, -1), cr.reshape(t, -1)], axis=1)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "wb") as f:
        f.write(header.encode("ascii"))
        f.write(body.tobytes())
    return p


def write_mp4(path: str | Path, frames: np.ndarray, fps: float, crf: float = 18.0, preset: str = "medium") -> Path:
    """Browser-playable H.264 (yuv420p, BT.601 limited, tagged, faststart); odd sizes are edge-padded to even.
    `preset` is x264's speed preset.

    Uses PyAV's libx264; when PyAV lacks it, the static FFmpeg of ``imageio-ffmpeg``; else VideoWriteError.
    """
    import av

    p = Path(path)
    frames = _check_frames(p, frames)
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        frames = np.pad(frames, ((0, 0), (0, frames.shape[1] % 2), (0, frames.shape[2] % 2), (0, 0)), mode="edge")
    p.parent.mkdir(parents=True, exist_ok=True)
    if "libx264" in av.codecs_available:
        return _write_mp4_pyav(p, frames, fps, crf, preset)
    return _write_mp4_ffmpeg(p, frames, fps, crf, preset)


def _write_mp4_pyav(p: Path, frames: np.ndarray, fps: float, crf: float, preset: str) -> Path:
    import av

    t, h, w = frames.shape[:3]
    y, cb, cr = rgb_to_yuv420(frames)
    with av.open(str(p), mode="w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": f"{crf:g}", "preset": preset, "profile": "high"}
        stream.codec_context.colorspace, stream.codec_context.color_range = 6, 1  # SMPTE 170M (BT.601), limited
        for i in range(t):
            frame = av.VideoFrame(w, h, "yuv420p")
            for k, plane in enumerate((y[i], cb[i], cr[i])):
                _plane(frame.planes[k], np.dtype(np.uint8))[:] = plane
            frame.colorspace, frame.color_range, frame.pts = 6, 1, i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return p


def _write_mp4_ffmpeg(p: Path, frames: np.ndarray, fps: float, crf: float, preset: str) -> Path:
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:
        exe = shutil.which("ffmpeg")
    if not exe:
        raise VideoWriteError(f"{p}: no H.264 encoder (PyAV lacks libx264 and no FFmpeg binary was found)")
    t, h, w = frames.shape[:3]
    y, cb, cr = rgb_to_yuv420(frames)
    raw = np.concatenate([y.reshape(t, -1), cb.reshape(t, -1), cr.reshape(t, -1)], axis=1).tobytes()
    cmd = [exe, "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "yuv420p",
           "-s", f"{w}x{h}", "-r", f"{fps:g}", "-i", "-", "-c:v", "libx264", "-crf", f"{crf:g}",
           "-preset", preset,
           "-pix_fmt", "yuv420p", "-colorspace", "smpte170m", "-color_range", "tv", "-movflags", "+faststart", str(p)]
    done = subprocess.run(cmd, input=raw, capture_output=True)
    if done.returncode != 0:
        raise VideoWriteError(f"{p}: FFmpeg H.264 fallback failed ({done.stderr.decode(errors='replace').strip()[-160:]})")
    return p
