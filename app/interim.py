"""Stand-in for the parts of `comparisons` that have not landed yet; `app.engine` is its only user.

Baselines run single-pass ABR through the FFmpeg of `imageio-ffmpeg` (low delay, no B-frames, one intra frame,
perceptual QP adaptation off); the bitrate shown is always the one measured on the written bitstream.
Delete this module once `comparisons` provides codecs, metrics, plots, BD-rate and the result schema.
"""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

_BASELINES: dict[str, dict[str, Any]] = {
    "x265": {"label": "HEVC (x265)", "encoder": "libx265", "muxer": "hevc", "suffix": ".hevc",
             "presets": ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "veryslow"),
             "default": "medium",
             "args": lambda n: ["-x265-params", f"bframes=0:keyint={n + 1}:min-keyint={n + 1}:scenecut=0:aq-mode=0:"
                                               "pools=1:frame-threads=1:log-level=error"]},
    "vvenc": {"label": "VVC (vvenc)", "encoder": "libvvenc", "muxer": "vvc", "suffix": ".266",
              "presets": ("faster", "fast", "medium", "slow", "slower"), "default": "faster",
              "args": lambda n: ["-qpa", "0", "-period", "3600", "-vvenc-params", "decodingrefreshtype=idr"]},
    "svtav1": {"label": "AV1 (SVT-AV1)", "encoder": "libsvtav1", "muxer": "ivf", "suffix": ".ivf",
               "presets": tuple(str(p) for p in range(4, 13)), "default": "10",
               "args": lambda n: ["-g", str(n + 1), "-svtav1-params", "pred-struct=1:rc=2:enable-variance-boost=0"]},
}
_METRICS = {"PSNR-RGB": True, "MS-SSIM-RGB": True}


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def codec_table() -> list[dict]:
    rows = [{"name": "s2vc", "label": "S2VC", "presets": ("default",), "default_preset": "default"}]
    for name, spec in _BASELINES.items():
        rows.append({"name": name, "label": spec["label"], "presets": spec["presets"],
                     "default_preset": spec["default"]})
    return rows


def encode(name: str, frames: np.ndarray, fps: float, kbps: float, preset: str, out_dir: Path,
           model: Any = None) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if name == "s2vc":
        return _encode_s2vc(frames, fps, kbps, out_dir, model)
    spec = _BASELINES[name]
    t, h, w, _ = frames.shape
    stem = f"{name}_{preset}_{kbps:g}kbps"
    bitstream = out_dir / f"{stem}{spec['suffix']}"
    pix = "yuv420p10le" if name == "vvenc" else "yuv420p"
    cmd = [_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{w}x{h}", "-r", f"{fps:g}", "-i", "-", "-vf", f"format={pix}",
           "-c:v", spec["encoder"], "-preset", preset, "-b:v", f"{kbps:g}k", "-threads", "1",
           *spec["args"](t), "-f", spec["muxer"], str(bitstream)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, input=np.ascontiguousarray(frames).tobytes(), capture_output=True)
    encode_s = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{spec['encoder']} failed: {proc.stderr.decode(errors='replace')[-400:]}")
    start = time.perf_counter()
    decoded = _decode(bitstream, spec["muxer"], t)
    decode_s = time.perf_counter() - start
    bits = bitstream.stat().st_size * 8
    return {"codec": name, "label": spec["label"], "encoder": spec["encoder"], "version": _version(),
            "preset": preset, "rate_control": "single-pass ABR (interim)", "command": " ".join(cmd[1:]),
            "target_kbps": float(kbps), "bits": bits, "kbps": bits / (t / fps) / 1000,
            "bpp": bits / (t * h * w), "encode_s": encode_s, "decode_s": decode_s,
            "bitstream": str(bitstream), "decoded_frames": decoded}


def _encode_s2vc(frames: np.ndarray, fps: float, kbps: float, out_dir: Path, model: Any) -> dict:
    if model is None:
        raise RuntimeError("S2VC model not available")
    t, h, w, _ = frames.shape
    best: tuple[float, int, bytes, float] | None = None
    for rate in range(len(model.rate_names)):
        start = time.perf_counter()
        data = model.compress(frames, rate=rate, fps=fps)
        seconds = time.perf_counter() - start
        real = len(data) * 8 / (t / fps) / 1000
        if best is None or abs(real - kbps) < abs(best[0] - kbps):
            best = (real, rate, data, seconds)
        if real > kbps:
            break
    real, rate, data, encode_s = best
    bitstream = out_dir / f"s2vc_{model.rate_names[rate]}_{kbps:g}kbps.s2vc"
    bitstream.write_bytes(data)
    start = time.perf_counter()
    decoded, _ = model.decompress(data)
    decode_s = time.perf_counter() - start
    info = model.describe()
    return {"codec": "s2vc", "label": "S2VC", "encoder": "S2VC", "version": str(info.get("preset", "")),
            "preset": f"rate {model.rate_names[rate]}", "rate_control": "nearest rate point",
            "command": f"S2VC.compress(rate={rate})", "target_kbps": float(kbps), "bits": len(data) * 8,
            "kbps": real, "bpp": len(data) * 8 / (t * h * w), "encode_s": encode_s, "decode_s": decode_s,
            "bitstream": str(bitstream), "decoded_frames": np.asarray(decoded, dtype=np.uint8)}


def _decode(path: Path, fmt: str, count: int) -> np.ndarray:
    import av

    with av.open(str(path), format=fmt) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return np.stack(frames[:count])


def _version() -> str:
    out = subprocess.run([_ffmpeg(), "-version"], capture_output=True, text=True).stdout
    return out.split("\n", 1)[0]


def measure(reference: np.ndarray, decoded: np.ndarray) -> dict[str, list[float]]:
    import torch
    from pytorch_msssim import ms_ssim

    ref = reference.astype(np.float64)
    dec = decoded.astype(np.float64)
    mse = ((ref - dec) ** 2).reshape(len(ref), -1).mean(axis=1)
    psnr = [float("inf") if m == 0 else float(10 * np.log10(255.0**2 / m)) for m in mse]
    to_t = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).float()  # noqa: E731
    small = min(reference.shape[1:3]) < 161
    msssim = ms_ssim(to_t(ref), to_t(dec), data_range=255, size_average=False,
                     weights=[0.0448, 0.2856, 0.3001] if small else None).tolist()
    return {"PSNR-RGB": psnr, "MS-SSIM-RGB": [float(v) for v in msssim]}


def metric_names() -> list[str]:
    return list(_METRICS)


def higher_is_better(metric: str) -> bool:
    return _METRICS[metric]


def unavailable_metrics() -> dict[str, str]:
    return {"LPIPS, DISTS, ST-LPIPS, VMAF, temporal": "waiting for the comparisons metric registry"}


def _clip_value(record: dict, metric: str) -> float:
    values = np.asarray(record["per_frame"][metric], dtype=float)
    if metric.startswith("PSNR"):
        finite = values[np.isfinite(values)]
        return float(finite.mean()) if len(finite) else float("inf")
    return float(values.mean())


def rd_figure(records: list[dict], metric: str) -> go.Figure:
    fig = go.Figure()
    for codec in dict.fromkeys(r["codec"] for r in records):
        points = sorted((r for r in records if r["codec"] == codec), key=lambda r: r["kbps"])
        fig.add_trace(go.Scatter(x=[r["kbps"] for r in points], y=[_clip_value(r, metric) for r in points],
                                 mode="lines+markers", name=f"{points[0]['label']} ({points[0]['preset']})",
                                 line={"dash": "solid" if codec == "s2vc" else "dash"}))
    fig.update_layout(title=f"Rate vs {metric}", xaxis_title="bitrate (kbps, measured)", yaxis_title=metric,
                      height=320, margin={"l": 50, "r": 10, "t": 40, "b": 40}, legend={"orientation": "h"})
    return fig


def per_frame_figure(records: list[dict], metric: str) -> go.Figure:
    fig = go.Figure()
    for r in records:
        fig.add_trace(go.Scatter(y=r["per_frame"][metric], mode="lines+markers",
                                 name=f"{r['label']} {r['kbps']:.1f} kbps"))
    fig.update_layout(title=f"{metric} per frame", xaxis_title="frame", yaxis_title=metric, height=320,
                      margin={"l": 50, "r": 10, "t": 40, "b": 40}, legend={"orientation": "h"})
    return fig


def bd_rates(records: list[dict], anchor: str, metric: str) -> pd.DataFrame:
    import bjontegaard as bd

    rows = []
    base = sorted((r for r in records if r["codec"] == anchor), key=lambda r: r["kbps"])
    for codec in dict.fromkeys(r["codec"] for r in records):
        if codec == anchor:
            continue
        test = sorted((r for r in records if r["codec"] == codec), key=lambda r: r["kbps"])
        row = {"codec": codec, "anchor": anchor, "metric": metric}
        if len(base) < 4 or len(test) < 4:
            row["BD-rate (%)"] = None
            row["note"] = "needs at least 4 rate points per codec (use the sweep)"
        else:
            try:
                row["BD-rate (%)"] = float(bd.bd_rate([r["kbps"] for r in base], [_clip_value(r, metric) for r in base],
                                                      [r["kbps"] for r in test], [_clip_value(r, metric) for r in test],
                                                      method="pchip"))
                row["note"] = ""
            except Exception as exc:
                row["BD-rate (%)"], row["note"] = None, f"curves do not overlap ({exc})"
        rows.append(row)
    return pd.DataFrame(rows)


def write_results(records: list[dict], conditions: dict, out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    keep = [{k: v for k, v in r.items() if k not in ("decoded_frames",)} for r in records]
    json_path = out_dir / "results.json"
    json_path.write_text(json.dumps({"conditions": conditions, "results": keep}, indent=1, default=str))
    table = pd.DataFrame([{**{k: v for k, v in r.items() if not isinstance(v, (dict, list))},
                           **{m: _clip_value(r, m) for m in r["per_frame"]}} for r in keep])
    csv_path = out_dir / "results.csv"
    table.to_csv(csv_path, index=False)
    return [json_path, csv_path]


def figure_png(fig: go.Figure, path: Path) -> Path:
    import os

    import plotly
    from kaleido.scopes.plotly import PlotlyScope

    scope = PlotlyScope(plotlyjs=os.path.join(os.path.dirname(plotly.__file__), "package_data", "plotly.min.js"))
    Path(path).write_bytes(scope.transform(json.loads(fig.to_json()), format="png", width=800, height=450, scale=2))
    return Path(path)


class VideoReadError(ValueError):
    """A clip that PyAV cannot open or decode."""


def probe(path: Path) -> Any:
    import av
    from types import SimpleNamespace

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoReadError("it has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or 25
            return SimpleNamespace(width=stream.width, height=stream.height, fps=float(rate))
    except av.FFmpegError as exc:
        raise VideoReadError(str(exc)) from None


def read_video(path: Path, start: int = 0, count: int | None = None) -> np.ndarray:
    import av

    frames = []
    try:
        with av.open(str(path)) as container:
            for index, frame in enumerate(container.decode(video=0)):
                if index >= start:
                    frames.append(frame.to_ndarray(format="rgb24"))
                if count is not None and len(frames) >= count:
                    break
    except av.FFmpegError as exc:
        raise VideoReadError(str(exc)) from None
    return np.stack(frames) if frames else np.zeros((0, 1, 1, 3), np.uint8)


def read_yuv420p(path: Path, width: int, height: int, start: int = 0, count: int | None = None) -> np.ndarray:
    import av

    size = width * height * 3 // 2
    raw = np.fromfile(path, np.uint8)
    total = len(raw) // size
    stop = total if count is None else min(total, start + count)
    out = []
    for index in range(start, stop):
        frame = av.VideoFrame.from_ndarray(raw[index * size:(index + 1) * size].reshape(height * 3 // 2, width),
                                           format="yuv420p")
        out.append(frame.to_ndarray(format="rgb24"))
    return np.stack(out) if out else np.zeros((0, height, width, 3), np.uint8)


def resize(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    import av

    return np.stack([av.VideoFrame.from_ndarray(f, format="rgb24").reformat(width, height, interpolation="AREA")
                     .to_ndarray(format="rgb24") for f in frames])
