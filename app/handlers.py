"""Pure functions behind the page: no Gradio here, only plain data in and out (unit-tested on tiny clips).

A *clip state* and a *run state* are plain dicts of numbers, strings and file paths: frames live in .npy files in the
session folder, so the state Gradio keeps per session stays small.
"""
from __future__ import annotations

import os
import platform
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from app import engine, players
from app.inputs import Clip, InputError, load_clip
from app.model_slot import ModelSlot
from app.settings import Limits, sample_clips
from app.session import run_dir

Progress = Callable[[float, str], None]
ORIGINAL = "original"
ZOOMS = (2, 4, 8)


def _no_progress(fraction: float, desc: str) -> None:
    """Progress sink for callers that show none."""


# ---------------------------------------------------------------- input


KEPT_INPUTS = 3  # loaded clips kept per session (older ones are deleted; a shown run may still use them)


def prepare_clip(upload: str | None, sample: str | None, raw_width: float | None, raw_height: float | None,
                 raw_fps: float | None, start: float | None, count: float | None, downscale: str, limits: Limits,
                 session: Path, current: dict | None = None) -> dict:
    """Load and check the uploaded clip, else the chosen sample; saves frames and a preview in the session folder.

    Returns `current` unchanged when it was loaded from the same file with the same settings."""
    path: str | Path | None = upload
    if not upload:
        clips = sample_clips()
        if sample not in clips:
            raise InputError("Upload a clip or pick one of the sample clips.")
        path = clips[sample]
    raw = (int(raw_width or 0), int(raw_height or 0))
    signature = repr((str(path), _mtime(path), start, count, downscale, raw, raw_fps, limits))
    if current and current.get("signature") == signature and Path(current["frames"]).is_file():
        return current
    clip = load_clip(path, limits, start=int(start or 0), count=int(count) if count else None, downscale=downscale,
                     raw_size=raw, raw_fps=float(raw_fps or 0))
    return save_clip(clip, session) | {"signature": signature}


def _mtime(path: str | Path | None) -> float | None:
    return Path(path).stat().st_mtime if path and Path(path).is_file() else None


def save_clip(clip: Clip, session: Path) -> dict:
    """Store a clip's frames and preview in the session folder (keeping the last few) and describe it."""
    folder = Path(session) / "input"
    folder.mkdir(parents=True, exist_ok=True)
    for old in sorted(folder.glob("frames-*.npy"))[:-(KEPT_INPUTS - 1)]:
        old.unlink(missing_ok=True)
        (folder / old.name.replace("frames-", "original-").replace(".npy", ".mp4")).unlink(missing_ok=True)
    stamp = f"{time.time_ns()}"
    frames_path = folder / f"frames-{stamp}.npy"
    np.save(frames_path, clip.frames)
    preview = players.write_preview(clip.frames, clip.fps, folder / f"original-{stamp}.mp4")
    width, height = clip.size
    return {"frames": str(frames_path), "preview": str(preview), "fps": clip.fps, "name": clip.name,
            "width": width, "height": height, "count": len(clip.frames), "start": clip.start,
            "notes": list(clip.notes), "description": clip.describe()}


def load_frames(path: str) -> np.ndarray:
    return np.load(path, mmap_mode="r")


def parse_rates(kbps: float | None, sweep: bool, sweep_text: str | None) -> list[float]:
    """The bitrates to run, the main one first; the sweep adds the listed ones (comma separated kbps)."""
    if kbps is None or not np.isfinite(kbps) or kbps <= 0:
        raise InputError("The target bitrate must be a positive number of kbps.")
    rates = [float(kbps)]
    if sweep:
        for item in (sweep_text or "").replace(";", ",").split(","):
            if not item.strip():
                continue
            try:
                value = float(item)
            except ValueError:
                raise InputError(f"Sweep bitrates must be numbers in kbps, got {item.strip()!r}.") from None
            if value <= 0:
                raise InputError(f"Sweep bitrates must be positive, got {value:g}.")
            if value not in rates:
                rates.append(value)
    return rates


def bpp_text(kbps: float | None, clip: dict | None) -> str:
    """The target as bits per pixel for the loaded clip."""
    if not clip or not kbps or kbps <= 0:
        return "bpp: load a clip to see it"
    bpp = kbps * 1000 / (clip["width"] * clip["height"] * clip["fps"])
    return f"= **{bpp:.4f} bpp** at {clip['width']}x{clip['height']} @ {clip['fps']:g} fps"


# ---------------------------------------------------------------- run


def run_comparison(clip: dict, rates: list[float], codecs: list[str], presets: dict[str, str], metrics: list[str],
                   session: Path, slot: ModelSlot, progress: Progress = _no_progress) -> Iterator[dict]:
    """Code the clip with each codec at each rate (main rate first) and measure `metrics`; yields the run state
    after every encode. The state's `results` is a comparisons results dict."""
    if not clip:
        raise InputError("Load a clip first.")
    if not codecs:
        raise InputError("Tick at least one codec.")
    if not metrics:
        raise InputError("Tick at least one metric.")
    out = run_dir(session, f"{time.strftime('%H%M%S')}")
    frames = np.array(load_frames(clip["frames"]))  # a writable copy in memory
    results = engine.new_results(clip, frames, rates, metrics)
    state: dict[str, Any] = {"dir": str(out), "results": results, "messages": [], "primary_kbps": rates[0],
                             "clip": clip, "conditions": run_conditions(clip, slot), "done": False}
    model = None
    if "s2vc" in codecs:
        progress(0.0, "loading the S2VC model (once per server)")
        model = slot.get()
        if model is None:
            results["unavailable"]["codecs"]["s2vc"] = f"S2VC model not available: {slot.error}"
        state["conditions"]["model"] = model_markdown(slot).replace("**", "")
    choices = {c.name: c for c in engine.codec_choices()}
    for name in codecs:
        if name != "s2vc" and choices[name].reason:
            results["unavailable"]["codecs"][name] = f"{choices[name].label} not available: {choices[name].reason}"
    state["messages"] += list(results["unavailable"]["codecs"].values())
    instances = {c: engine.make_codec(c, presets.get(c, ""), model) for c in codecs
                 if c not in results["unavailable"]["codecs"]}
    jobs = [(kbps, codec) for kbps in rates for codec in instances]
    for index, (kbps, codec) in enumerate(jobs):
        name = choices[codec].label
        progress(index / len(jobs), f"{name} @ {kbps:g} kbps: encoding (rate search), decoding, metrics")
        try:
            record, decoded = engine.encode_and_measure(instances[codec], frames, clip["fps"], kbps,
                                                        out / "bitstreams", metrics)
        except Exception as exc:  # one failing encoder must not stop the others
            results["failures"].append({"codec": codec, "target_kbps": kbps, "error": str(exc)})
            state["messages"].append(f"{name} @ {kbps:g} kbps failed: {exc}")
            yield _snapshot(state)
            continue
        for reason in record["metric_errors"].values():
            if reason not in state["messages"]:
                state["messages"].append(reason)
        record["key"] = f"{record['label']} · {engine.preset_of(record)} · {record['kbps']:.1f} kbps"
        stem = Path(record["bitstream"]).stem
        np.save(out / f"{stem}.npy", decoded)
        record["decoded"] = str(out / f"{stem}.npy")
        if kbps == rates[0]:
            progress((index + 0.9) / len(jobs), f"{name} @ {kbps:g} kbps: browser preview")
            record["preview"] = str(players.write_preview(decoded, clip["fps"], out / "previews" / f"{stem}.mp4"))
        results["records"].append(record)
        yield _snapshot(state)
    state["done"] = True
    progress(1.0, "done")
    yield _snapshot(state)


def _snapshot(state: dict) -> dict:
    """A copy of the run state as it is now (the run goes on appending to the original)."""
    results = state["results"]
    return {**state, "messages": list(state["messages"]),
            "results": {**results, "records": list(results["records"]), "failures": list(results["failures"])}}


def run_conditions(clip: dict, slot: ModelSlot) -> dict:
    """What the app adds to comparisons' test conditions: clip preparation, machine, model device."""
    return {"clip": f"{clip['name']}, {clip['width']}x{clip['height']}, {clip['count']} frames from frame "
                    f"{clip['start']} at {clip['fps']:g} fps", "preparation": "; ".join(clip["notes"]) or "none",
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores", "model device": slot.device}


# ---------------------------------------------------------------- results


def records(state: dict | None) -> list[dict]:
    return state["results"]["records"] if state else []


def player_records(state: dict | None) -> list[dict]:
    """Records shown in the players: one per codec at the main bitrate."""
    return [r for r in records(state) if r.get("preview")]


def results_table(state: dict | None) -> pd.DataFrame:
    """One row per encode: codec, preset, target and real rate, tolerance, clip metrics, times."""
    rows = []
    for r in records(state):
        row = {"codec": r["label"], "preset": engine.preset_of(r), "target kbps": r["target_kbps"],
               "kbps": round(r["kbps"], 2), "within 5%": "yes" if r["within_tolerance"] else "no",
               "bpp": round(r["bpp"], 5)}
        row |= {metric: round(value, 4) for metric, value in r["metrics"].items()}
        row |= {"encode s": round(r["encode_seconds"], 2), "decode s": round(r["decode_seconds"], 2)}
        rows.append(row)
    return pd.DataFrame(rows)


def bd_table(state: dict | None, anchor: str = "x265") -> pd.DataFrame:
    """BD-rates of every codec against the anchor for every measured metric (the sweep gives the curves)."""
    if not records(state):
        return pd.DataFrame()
    return engine.bd_table(state["results"], anchor).round(3)


def metrics_in(state: dict | None) -> list[str]:
    """Metrics measured on at least one result so far."""
    done = records(state)
    return [m for m in state["results"]["metrics"] if any(m in r["metrics"] for r in done)] if done else []


def rd_figures(state: dict | None) -> dict[str, Any]:
    """One rate-distortion(-perception) figure per measured metric."""
    return {metric: engine.rd_figure(state["results"], metric) for metric in metrics_in(state)}


def per_frame_figure(state: dict | None, metric: str | None) -> Any:
    """Per-frame values of `metric` for the main bitrate's encodes."""
    shown = player_records(state)
    if not shown or not any(r["per_frame"].get(metric) for r in shown):
        return None
    return engine.per_frame_figure(engine.view(state["results"], shown), metric)


def conditions_markdown(state: dict | None) -> str:
    """Test conditions (comparisons' and the app's), then each encoder's version, settings and command."""
    if not state:
        return ""
    conditions = state["results"]["test_conditions"] | state["conditions"]
    lines = [f"- **{key}**: {value}" for key, value in conditions.items()]
    lines.append("\n<details><summary>encoder versions, settings and exact command lines</summary>\n")
    for r in player_records(state):
        settings = ", ".join(f"{k}: {v}" for k, v in r["settings"].items())
        lines.append(f"- **{r['label']}** ({r['version']}): {settings}; `{r['command']}`")
    return "\n".join(lines) + "\n\n</details>"


def comparison_choices(state: dict | None) -> list[str]:
    return [ORIGINAL] + [r["key"] for r in player_records(state)]


def _frames_for(choice: str, clip: dict, state: dict | None) -> np.ndarray:
    if choice == ORIGINAL or not state:
        return load_frames(clip["frames"])
    for r in records(state):
        if r["key"] == choice:
            return load_frames(r["decoded"])
    raise InputError(f"{choice} is not among the results.")


def frame_views(clip: dict, state: dict | None, a: str, b: str, frame: int, center_x: float, center_y: float,
                zoom: int) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], np.ndarray]:
    """Frame `frame` of A and B, the same zoomed crop of both, and |A-B| x4 as an image (the original is the
    run's clip when there is a run)."""
    clip = state["clip"] if state else clip
    frames_a, frames_b = _frames_for(a, clip, state), _frames_for(b, clip, state)
    index = int(np.clip(frame, 0, len(frames_a) - 1))
    img_a, img_b = np.asarray(frames_a[index]), np.asarray(frames_b[index])
    crop = _crop_box(img_a.shape, center_x, center_y, int(zoom))
    crop_a, crop_b = (_enlarge(img[crop], int(zoom)) for img in (img_a, img_b))
    diff = np.abs(img_a.astype(np.int16) - img_b.astype(np.int16)).max(axis=2)
    diff = np.clip(diff * 4, 0, 255).astype(np.uint8)
    return (img_a, img_b), (crop_a, crop_b), np.repeat(diff[..., None], 3, axis=2)


def _crop_box(shape: tuple[int, ...], center_x: float, center_y: float, zoom: int) -> tuple[slice, slice]:
    height, width = shape[:2]
    ch, cw = max(height // zoom, 8), max(width // zoom, 8)
    top = int(np.clip(center_y * height - ch / 2, 0, height - ch))
    left = int(np.clip(center_x * width - cw / 2, 0, width - cw))
    return slice(top, top + ch), slice(left, left + cw)


def _enlarge(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement so that coding artefacts stay visible as pixels."""
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


# ---------------------------------------------------------------- downloads


def export_files(state: dict | None) -> dict[str, Any]:
    """Write results (JSON, CSV), RD figures (HTML, PNG), decoded videos, the HTML report and a zip of everything."""
    from app import report

    if not records(state):
        return {"files": [], "zip": None, "report": None, "messages": []}
    out, clip = Path(state["dir"]), state["clip"]
    files: list[Path] = [Path(r["bitstream"]) for r in records(state)]
    for r in player_records(state):
        files.append(players.write_lossless(load_frames(r["decoded"]), clip["fps"],
                                            out / "decoded" / f"{Path(r['bitstream']).stem}.mkv"))
    saved, png_error = engine.save(state["results"], out)
    files += saved
    report_path = report.write_report(state, rd_figures(state), results_table(state), bd_table(state),
                                      out / "report.html")
    files.append(report_path)
    zip_path = out / "s2vc_studio_results.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.relative_to(out))
    return {"files": [str(p) for p in files], "zip": str(zip_path), "report": str(report_path),
            "messages": [png_error] if png_error else []}


def model_markdown(slot: ModelSlot) -> str:
    """The line at the top of the page: which model, rate points, device and precision are live."""
    info = slot.describe()
    if slot.error:
        return f"**S2VC model not available:** {slot.error}. The baselines still run."
    if not slot.loaded:
        return f"**S2VC model:** {info['checkpoint']} on {info['device']} — {info['status']}."
    rates = info.get("rate_names") or info.get("rates") or "?"
    parts = [f"preset **{info.get('preset', '?')}**", f"rate points {rates}", f"device **{info.get('device')}**",
             f"precision **{info.get('precision', '?')}**"]
    params = info.get("parameters")
    if params:
        total = sum(params.values()) if isinstance(params, dict) else int(params)
        parts.append(f"{total / 1e6:.1f} M parameters")
    return "**S2VC model live:** " + ", ".join(parts)
