"""The app's one doorway to the comparison engine: codecs, metrics, the results schema, BD-rates, plots, files.

Everything is computed by `comparisons` (and the model through its S2VC codec). A run's state holds a comparisons
results dict (plain JSON-able data); each record also carries the app's own keys (`APP_KEYS`: the label shown in
the page and the paths of the decoded frames and the browser preview), which are left out of the saved files.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

OFFERED = ("s2vc", "x265", "vvenc", "svtav1")
X265_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
SVTAV1_PRESETS = tuple(str(p) for p in range(13, -1, -1))
APP_PRESETS = {"x265": "medium", "vvenc": "faster", "svtav1": "10"}  # fast on 2 CPU cores
DEFAULT_METRICS = ("psnr_rgb", "psnr_yuv611", "ms_ssim_rgb", "vmaf")  # seconds per clip on 2 CPU cores
APP_KEYS = ("key", "decoded", "preview")


@dataclass(frozen=True)
class CodecChoice:
    """One encoder the page offers, with its preset choices; `reason` says why it cannot run here."""

    name: str
    label: str
    presets: tuple[str, ...]
    default_preset: str
    reason: str | None = None


@dataclass(frozen=True)
class MetricChoice:
    """One metric of the registry: exact variant, direction, and why it cannot run here (None if it can)."""

    name: str
    variant: str
    higher_is_better: bool
    reason: str | None


def codec_choices() -> list[CodecChoice]:
    """The codecs offered in the page, S2VC first (its availability is the model slot's business)."""
    from comparisons.codecs import CODECS, codec_availability
    from comparisons.codecs.vvenc import PRESETS as VVENC_PRESETS

    presets = {"s2vc": ("default",), "x265": X265_PRESETS, "vvenc": VVENC_PRESETS, "svtav1": SVTAV1_PRESETS}
    reasons = codec_availability()
    return [CodecChoice(name, CODECS[name].label, presets[name], APP_PRESETS.get(name, "default"),
                        None if name == "s2vc" else reasons[name]) for name in OFFERED]


def metric_choices() -> list[MetricChoice]:
    from comparisons.metrics import METRICS

    return [MetricChoice(m.name, m.variant, m.higher_is_better, m.availability()) for m in METRICS.values()]


def make_codec(name: str, preset: str, model: Any = None) -> Any:
    """A comparisons Codec; S2VC wraps the app's shared, already loaded model and leaves its decoder check to
    `check_decoder`, so that its result shows as soon as the encode is done."""
    from comparisons.codecs import get_codec

    if name == "s2vc":
        return get_codec("s2vc", model=model, verify_decode=False)
    return get_codec(name, preset=preset)


def new_results(clip: dict, frames: np.ndarray, rates: list[float], metrics: list[str]) -> dict:
    """An empty comparisons results dict for this clip and run."""
    from comparisons.runner import new_results as make

    info = {"path": clip["name"], "start": clip["start"]}
    return make(info, frames, clip["fps"], rates, metrics)


def encode_and_measure(codec: Any, frames: np.ndarray, fps: float, kbps: float, out_dir: Path,
                       metrics: list[str]) -> tuple[dict, Any]:
    """One real encode near `kbps`, decoded and measured: the comparisons record and the EncodeResult (whose
    `decoded` holds the frames)."""
    from comparisons.runner import measure

    result = codec.encode(frames, fps, kbps, out_dir)
    return measure(frames, result, metrics), result


def check_decoder(codec: Any, result: Any) -> dict:
    """Run the real decoder on an S2VC result and check it reproduces the shown frames bit for bit (CodecError
    if not): the record keys it fills in, `decode_seconds` and `decoder_check`."""
    seconds = codec.verify(result)
    return {"decode_seconds": seconds, "decoder_check": result.decoder_check}


def record_key(record: dict) -> str:
    """How the page names one result: "codec · preset · kbps" (the real bitrate of its bitstream)."""
    return f"{record['label']} · {preset_of(record)} · {record['kbps']:.1f} kbps"


def decode_bitstream(record: dict) -> np.ndarray | None:
    """A baseline record's frames decoded from its bitstream with FFmpeg; None for a codec without an FFmpeg
    decoder (S2VC, whose decoder is the model)."""
    from comparisons.codecs import CODECS
    from comparisons.codecs.ffmpeg_codec import decode_file

    demuxer = getattr(CODECS.get(record["codec"]), "demuxer", None)
    if demuxer is None:
        return None
    frames, _ = decode_file(Path(record["bitstream"]), demuxer, record["frames"], record["height"], record["width"])
    return frames


def preset_of(record: dict) -> str:
    """What the page calls the record's preset: the encoder preset, or S2VC's rate point."""
    settings = record["settings"]
    return f"rate {settings['rate_point']}" if "rate_point" in settings else str(settings.get("preset", ""))


def view(results: dict, records: list[dict]) -> dict:
    """The same results restricted to some records (e.g. the main bitrate's)."""
    return {**results, "records": records}


def rd_figure(results: dict, metric: str) -> Any:
    from comparisons.plots import rd_figure as make

    return _fit(make(results, metric))


def per_frame_figure(results: dict, metric: str) -> Any:
    from comparisons.plots import per_frame_figure as make

    return _fit(make(results, metric))


def _fit(fig: Any) -> Any:
    """Let the page size the figure (comparisons draws them at a fixed size for files); the title, which names the
    metric's exact variant, is wrapped so that a half-page-wide plot shows all of it."""
    title = wrap_title(fig.layout.title.text or "", 70)
    return fig.update_layout(title_text=title, width=None, height=380 + 16 * title.count("<br>"),
                             margin={"l": 60, "r": 20, "t": 50 + 16 * title.count("<br>"), "b": 40})


def wrap_title(text: str, width: int) -> str:
    """A plotly title broken into lines of at most `width` characters (plotly never wraps by itself)."""
    return "<br>".join(textwrap.wrap(text.replace("<br>", " "), width)) or text


def slide_figure(fig: Any) -> Any:
    """A copy of a page figure laid out for a 1920x1080 slide: large text, the whole title, legend underneath."""
    import plotly.graph_objects as go

    title = wrap_title(fig.layout.title.text or "", 90)
    lines = title.count("<br>") + 1
    return go.Figure(fig).update_layout(
        title_text=title, title_font_size=30, font_size=26, width=None, height=None,
        margin={"l": 120, "r": 60, "t": 60 + 40 * lines, "b": 120}, legend={"orientation": "h", "y": -0.15},
        xaxis_title_font_size=28, yaxis_title_font_size=28).update_traces(marker_size=16, line_width=4)


def bd_table(results: dict, anchor: str) -> pd.DataFrame:
    """BD-rate / BD-quality of every codec against `anchor` for every metric, with a note where undefined."""
    from comparisons.bdrate import BDRateError, bd_table as make

    measured = [m for m in results["metrics"] if any(m in r["metrics"] for r in results["records"])]
    try:
        table = make(results, anchor, measured).drop(columns=["variant"])
    except BDRateError as exc:
        return pd.DataFrame([{"note": str(exc)}])
    reasons = {note.split(": ", 1)[-1] for note in table["note"]}
    if len(reasons) == 1 and "point(s)" in next(iter(reasons)) and table["bd_rate_percent"].isna().all():
        return pd.DataFrame([{"note": f"no BD-rate: {next(iter(reasons))} (tick 'sweep' to run more bitrates)"}])
    return table


def save(results: dict, out_dir: Path) -> tuple[list[Path], str | None]:
    """results.json, results.csv, per_frame.csv and the RD figures (HTML, PNG); returns the files and a PNG error."""
    from comparisons.plots import save_figures
    from comparisons.results import save_results, write_csv

    clean = view(results, [{k: v for k, v in r.items() if k not in APP_KEYS}
                           | {"bitstream": _relative(r["bitstream"], out_dir)} for r in results["records"]])
    files = [save_results(clean, Path(out_dir) / "results.json"), *write_csv(clean, out_dir)]
    figures, png_error = save_figures(clean, Path(out_dir) / "figures")
    return files + figures, png_error


def _relative(path: str, root: Path) -> str:
    """`path` relative to `root` when it lies inside it: saved files name no server folders."""
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return str(path)
