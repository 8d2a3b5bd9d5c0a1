"""Pure functions behind the page: no Gradio here, only plain data in and out (unit-tested on tiny clips).

A *clip state* and a *run state* are plain dicts of numbers, strings and file paths: frames live in .npy files in the
session folder, so the state Gradio keeps per session stays small.
"""
from __future__ import annotations

import contextlib
import functools
import os
import platform
import shutil
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from app import engine, players, session
from app.compose import enlarge
from app.inputs import Clip, InputError, load_clip
from app.lanes import Lane, Post, lower_priority, run_lanes
from app.model_slot import ModelSlot
from app.settings import Limits, sample_clips

Progress = Callable[[float, str], None]
ORIGINAL = "original"
ZOOMS = (2, 4, 8)


def _no_progress(fraction: float, desc: str) -> None:
    """Progress sink for callers that show none."""


# ---------------------------------------------------------------- input


KEPT_INPUTS = 3  # loaded clips kept per session (older ones are deleted; a shown run may still use them)
KEPT_VIEWS = 4  # frame views kept per session besides the newest


def prepare_clip(upload: str | None, sample: str | None, raw_width: float | None, raw_height: float | None,
                 raw_fps: float | None, start: float | None, count: float | None, downscale: str, limits: Limits,
                 session_path: Path, current: dict | None = None) -> dict:
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
    return save_clip(clip, session_path) | {"signature": signature}


def _mtime(path: str | Path | None) -> float | None:
    return Path(path).stat().st_mtime if path and Path(path).is_file() else None


def save_clip(clip: Clip, session_path: Path) -> dict:
    """Store a clip's frames and preview in the session folder (keeping the last few) and describe it."""
    folder = Path(session_path) / "input"
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


@dataclass(frozen=True)
class Job:
    """One encode of a run: a codec at a target bitrate."""

    kbps: float
    codec: str


@dataclass(frozen=True)
class Step:
    """A lane started work on a job (`what` is shown in the progress bar)."""

    job: Job
    what: str


@dataclass(frozen=True)
class Done:
    """A lane finished a step: the job's new or updated record, and/or an error message."""

    job: Job
    record: dict | None
    error: str | None = None


@dataclass(frozen=True)
class Work:
    """What every step of a run needs: the clip, the codecs, where the files go, and the event that stops it."""

    frames: np.ndarray
    fps: float
    out: Path
    metrics: list[str]
    primary_kbps: float
    codecs: dict[str, Any]
    labels: dict[str, str]
    stop: threading.Event
    device: str = "cpu"  # where the learned metrics run: the model's device


def run_comparison(clip: dict, rates: list[float], codecs: list[str], presets: dict[str, str], metrics: list[str],
                   session_path: Path, slot: ModelSlot, progress: Progress = _no_progress) -> Iterator[dict]:
    """Code the clip with each codec at each rate (main rate first) and measure `metrics`; yields the run state
    after every finished step. The state's `results` is a comparisons results dict.

    S2VC runs in one lane, the baselines in another (at a lower CPU priority, so that S2VC, the longest job, keeps
    a core); each result shows as soon as it is measured. S2VC's decoded frames are its encoder's reconstructions;
    the real decoder's check (bit-exact, decode time) runs after all its encodes and updates the records."""
    if not clip:
        raise InputError("Load a clip first.")
    if not codecs:
        raise InputError("Tick at least one codec.")
    if not metrics:
        raise InputError("Tick at least one metric.")
    out = session.run_dir(session_path, f"{time.strftime('%H%M%S')}")
    frames = np.array(load_frames(clip["frames"]))  # a writable copy in memory
    results = engine.new_results(clip, frames, rates, metrics)
    state: dict[str, Any] = {"dir": str(out), "results": results, "messages": [], "primary_kbps": rates[0],
                             "clip": clip, "conditions": run_conditions(clip, slot), "done": False,
                             "activity": "starting", "steps": "0 steps done"}
    model = None
    stop = threading.Event()
    if "s2vc" in codecs:
        if not slot.loaded:
            state["activity"] = "loading the S2VC model (once per server)"
            progress(0.0, state["activity"])
            yield _snapshot(state)  # the page shows this at once, not after the first result
        model = slot.get()
        if model is None:
            results["unavailable"]["codecs"]["s2vc"] = f"S2VC model not available: {slot.error}"
        else:
            model = engine.StoppableModel(model, stop)
        state["conditions"]["model"] = model_markdown(slot).replace("**", "")
    choices = {c.name: c for c in engine.codec_choices()}
    for name in codecs:
        if name != "s2vc" and choices[name].reason:
            results["unavailable"]["codecs"][name] = f"{choices[name].label} not available: {choices[name].reason}"
    state["messages"] += list(results["unavailable"]["codecs"].values())
    instances = {c: engine.make_codec(c, presets.get(c, ""), model) for c in codecs
                 if c not in results["unavailable"]["codecs"]}
    work = Work(frames, clip["fps"], out, metrics, rates[0], instances, {c: choices[c].label for c in instances},
                stop, slot.device)
    order = [Job(kbps, codec) for kbps in rates for codec in instances]
    if "s2vc" in instances and len(instances) > 1:
        state["conditions"]["timing"] = ("S2VC and the baselines were coded at the same time on the shared CPU "
                                         "(the baselines at a lower priority): their seconds include that")
    yield from _stream(state, work, order, session_path, progress)


def match_s2vc(state: dict, session_path: Path, progress: Progress = _no_progress) -> Iterator[dict]:
    """Code the run's baselines again at the bitrate S2VC really reached (when it could not reach the target),
    with the same presets and metrics; S2VC's result stays, and the players show it beside the new encodes."""
    s2vc = next((r for r in player_records(state) if r["codec"] == "s2vc"), None)
    if s2vc is None:
        raise InputError("There is no S2VC result to match.")
    baselines = {r["codec"]: r for r in player_records(state) if r["codec"] != "s2vc"}
    if not baselines:
        raise InputError("There are no baselines to run again: tick some and run.")
    kbps = round(s2vc["kbps"], 1)
    results = state["results"]
    kept = [r if r is s2vc else {k: v for k, v in r.items() if k != "preview"} for r in results["records"]]
    results = results | {"records": kept, "failures": list(results["failures"]),
                         "test_conditions": results["test_conditions"] | {
                             "targets_kbps": [*results["test_conditions"]["targets_kbps"], kbps]}}
    new = {**state, "results": results, "messages": list(state["messages"]), "primary_kbps": kbps, "done": False}
    labels = {c: r["label"] for c, r in baselines.items()}
    codecs = {c: engine.make_codec(c, str(r["settings"].get("preset", ""))) for c, r in baselines.items()}
    frames = np.array(load_frames(state["clip"]["frames"]))
    work = Work(frames, state["clip"]["fps"], Path(state["dir"]), list(results["metrics"]), kbps, codecs, labels,
                threading.Event(), s2vc.get("metric_device", "cpu"))
    yield from _stream(new, work, [Job(kbps, c) for c in codecs], session_path, progress)


def _stream(state: dict, work: Work, order: list[Job], session_path: Path, progress: Progress) -> Iterator[dict]:
    """Run the jobs in their lanes, putting each finished step into `state` (after the records it already has) and
    yielding a snapshot after every step started or finished (`activity` says what runs, `steps` how far it is);
    stops, and leaves nothing, when the browser session closes: the work in flight ends at its next frame (S2VC)
    or encode (the baselines)."""
    shown: dict[Job, dict] = {}
    kept = list(state["results"]["records"])
    running: dict[str, str] = {}
    steps = len(order) + sum(job.codec == "s2vc" for job in order)  # encodes, then S2VC's decoder checks
    finished = 0
    session.watch(session_path, work.stop)  # a closed tab stops the run; what it was still writing goes too
    lanes = run_lanes(_lanes(work, order), work.stop, functools.partial(session.discard_if_closed, session_path))
    with contextlib.closing(lanes) as events:
        for event in events:
            if session.is_closed(session_path):
                return
            lane = "s2vc" if event.job.codec == "s2vc" else "baselines"
            if isinstance(event, Step):
                running[lane] = f"{work.labels[event.job.codec]} @ {event.job.kbps:g} kbps: {event.what}"
            else:
                running.pop(lane, None)
                failed_s2vc = event.record is None and event.job.codec == "s2vc"
                finished += 2 if failed_s2vc else 1  # a failed S2VC encode has no decoder check to wait for
                _apply(state, shown, kept, order, event, work.labels[event.job.codec])
            state["activity"] = " · ".join(running.values()) or "finishing"
            state["steps"] = f"{finished} of {steps} steps done"
            progress(finished / steps, state["activity"])
            yield _snapshot(state)
    if session.is_closed(session_path):  # the lanes stopped without a word: no "done" for a closed page
        return
    state |= {"done": True, "activity": "done", "steps": f"{steps} of {steps} steps done"}
    progress(1.0, "done")
    yield _snapshot(state)


def _lanes(work: Work, order: list[Job]) -> dict[str, Lane]:
    """The run's lanes: S2VC's encodes then its decoder checks, and the baselines one after another."""
    s2vc = [job for job in order if job.codec == "s2vc"]
    baselines = [job for job in order if job.codec != "s2vc"]
    lanes: dict[str, Lane] = {}
    if s2vc:
        lanes["s2vc"] = functools.partial(_s2vc_lane, work, s2vc)
    if baselines:
        lanes["baselines"] = functools.partial(_baseline_lane, work, baselines, bool(s2vc))
    return lanes


def _s2vc_lane(work: Work, jobs: list[Job], post: Post, stop: threading.Event) -> None:
    """Encode and measure S2VC at every bitrate (each result posted at once), then check each with the decoder."""
    encoded = []
    for job in jobs:
        if stop.is_set():
            return
        post(Step(job, "rate point choice, encoding, metrics"))
        done, result = _encode(work, job)
        if stop.is_set():  # the page closed during the encode: nothing more is measured or posted
            return
        post(done)
        if result is not None:
            encoded.append((job, done.record, result))
    for job, record, result in encoded:
        if stop.is_set():
            return
        post(Step(job, "decoder check (decoding the bitstream, comparing with the shown frames)"))
        post(_check(work, job, record, result))


def _baseline_lane(work: Work, jobs: list[Job], yield_cpu: bool, post: Post,
                   stop: threading.Event) -> None:
    """Encode and measure the baselines one after another (at a lower CPU priority while S2VC runs)."""
    if yield_cpu:
        lower_priority()
    for job in jobs:
        if stop.is_set():
            return
        post(Step(job, "encoding (rate search), decoding, metrics"))
        done = _encode(work, job)[0]
        if not stop.is_set():
            post(done)


def _encode(work: Work, job: Job) -> tuple[Done, Any]:
    """Encode, decode and measure one job; saves the decoded frames and, at the main bitrate, a browser preview.
    A failing encoder gives an error (the other encodes go on) and no EncodeResult."""
    try:
        record, result = engine.encode_and_measure(work.codecs[job.codec], work.frames, work.fps, job.kbps,
                                                   work.out / "bitstreams", work.metrics, work.stop,
                                                   work.device)
    except Exception as exc:  # one failing encoder must not stop the others
        return Done(job, None, str(exc)), None
    record["key"] = engine.record_key(record)
    stem = Path(record["bitstream"]).stem
    np.save(work.out / f"{stem}.npy", result.decoded)
    record["decoded"] = str(work.out / f"{stem}.npy")
    if job.kbps == work.primary_kbps:
        record["preview"] = str(players.write_preview(result.decoded, work.fps, work.out / "previews" / f"{stem}.mp4"))
    return Done(job, record), result


def _check(work: Work, job: Job, record: dict, result: Any) -> Done:
    """The decoder check of one S2VC result: its record with the decode time, or marked failed."""
    try:
        return Done(job, record | engine.check_decoder(work.codecs[job.codec], result))
    except Exception as exc:  # the encode's result stays, flagged
        return Done(job, record | {"decoder_check": f"failed: {exc}"}, f"decoder check failed: {exc}")


def _apply(state: dict, shown: dict[Job, dict], kept: list[dict], order: list[Job], done: Done, label: str) -> None:
    """Put a finished step into the run state: records (after the `kept` ones) in the run's job order, failures
    and messages."""
    results, name = state["results"], f"{label} @ {done.job.kbps:g} kbps"
    if done.record is None:
        results["failures"].append({"codec": done.job.codec, "target_kbps": done.job.kbps, "error": done.error})
        state["messages"].append(f"{name} failed: {done.error}")
        return
    if done.error:
        state["messages"].append(f"{name}: {done.error}")
    for reason in done.record["metric_errors"].values():
        if reason not in state["messages"]:
            state["messages"].append(reason)
    shown[done.job] = done.record
    results["records"] = kept + [shown[job] for job in order if job in shown]


def _snapshot(state: dict) -> dict:
    """A copy of the run state as it is now (the run goes on appending to the original)."""
    results = state["results"]
    return {**state, "messages": list(state["messages"]),
            "results": {**results, "records": list(results["records"]), "failures": list(results["failures"])}}


def run_conditions(clip: dict, slot: ModelSlot) -> dict:
    """What the app adds to comparisons' test conditions: clip preparation, machine, model device."""
    return {"clip": f"{clip['name']}, {clip['width']}x{clip['height']}, {clip['count']} frames from frame "
                    f"{clip['start']} at {clip['fps']:g} fps", "preparation": "; ".join(clip["notes"]) or "none",
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores", "model device": slot.device,
            "model checkpoint": Path(slot.checkpoint).name if slot.checkpoint else "bundled default (assets/models)"}


def saved_run_names(path: str | Path) -> list[str]:
    """The runs a saved file or folder holds (several for a suite), by their folder inside it; [] if unreadable."""
    from app.bundle import saved_runs

    try:
        return saved_runs(Path(path))
    except (OSError, zipfile.BadZipFile):
        return []


def open_run(path: str | Path | None, session_path: Path, sequence: str | None = None) -> tuple[dict, dict]:
    """The clip and run state of a saved run (the exported zip, or a results folder), as after a live run; no
    model is needed. Its files go into a fresh run folder of the session."""
    from app.bundle import open_saved

    if not path:
        raise InputError("Choose the exported .zip (or give a results folder) to open a saved run.")
    clip, state = open_saved(path, session.run_dir(session_path, f"opened-{time.strftime('%H%M%S')}"), sequence)
    inputs = Path(session_path) / "input"  # the clip outlives the run folder, which the next run replaces
    inputs.mkdir(exist_ok=True)
    stamp = time.time_ns()
    clip["frames"] = str(Path(clip["frames"]).replace(inputs / f"frames-{stamp}.npy"))
    clip["preview"] = str(shutil.copyfile(clip["preview"], inputs / f"original-{stamp}.mp4"))
    clip["opened"] = True
    return clip, state


# ---------------------------------------------------------------- results


DEMO_MODEL_NOTE = ("**This S2VC is the small CPU demonstration model** (the bundled `tiny` preset, a few hours of CPU "
                   "training), **not the paper's**: its quality is far below the paper's results. To show the real "
                   "codec, load the official release: `python -m app --checkpoint /path/to/s2vc_release` (the "
                   "folder holding `I_ckpts/`, `P_ckpts/` and `SD_ckpts/`; see the README, \"The official "
                   "checkpoints\"), on a GPU.")


def demo_model_note(state: dict | None) -> str:
    """The plain warning shown next to S2VC's results when they come from the bundled tiny model."""
    tiny = any(r["codec"] == "s2vc" and "preset=tiny" in str(r.get("version", "")) for r in records(state))
    return DEMO_MODEL_NOTE if tiny else ""


def off_target(record: dict) -> str | None:
    """Why an S2VC result is not at the bitrate asked (its rate points cannot reach it), or None."""
    if record["codec"] != "s2vc" or record["within_tolerance"]:
        return None
    target, kbps = record["target_kbps"], record["kbps"]
    side = "below" if kbps < target else "above"
    return (f"S2VC cannot reach {target:g} kbps on this clip: its nearest rate point ({engine.preset_of(record)}) "
            f"gives {kbps:.1f} kbps, {abs(kbps / target - 1):.0%} {side} the target, so the baselines at "
            f"{target:g} kbps spend {target / kbps:.2f}x S2VC's bits")


def off_target_notes(state: dict | None) -> list[str]:
    """`off_target` of every shown S2VC result."""
    return [note for r in player_records(state) if (note := off_target(r))]


def can_match(state: dict | None) -> bool:
    """Whether a finished run shows S2VC off its target beside baselines at another bitrate."""
    shown = player_records(state)
    s2vc = next((r for r in shown if r["codec"] == "s2vc" and off_target(r)), None)
    return bool(state and state["done"] and s2vc and any(
        r["codec"] != "s2vc" and abs(r["target_kbps"] - round(s2vc["kbps"], 1)) > 0.05 for r in shown))


def tile_label(record: dict) -> str:
    """A player's label: "codec · preset · kbps", flagged when S2VC missed its target."""
    flag = f" ⚠️ target was {record['target_kbps']:g}" if off_target(record) else ""
    return record["key"] + flag


def records(state: dict | None) -> list[dict]:
    return state["results"]["records"] if state else []


def player_records(state: dict | None) -> list[dict]:
    """Records shown in the players: one per codec at the main bitrate."""
    return [r for r in records(state) if r.get("preview")]


TABLE_COLUMNS = ["codec", "preset", "target kbps", "kbps", "within 5%", "bpp", "encode s", "decode s",
                 "decoder check"]  # and one column per metric between bpp and encode s


def results_table(state: dict | None) -> pd.DataFrame:
    """One row per encode: codec, preset, target and real rate, tolerance, clip metrics, times."""
    rows = []
    for r in records(state):
        row = {"codec": r["label"], "preset": engine.preset_of(r), "target kbps": r["target_kbps"],
               "kbps": round(r["kbps"], 2), "within 5%": "yes" if r["within_tolerance"] else "no",
               "bpp": round(r["bpp"], 5)}
        if r.get("release_bpp") is not None:  # S2VC: the rate as the official release reports it
            row["bpp (release-style)"] = round(r["release_bpp"], 5)
        row |= {metric: round(value, 4) for metric, value in r["metrics"].items()}
        row |= {"encode s": round(r["encode_seconds"], 2), "decode s": _decode_seconds(r),
                "decoder check": r.get("decoder_check") or "–"}
        rows.append(row)
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=TABLE_COLUMNS)


def _decode_seconds(record: dict) -> float | str:
    """The decode time, or why there is none (S2VC's decoder check still to run, or failed)."""
    seconds = record["decode_seconds"]
    if seconds is not None:
        return round(seconds, 2)
    return "check pending" if record.get("decoder_check") == "pending" else "–"


def bd_table(state: dict | None, anchor: str = "x265") -> pd.DataFrame:
    """BD-rates of every codec against the anchor for every measured metric (the sweep gives the curves)."""
    if not records(state):
        return pd.DataFrame(columns=["codec", "anchor", "metric", "bd_rate_percent", "bd_quality", "note"])
    return engine.bd_table(state["results"], anchor).round(3)


def metrics_in(state: dict | None) -> list[str]:
    """Metrics measured on at least one result so far."""
    done = records(state)
    return [m for m in state["results"]["metrics"] if any(m in r["metrics"] for r in done)] if done else []


def rd_figures(state: dict | None, s2vc: str = "S2VC") -> dict[str, Any]:
    """One rate-distortion(-perception) figure per measured metric (S2VC's curve named `s2vc`)."""
    return {metric: engine.rd_figure(state["results"], metric, s2vc) for metric in metrics_in(state)}


def s2vc_name(state: dict) -> str:
    """What slide media call S2VC (the small CPU demonstration model, or the checkpoint's name)."""
    return engine.s2vc_name(state["results"], state.get("conditions", {}))


def run_settings(state: dict) -> dict[str, Any]:
    """The settings a run was made with, to put back on the page when it is opened again: the target (the run's
    first), the sweep's other targets, the codecs, their presets and the metrics."""
    results = state["results"]
    targets = list(results["test_conditions"]["targets_kbps"]) or [state["primary_kbps"]]
    matched = state["primary_kbps"] if state["primary_kbps"] != targets[0] else None  # "at S2VC's real bitrate"
    codecs = list(dict.fromkeys([r["codec"] for r in results["records"]] + [f["codec"] for f in results["failures"]]))
    presets = {r["codec"]: str(r["settings"]["preset"]) for r in results["records"]
               if r["codec"] != "s2vc" and "preset" in r["settings"]}
    return {"kbps": targets[0], "sweep": [k for k in targets[1:] if k != matched], "codecs": codecs,
            "presets": presets, "metrics": list(results["metrics"])}


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
        lines.append(f"- **{r['label']}** ({r['version']}): {settings}; `{public_command(r, state)}`")
    return "\n".join(lines) + "\n\n</details>"


def public_command(record: dict, state: dict) -> str:
    """A record's command line with the server's run folder left out (paths relative to the downloaded files)."""
    return record["command"].replace(f"{Path(state['dir']).resolve()}/", "").replace(f"{state['dir']}/", "")


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
    crop = crop_box(img_a.shape, center_x, center_y, int(zoom))
    crop_a, crop_b = (enlarge(img[crop], int(zoom)) for img in (img_a, img_b))
    diff = np.abs(img_a.astype(np.int16) - img_b.astype(np.int16)).max(axis=2)
    diff = np.clip(diff * 4, 0, 255).astype(np.uint8)
    return (img_a, img_b), (crop_a, crop_b), np.repeat(diff[..., None], 3, axis=2)


def save_views(session_path: Path, images: dict[str, np.ndarray]) -> dict[str, str]:
    """PNG files of the frame views in the session folder, so that the page's images go with the session instead
    of piling up in Gradio's cache; views older than the last few are removed (the page may still be fetching
    those)."""
    from PIL import Image

    folder = Path(session_path) / "views"
    folder.mkdir(parents=True, exist_ok=True)
    stamps = sorted({int(p.stem.rsplit("-", 1)[1]) for p in folder.glob("*-*.png")})
    for old in stamps[:-KEPT_VIEWS]:
        for path in folder.glob(f"*-{old}.png"):
            path.unlink(missing_ok=True)
    stamp = time.time_ns()  # a new name each time: the browser must not show a cached image
    paths = {}
    for name, image in images.items():
        paths[name] = str(folder / f"{name}-{stamp}.png")
        Image.fromarray(np.ascontiguousarray(image)).save(paths[name], compress_level=1)
    return paths


def crop_box(shape: tuple[int, ...], center_x: float, center_y: float, zoom: int) -> tuple[slice, slice]:
    height, width = shape[:2]
    ch, cw = max(height // zoom, 8), max(width // zoom, 8)
    top = int(np.clip(center_y * height - ch / 2, 0, height - ch))
    left = int(np.clip(center_x * width - cw / 2, 0, width - cw))
    return slice(top, top + ch), slice(left, left + cw)


# ---------------------------------------------------------------- downloads


def export_files(state: dict | None) -> dict[str, Any]:
    """Write results (JSON, CSV), RD figures (HTML, PNG), decoded videos, the HTML report and a zip of everything;
    the zip also holds the original, the previews and `studio.json`, so that the app can open it again."""
    from app import bundle, report

    if not records(state):
        return {"files": [], "zip": None, "report": None, "messages": []}
    out, clip = Path(state["dir"]), state["clip"]
    files: list[Path] = [Path(r["bitstream"]) for r in records(state)]
    decoded, previews = {}, {}
    for r in player_records(state):
        decoded[r["key"]] = players.write_lossless(load_frames(r["decoded"]), clip["fps"],
                                                   out / "decoded" / f"{Path(r['bitstream']).stem}.mkv")
        previews[r["key"]] = _copy_into(Path(r["preview"]), out / "previews")
    files += decoded.values()
    saved, png_error = engine.save(state["results"], out, rd_figures(state))
    files += saved
    report_path = report.write_report(state, rd_figures(state), results_table(state), bd_table(state),
                                      out / "report.html")
    files.append(report_path)
    original = players.write_lossless(load_frames(clip["frames"]), clip["fps"], out / bundle.ORIGINAL_FILE)
    original_preview = _copy_into(Path(clip["preview"]), out / "previews", "original.mp4")
    manifest = bundle.write_manifest(state, out, decoded, previews, original, original_preview)
    zip_path = out / "s2vc_studio_results.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in [*files, original, *previews.values(), original_preview, manifest]:
            archive.write(path, path.relative_to(out))
    return {"files": [str(p) for p in files], "zip": str(zip_path), "report": str(report_path),
            "messages": [png_error] if png_error else []}


def _copy_into(path: Path, folder: Path, name: str | None = None) -> Path:
    """`path` inside `folder` (a hard link or copy when it lies elsewhere)."""
    target = folder / (name or path.name)
    if path.resolve() == target.resolve():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    try:
        os.link(path, target)
    except OSError:
        shutil.copyfile(path, target)
    return target


def model_markdown(slot: ModelSlot) -> str:
    """The line at the top of the page: which model, rate points, device and precision are live."""
    info = slot.describe()
    if slot.error:
        return f"**S2VC model not available:** {slot.error}. The baselines still run."
    if not slot.loaded:
        return f"**S2VC model:** {info['checkpoint']} on {info['device']} — {info['status']}."
    rates = info.get("rate_names") or info.get("rates") or "?"
    rates = ", ".join(map(str, rates)) if isinstance(rates, (list, tuple)) else rates
    parts = [f"preset **{info.get('preset', '?')}**", f"rate points {rates}", f"device **{info.get('device')}**",
             f"precision **{info.get('precision', '?')}**"]
    params = info.get("parameters")
    if params:
        total = sum(params.values()) if isinstance(params, dict) else int(params)
        parts.append(f"{total / 1e6:.1f} M parameters")
    return "**S2VC model live:** " + ", ".join(parts)
