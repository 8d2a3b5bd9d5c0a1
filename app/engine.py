"""The app's one doorway to the comparison engine: codecs, metrics, the results schema, BD-rates, plots, files.

Everything is computed by `comparisons` (and the model through its S2VC codec). A run's state holds a comparisons
results dict (plain JSON-able data); each record also carries the app's own keys (`APP_KEYS`: the label shown in
the page and the paths of the decoded frames and the browser preview), which are left out of the saved files.
"""
from __future__ import annotations

import textwrap
import threading
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


class Stopped(RuntimeError):
    """The run was stopped (its page closed) in the middle of a step."""


class StoppableModel:
    """The shared S2VC model as one run sees it: once `stop` is set, its encode or decode in flight ends at the
    next frame (raising `Stopped`) and no new one starts. Everything else is the model's."""

    def __init__(self, model: Any, stop: threading.Event) -> None:
        self._model, self._stop = model, stop

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def _check(self, *_: Any) -> None:
        if self._stop.is_set():
            raise Stopped("stopped: the page was closed")

    def estimate_kbps(self, *args: Any, **kwargs: Any) -> float:
        self._check()
        return self._model.estimate_kbps(*args, **kwargs)

    def encode_file(self, path: Any, frames: np.ndarray, rate: int, fps: float, on_frame: Any = None) -> list:
        def each(result: Any) -> None:
            self._check()
            if on_frame is not None:
                on_frame(result)

        self._check()
        return self._model.encode_file(path, frames, rate, fps, on_frame=each)

    def decompress(self, source: Any) -> Any:
        self._check()
        return self._model.decompress(source)


def encode_and_measure(codec: Any, frames: np.ndarray, fps: float, kbps: float, out_dir: Path,
                       metrics: list[str], stop: threading.Event | None = None,
                       device: str = "cpu") -> tuple[dict, Any]:
    """One real encode near `kbps`, decoded and measured (the learned metrics on ``device``, "cpu" or "cuda[:N]"):
    the comparisons record and the EncodeResult (whose `decoded` holds the frames). A `stop` set during the encode
    skips the metrics (`Stopped`)."""
    from comparisons.runner import measure

    result = codec.encode(frames, fps, kbps, out_dir)
    if stop is not None and stop.is_set():
        raise Stopped("stopped: the page was closed")
    return measure(frames, result, metrics, device), result


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
    """What the page calls the record's preset: the encoder preset, or S2VC's rate point ("q0")."""
    settings = record["settings"]
    return str(settings["rate_point"]) if "rate_point" in settings else str(settings.get("preset", ""))


TINY_MODEL_NAME = "S2VC (small CPU demo model)"


def s2vc_name(results: dict, conditions: dict) -> str:
    """What slide media call S2VC: the bundled model says it is the small CPU demonstration one; another model
    is named after its checkpoint; plain "S2VC" when the run says neither."""
    if any(r["codec"] == "s2vc" and "preset=tiny" in str(r.get("version", "")) for r in results["records"]):
        return TINY_MODEL_NAME
    checkpoint = conditions.get("model checkpoint")
    return f"S2VC ({checkpoint})" if checkpoint and not str(checkpoint).startswith("bundled") else "S2VC"


def display_key(record: dict, s2vc: str = "S2VC") -> str:
    """A record's key with S2VC named `s2vc` (slide media name the model; the page keeps "S2VC")."""
    key = record["key"]
    return s2vc + key[len("S2VC"):] if record["codec"] == "s2vc" and key.startswith("S2VC") else key


PLAIN_NAMES = {"psnr_rgb": "PSNR (RGB)", "psnr_yuv611": "PSNR (YUV 6:1:1)", "ssim_rgb": "SSIM", "ms_ssim_rgb":
               "MS-SSIM", "lpips_alex": "LPIPS", "st_lpips_alex": "ST-LPIPS", "dists": "DISTS", "vmaf": "VMAF",
               "flolpips_alex_hs": "FloLPIPS", "flo_st_lpips_alex_hs": "FloLPIPS (ST-LPIPS)"}


def plain_name(metric: str, variant: str = "") -> str:
    """A metric's name for an audience ("ST-LPIPS"); the exact variant goes in a note. Metrics not listed in
    `PLAIN_NAMES` are named by their variant's first words, else by their registry name."""
    if metric in PLAIN_NAMES:
        return PLAIN_NAMES[metric]
    if metric.startswith("fid_patch"):
        return "patch FID"
    head = variant.split(" (")[0].split(":")[0].split(",")[0].strip()
    return head if 0 < len(head) <= 24 else metric


def direction(higher_is_better: bool) -> str:
    return "higher is better" if higher_is_better else "lower is better"


def series_names(results: dict, s2vc: str = "S2VC") -> dict[str, str]:
    """The legend name of each codec's curve, as the page names its results: "S2VC · q0", "HEVC (x265) · medium"
    (the rate points or presets of its records, in order of first use)."""
    names: dict[str, list[str]] = {}
    labels: dict[str, str] = {}
    for r in results["records"]:
        labels.setdefault(r["codec"], s2vc if r["codec"] == "s2vc" else r["label"])
        presets = names.setdefault(r["codec"], [])
        if preset_of(r) and preset_of(r) not in presets:
            presets.append(preset_of(r))
    return {codec: " · ".join([labels[codec], ", ".join(p)] if p else [labels[codec]]) for codec, p in names.items()}


def view(results: dict, records: list[dict]) -> dict:
    """The same results restricted to some records (e.g. the main bitrate's)."""
    return {**results, "records": records}


def rd_figure(results: dict, metric: str, s2vc: str = "S2VC") -> Any:
    """The RD plot of `metric`: titled with its plain name and direction, the exact variant as a subtitle, the
    curves named as the page names the results (`series_names`)."""
    from comparisons.plots import rd_figure as make

    fig = make(results, metric)
    for trace, name in zip(fig.data, series_names(results, s2vc).values()):  # comparisons draws codecs in that order
        trace.name = name
    info = results["metrics"][metric]
    plain = plain_name(metric, info["variant"])
    unit = f" [{info['unit']}]" if info.get("unit") else ""
    fig.update_layout(yaxis_title=f"{plain}{unit}", xaxis_title="bitrate [kbps] (real bitstream size)")
    return _fit(fig, f"{plain}, {direction(info['higher_is_better'])}", f"{metric}: {info['variant']}")


def per_frame_figure(results: dict, metric: str) -> Any:
    from comparisons.plots import per_frame_figure as make

    info = results["metrics"][metric]
    plain = plain_name(metric, info["variant"])
    fig = make(results, metric).update_layout(yaxis_title=plain)
    drawn = [r for r in results["records"] if r["per_frame"].get(metric)]  # comparisons draws these, in order
    for trace, record in zip(fig.data, drawn):
        trace.name = record.get("key", trace.name)  # "S2VC · q0 · 180.2 kbps", as the players are labelled
    return _fit(fig, f"{plain} per frame, {direction(info['higher_is_better'])}", f"{metric}: {info['variant']}")


def _fit(fig: Any, title: str, subtitle: str) -> Any:
    """Let the page size the figure (comparisons draws them at a fixed size for files): the plain title, and the
    exact variant as a small subtitle wrapped so that a half-page-wide plot shows all of it."""
    note = wrap_title(subtitle, 90)
    lines = note.count("<br>")
    return fig.update_layout(title={"text": title, "font": {"size": 16}, "subtitle": {"text": note,
                                                                                      "font": {"size": 10}}},
                             width=None, height=390 + 12 * lines, margin={"l": 60, "r": 20, "t": 70 + 12 * lines,
                                                                          "b": 40})


def wrap_title(text: str, width: int) -> str:
    """A plotly title broken into lines of at most `width` characters (plotly never wraps by itself)."""
    return "<br>".join(textwrap.wrap(text.replace("<br>", " "), width)) or text


def slide_figure(fig: Any) -> Any:
    """A copy of a page figure laid out for a 1920x1080 slide: large title and text, the variant as a subtitle
    that fits the width, legend underneath."""
    import plotly.graph_objects as go

    note = wrap_title(fig.layout.title.subtitle.text or "", 120)
    lines = note.count("<br>") + 1
    return go.Figure(fig).update_layout(
        title={"text": fig.layout.title.text, "font": {"size": 40}, "subtitle": {"text": note, "font": {"size": 20}}},
        font_size=26, width=None, height=None, margin={"l": 130, "r": 60, "t": 90 + 26 * lines, "b": 140},
        legend={"orientation": "h", "y": -0.14}, xaxis_title_font_size=28,
        yaxis_title_font_size=28).update_traces(marker_size=16, line_width=4)


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


def save(results: dict, out_dir: Path, figures: dict[str, Any]) -> tuple[list[Path], str | None]:
    """results.json, results.csv, per_frame.csv and the page's RD `figures` (HTML, and PNG); the HTML figures load
    `plotly.min.js` from beside them (one copy, written there), so that they open offline. Returns the files and why
    PNG export failed (None if it did not)."""
    from comparisons.results import save_results, write_csv

    clean = view(results, [{k: v for k, v in r.items() if k not in APP_KEYS}
                           | {"bitstream": _relative(r["bitstream"], out_dir)} for r in results["records"]])
    files = [save_results(clean, Path(out_dir) / "results.json"), *write_csv(clean, out_dir)]
    folder = Path(out_dir) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    png_error = None
    for metric, figure in figures.items():
        figure.write_html(folder / f"rd_{metric}.html", include_plotlyjs="directory")
        files.append(folder / f"rd_{metric}.html")
        if png_error is None:
            try:
                figure.write_image(folder / f"rd_{metric}.png", width=960, height=600, scale=2)
                files.append(folder / f"rd_{metric}.png")
            except Exception as exc:  # kaleido missing or unable to render: keep the HTML figures
                png_error = f"PNG export failed ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
    if figures:
        files.append(folder / "plotly.min.js")  # written by the first write_html
    return files, png_error


def _relative(path: str, root: Path) -> str:
    """`path` relative to `root` when it lies inside it: saved files name no server folders."""
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return str(path)
