"""The app's one doorway to the comparison engine: codecs, metrics, plots, BD-rates and result files.

Everything here forwards to `comparisons` (and the model through it). Records are plain dicts (the comparisons JSON
schema plus the app's file paths), so they can live in `gr.State`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app import interim


@dataclass(frozen=True)
class CodecChoice:
    """One encoder the page offers, with its preset choices; `reason` says why it cannot run."""

    name: str
    label: str
    presets: tuple[str, ...]
    default_preset: str
    reason: str | None = None


def codec_choices() -> list[CodecChoice]:
    """The codecs offered in the page, S2VC first; the presets default to fast ones (2-core machines)."""
    return [CodecChoice(**c) for c in interim.codec_table()]


def encode(name: str, frames, fps: float, kbps: float, preset: str, out_dir, model: Any = None) -> dict:
    """Code `frames` at `kbps` with one codec; returns a record with real bits, times, command, version, paths."""
    return interim.encode(name, frames, fps, kbps, preset, out_dir, model)


def measure(reference, decoded) -> dict[str, list[float]]:
    """Per-frame values of every available metric, keyed by the metric's exact variant name."""
    return interim.measure(reference, decoded)


def metric_names() -> list[str]:
    return interim.metric_names()


def higher_is_better(metric: str) -> bool:
    return interim.higher_is_better(metric)


def unavailable_metrics() -> dict[str, str]:
    """Metrics that cannot run here, with the reason (shown in the page)."""
    return interim.unavailable_metrics()


def rd_figure(records: list[dict], metric: str):
    return interim.rd_figure(records, metric)


def per_frame_figure(records: list[dict], metric: str):
    return interim.per_frame_figure(records, metric)


def bd_rates(records: list[dict], anchor: str, metric: str):
    """BD-rate table of every codec against `anchor` for `metric` (a DataFrame; messages for non-overlap)."""
    return interim.bd_rates(records, anchor, metric)


def write_results(records: list[dict], conditions: dict, out_dir) -> list:
    """results.json and results.csv in `out_dir`; returns their paths."""
    return interim.write_results(records, conditions, out_dir)


def figure_png(fig, path) -> Any:
    return interim.figure_png(fig, path)
