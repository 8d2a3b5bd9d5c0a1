"""The app's one doorway to the comparison engine: codecs, metrics, plots, BD-rates and result files.

Everything here forwards to `comparisons` (and the model through it). Records are plain dicts (the fields of
comparisons' EncodeResult plus the app's file paths), so they can live in `gr.State`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app import interim


OFFERED = ("s2vc", "x265", "vvenc", "svtav1")
X265_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
SVTAV1_PRESETS = tuple(str(p) for p in range(13, -1, -1))
APP_PRESETS = {"x265": "medium", "vvenc": "faster", "svtav1": "10"}  # fast on 2 CPU cores


@dataclass(frozen=True)
class CodecChoice:
    """One encoder the page offers, with its preset choices; `reason` says why it cannot run here."""

    name: str
    label: str
    presets: tuple[str, ...]
    default_preset: str
    reason: str | None = None


def codec_choices() -> list[CodecChoice]:
    """The codecs offered in the page, S2VC first; presets default to fast ones (2-core machines)."""
    from comparisons.codecs import CODECS, codec_availability
    from comparisons.codecs.vvenc import PRESETS as VVENC_PRESETS

    presets = {"s2vc": ("default",), "x265": X265_PRESETS, "vvenc": VVENC_PRESETS, "svtav1": SVTAV1_PRESETS}
    reasons = codec_availability()
    return [CodecChoice(name, CODECS[name].label, presets[name], APP_PRESETS.get(name, "default"),
                        None if name == "s2vc" else reasons[name]) for name in OFFERED]


def make_codec(name: str, preset: str, model: Any = None) -> Any:
    """A comparisons Codec; S2VC wraps the app's shared, already loaded model."""
    from comparisons.codecs import get_codec

    if name == "s2vc":
        return get_codec("s2vc", model=model)
    return get_codec(name, preset=preset)


def encode(codec: Any, frames: np.ndarray, fps: float, kbps: float, out_dir: Path) -> dict:
    """Code `frames` near `kbps`; a plain record: real bits and kbps, times, command, version, settings, paths."""
    result = codec.encode(frames, fps, kbps, out_dir)
    settings = dict(result.settings)
    preset = f"rate {settings['rate_point']}" if "rate_point" in settings else str(settings.get("preset", ""))
    return {"codec": result.codec, "label": result.label, "version": result.version, "settings": settings,
            "preset": preset, "command": result.command, "bitstream": result.bitstream_path, "bits": result.bits,
            "frames": result.frames, "fps": result.fps, "width": result.width, "height": result.height,
            "target_kbps": result.target_kbps, "kbps": result.kbps, "bpp": result.bpp,
            "within_tolerance": result.within_tolerance, "trials": result.trials,
            "encode_s": result.encode_seconds, "decode_s": result.decode_seconds, "decoded_frames": result.decoded}


DEFAULT_METRICS = ("psnr_rgb", "psnr_yuv611", "ms_ssim_rgb", "vmaf")  # seconds per clip on 2 CPU cores


@dataclass(frozen=True)
class MetricChoice:
    """One metric of the registry: exact variant, direction, and why it cannot run here (None if it can)."""

    name: str
    variant: str
    higher_is_better: bool
    reason: str | None


def metric_choices() -> list[MetricChoice]:
    from comparisons.metrics import METRICS

    return [MetricChoice(m.name, m.variant, m.higher_is_better, m.availability()) for m in METRICS.values()]


def measure(reference: np.ndarray, decoded: np.ndarray, names: list[str]) -> tuple[dict, dict, dict]:
    """Per-frame values, clip values and skipped metrics (name -> reason) of `names` for one decoded clip."""
    from comparisons.metrics import MetricError, get_metric

    per_frame, clip, skipped = {}, {}, {}
    for name in names:
        try:
            value = get_metric(name).evaluate(np.asarray(reference), decoded)
        except MetricError as exc:
            skipped[name] = str(exc)
            continue
        per_frame[name], clip[name] = value.per_frame, value.clip
    return per_frame, clip, skipped


def rd_figure(records: list[dict], metric: str):
    return interim.rd_figure(records, metric, _higher(metric))


def per_frame_figure(records: list[dict], metric: str):
    return interim.per_frame_figure(records, metric)


def bd_rates(records: list[dict], anchor: str, metric: str):
    """BD-rate table of every codec against `anchor` for `metric` (a DataFrame; messages for non-overlap)."""
    return interim.bd_rates(records, anchor, metric, _higher(metric))


def write_results(records: list[dict], conditions: dict, out_dir) -> list:
    """results.json and results.csv in `out_dir`; returns their paths."""
    return interim.write_results(records, conditions, out_dir)


def figure_png(fig, path) -> Any:
    return interim.figure_png(fig, path)


def _higher(metric: str) -> bool:
    from comparisons.metrics import METRICS

    return METRICS[metric].higher_is_better
