"""The codec command line: `encode` a clip into an .s2vc file, `decode` it back, `info` on a file.

Every expected failure (bad argument, unreadable clip, corrupt or foreign bitstream, wrong model, missing
checkpoint) ends as one `error: ...` line on stderr: exit 2 for bad arguments, 1 for anything else.
Set S2VC_DEBUG=1 to get the traceback of an unexpected error instead.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .bitstream import FrameRecord, StreamHeader, read_stream
from .codec import S2VC
from .config import PRESETS
from .environment import CodingEnvironment
from .errors import S2VCError
from .loading import CHECKPOINT_ENV, default_checkpoint, load_model
from .release_rate import clip_release_bpp, release_bpp
from .video_io import IMAGE_SUFFIXES, VideoReadError, VideoWriteError, read_video, write_video

DEBUG_ENV = "S2VC_DEBUG"
ESTIMATE_FRAMES = 16  # --kbps estimates: frames coded per rate point (I, reset P and plain P frames among them)
OUTPUT_SUFFIXES = (".mp4", ".y4m", "")


class UsageError(Exception):
    """A bad command-line argument (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see `{self.prog} --help`)")


# ----------------------------------------------------------------------------------------------- arguments
def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def _non_negative_int(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return int(text)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)", text.strip().lower())
    if not match or not all(int(v) >= 1 for v in match.groups()):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 416x240, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(PRESETS), help="model architecture (default: tiny for encode; "
                        "the preset named in the stream for decode)")
    parser.add_argument("--checkpoint", metavar="DIR", help="model folder: our format (config.json + "
                        f"model.safetensors) or an official release folder (default: ${CHECKPOINT_ENV} or the "
                        "bundled assets/models/s2vc-tiny)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available, else cpu")
    parser.add_argument("--threads", type=_positive_int, default=1, metavar="N", help="CPU threads (default 1). "
                        "The networks whose rounding the decoder must reproduce always run on one thread, so any "
                        "count decodes any stream; decode on the encoder's kind of device (the stream records it). "
                        "More threads help only on an idle machine (on a busy one, 2 threads ran 10x slower than 1 "
                        "here)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m model", description="S2VC single-step diffusion video codec.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{encode,decode,info}")

    enc = commands.add_parser("encode", help="encode a clip into an .s2vc file", description=(
        "Encode a clip (mp4/mkv/mov/webm/y4m, a folder of PNG frames, or raw yuv420p .yuv) into an .s2vc file."))
    enc.add_argument("input", help="clip file or folder of PNG frames")
    enc.add_argument("-o", "--output", required=True, metavar="OUT.s2vc")
    _model_options(enc)
    rate = enc.add_mutually_exclusive_group()
    rate.add_argument("--rate", metavar="N", help="rate point: index (0 = fewest bits) or name such as q2 "
                      "(default: the middle rate point)")
    rate.add_argument("--kbps", type=_positive_float, metavar="K", help=(
        "pick the rate point whose bitrate on this clip comes closest to K kbit/s without exceeding it. Each rate "
        "point's bitrate is estimated with S2VC.estimate_kbps: the entropy model's exact bits for this clip (no "
        "VAE decode; one encoder pass per rate point) plus the coder's word padding and the container overhead. "
        "The estimates are printed. If none fits, the lowest rate is used with a warning"))
    enc.add_argument("--estimate-frames", type=_non_negative_int, default=ESTIMATE_FRAMES, metavar="N", help=(
        f"with --kbps, estimate on the clip's first N frames (at least 3; later frames get the mean of their frame "
        f"type); 0 = every frame (default {ESTIMATE_FRAMES})"))
    enc.add_argument("--frames", type=_positive_int, metavar="N", help="encode at most N frames (default: all)")
    enc.add_argument("--start", type=_non_negative_int, default=0, metavar="S", help="first frame (default 0)")
    enc.add_argument("--size", type=_size, metavar="WxH", help="frame size of a raw .yuv input")
    enc.add_argument("--fps", type=_positive_float, metavar="F", help="frame rate: needed for raw .yuv and PNG "
                     "folders, overrides a container's")
    enc.set_defaults(run=run_encode)

    dec = commands.add_parser("decode", help="decode an .s2vc file", description=(
        "Decode an .s2vc file to .mp4 (H.264, for viewing), .y4m (8-bit 4:2:0) or a folder of PNG frames "
        "(the exact RGB reconstruction). The file and the model that made it are all that is needed."))
    dec.add_argument("input", metavar="IN.s2vc")
    dec.add_argument("-o", "--output", required=True, metavar="OUT", help="OUT.mp4, OUT.y4m or a new folder")
    _model_options(dec)
    dec.set_defaults(run=run_decode)

    info = commands.add_parser("info", help="print an .s2vc file's header and per-frame bits", description=(
        "Print an .s2vc file's header (how it was coded included) and, per frame, its type, bytes and bits per "
        "pixel, with the rate as the official release reports it beside them (release bpp: the I-frame's estimated "
        "y bits over the padded area, P-frames' payload bits; the clip's is the mean of the frames'). No model "
        "needed."))
    info.add_argument("input", metavar="IN.s2vc")
    info.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    info.set_defaults(run=run_info)
    return parser


# ----------------------------------------------------------------------------------------------- shared steps
def _device(name: str | None) -> str:
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    return name or ("cuda" if torch.cuda.is_available() else "cpu")


def _load(args: argparse.Namespace, preset: str | None) -> S2VC:
    device = _device(args.device)
    torch.set_num_threads(args.threads)
    if args.checkpoint is None and not os.environ.get(CHECKPOINT_ENV):
        if preset not in (None, "tiny"):
            raise UsageError(f"the {preset} preset has no bundled weights: pass --checkpoint DIR")
        if not default_checkpoint().exists():
            raise S2VCError(f"the bundled tiny model is missing ({default_checkpoint()}): pass --checkpoint DIR "
                            f"or set {CHECKPOINT_ENV}")
    return load_model(args.checkpoint, preset, device)


def _progress(total: int, what: str, unit: str = "frame") -> tqdm:
    """A progress bar on stderr, shown only on a terminal."""
    return tqdm(total=total, desc=what, unit=unit, file=sys.stderr, disable=None, leave=False)


def _kbps(total_bytes: float, frames: int, fps: float) -> float:
    return 8.0 * total_bytes * fps / frames / 1000.0


# ----------------------------------------------------------------------------------------------- encode
def run_encode(args: argparse.Namespace) -> int:
    path = Path(args.input)
    kind = "PNG folder" if path.is_dir() else {".yuv": "raw .yuv file"}.get(path.suffix.lower(), "single image")
    if args.fps is None and (path.is_dir() or path.suffix.lower() in (".yuv", *IMAGE_SUFFIXES)):
        raise UsageError(f"{path}: a {kind} stores no frame rate: pass --fps F")
    if path.suffix.lower() == ".yuv" and args.size is None:
        raise UsageError(f"{path}: a raw .yuv file needs --size WxH")
    frames, fps = read_video(path, args.start, args.frames, args.size, args.fps)
    t, h, w = frames.shape[:3]
    print(f"read {t} frame{'s' * (t > 1)} {w}x{h} at {fps:g} fps from {path}")
    model = _load(args, args.preset)
    rate = _pick_rate(model, frames, fps, args)
    start = time.perf_counter()
    with _progress(t, "encode") as bar:
        results = model.encode_file(args.output, frames, rate, fps, on_frame=lambda _: bar.update())
    seconds = time.perf_counter() - start
    size = Path(args.output).stat().st_size
    print(f"wrote {args.output}: {size} bytes, {_kbps(size, t, fps):.1f} kbps, {8 * size / (t * h * w):.4f} bpp, "
          f"rate {rate} ({model.rate_names[rate]}); {len(results)} frames in {seconds:.1f} s "
          f"({len(results) / seconds:.2f} frames/s)")
    return 0


def _pick_rate(model: S2VC, frames: np.ndarray, fps: float, args: argparse.Namespace) -> int:
    names = model.rate_names
    if args.rate is not None:
        if args.rate in names:
            return names.index(args.rate)
        if args.rate.isdigit() and int(args.rate) < len(names):
            return int(args.rate)
        raise UsageError(f"--rate {args.rate}: this model has rate points 0..{len(names) - 1} ({', '.join(names)})")
    if args.kbps is None:
        return len(names) // 2
    if 0 < args.estimate_frames < 3:
        raise UsageError(f"--estimate-frames {args.estimate_frames}: at least 3 (an I, a reset and a plain P-frame), "
                         "or 0 for every frame")
    estimates = estimate_kbps(model, frames, fps, args.estimate_frames or None)
    fitting = [r for r, kbps in enumerate(estimates) if kbps <= args.kbps]
    chosen = max(fitting, key=estimates.__getitem__) if fitting else min(range(len(names)), key=estimates.__getitem__)
    print("estimated bitrate per rate point (S2VC.estimate_kbps: entropy-model bits + container, no VAE decode):")
    for r, kbps in enumerate(estimates):
        print(f"  {r:>3} {names[r]:<12} {kbps:10.1f} kbps{'  <- chosen' if r == chosen else ''}")
    if not fitting:
        print(f"warning: no rate point fits {args.kbps:g} kbps; using the lowest ({estimates[chosen]:.1f} kbps "
              "estimated)", file=sys.stderr)
    return chosen


def estimate_kbps(model: S2VC, frames: np.ndarray, fps: float, max_frames: int | None = None) -> list[float]:
    """`S2VC.estimate_kbps` of every rate point on this clip (one encoder pass each, no VAE decode), coding only
    its first `max_frames` frames when it is longer (later frames get their type's mean)."""
    out = []
    coded = max_frames if max_frames is not None and max_frames < len(frames) else None
    with _progress(len(model.rate_names), "estimate rates", unit="rate") as bar:
        for rate in range(len(model.rate_names)):
            out.append(model.estimate_kbps(frames, rate, fps, max_frames=coded))
            bar.update()
    return out


# ----------------------------------------------------------------------------------------------- decode
def run_decode(args: argparse.Namespace) -> int:
    out = Path(args.output)
    suffix = out.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise UsageError(f"{out}: the output must end in .mp4 or .y4m, or be a folder for PNG frames")
    if suffix == "" and (out.is_file() or (out.is_dir() and any(out.glob("*.png")))):
        raise UsageError(f"{out}: already a file or a folder holding PNG files; name a new or empty folder")
    data = Path(args.input).read_bytes()
    header, records = read_stream(data)
    list(records)  # check every frame record before loading a model
    if args.preset is not None and args.preset != header.preset:
        raise UsageError(f"{args.input} was made by the {header.preset!r} preset, not {args.preset!r}")
    model = _load(args, header.preset)
    _, decoded = model.iter_decode(data)
    start = time.perf_counter()
    frames = []
    with _progress(header.frame_count, "decode") as bar:
        for result in decoded:
            frames.append(result.frame)
            bar.update()
    seconds = time.perf_counter() - start
    write_video(out, np.stack(frames), header.fps)
    print(f"decoded {len(frames)} frames {header.width}x{header.height} in {seconds:.1f} s "
          f"({len(frames) / seconds:.2f} frames/s) -> {out}")
    return 0


# ----------------------------------------------------------------------------------------------- info
def stream_info(data: bytes) -> dict:
    """Header fields, per-frame type / bytes / bpp / release-style bpp, and totals of a bitstream (checks every
    record)."""
    header, records = read_stream(data)
    frames = [_frame_info(i, record, header) for i, record in enumerate(records)]
    pixels = header.width * header.height
    env = header.environment
    return {
        "bytes": len(data),
        "header": {
            "preset": header.preset, "weights_hash": header.weights_hash.hex(), "width": header.width,
            "height": header.height, "fps": f"{header.fps_num}/{header.fps_den}", "frame_count": header.frame_count,
            "rate_index": header.rate_index, "rate_name": header.rate_name, "header_bytes": len(header.to_bytes()),
            "coded_on": {"device": env.device, "precision": env.precision, "kernels": env.kernels,
                         "torch": env.torch, "threads": env.threads},
        },
        "frames": frames,
        "payload_bytes": sum(f["payload_bytes"] for f in frames),
        "bpp": 8 * len(data) / (pixels * header.frame_count),
        "release_bpp": clip_release_bpp(f["release_bpp"] for f in frames),
        "kbps": _kbps(len(data), header.frame_count, header.fps),
    }


def _frame_info(index: int, record: FrameRecord, header: StreamHeader) -> dict:
    payload, kind = len(record.payload), record.frame_type.value
    return {"index": index, "type": kind, "payload_bytes": payload,
            "record_bytes": len(record.to_bytes()), "bpp": 8 * payload / (header.width * header.height),
            "release_bpp": release_bpp(kind, payload, record.release_bits, header.width, header.height),
            "picture_check": record.check.hex()}


def run_info(args: argparse.Namespace) -> int:
    info = stream_info(Path(args.input).read_bytes())
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    h = info["header"]
    print(f"file        {args.input} ({info['bytes']} bytes)")
    print(f"model       {h['preset']}, weights {h['weights_hash']}")
    print(f"size        {h['width']}x{h['height']}, {h['frame_count']} frames at {h['fps']} fps")
    print(f"rate point  {h['rate_index']} ({h['rate_name']})")
    print(f"header      {h['header_bytes']} bytes")
    print(f"coded on    {CodingEnvironment(**h['coded_on']).describe()}")
    print(f"{'frame':>6} {'type':<6} {'bytes':>9} {'bpp':>8} {'release bpp':>12}")
    for f in info["frames"]:
        print(f"{f['index']:>6} {f['type']:<6} {f['payload_bytes']:>9} {f['bpp']:>8.4f} {f['release_bpp']:>12.4f}")
    container = info["bytes"] - info["payload_bytes"]
    print(f"total       {info['bytes']} bytes (payload {info['payload_bytes']}, container {container}), "
          f"{info['bpp']:.4f} bpp, {info['kbps']:.1f} kbps")
    print(f"release bpp {info['release_bpp']:.4f} (as the official release reports it: the I-frame's estimated y bits "
          "over the padded area, P-frames' payload; mean of the frames)")
    return 0


# ----------------------------------------------------------------------------------------------- main
def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 1 failed, 2 bad arguments, 130 interrupted)."""
    try:
        args = build_parser().parse_args(argv)
        return args.run(args)
    except BrokenPipeError:  # the reader went away (`... | head`): stop quietly, as other command-line tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        return 141  # 128 + SIGPIPE
    except UsageError as exc:
        status, message = 2, _one_line(exc)
    except (S2VCError, VideoReadError, VideoWriteError, ValueError, OSError) as exc:
        status, message = 1, _one_line(exc)
    except KeyboardInterrupt:
        status, message = 130, "interrupted"
    except Exception as exc:  # an unexpected failure still ends in one line (S2VC_DEBUG=1 shows the traceback)
        if os.environ.get(DEBUG_ENV):
            raise
        status, message = 1, f"unexpected {type(exc).__name__}: {_one_line(exc)} (set {DEBUG_ENV}=1 for details)"
    print(f"error: {message}", file=sys.stderr)
    return status
