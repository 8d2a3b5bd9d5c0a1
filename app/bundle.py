"""Saved runs: the manifest the exported zip carries beside results.json, and opening a saved run as a run state.

A saved run is the zip the app exports (or that zip unpacked), or a folder written by `python -m comparisons run`.
Opening needs no model: the bundle holds every shown codec's decoded frames (FFV1, bit-exact), the original and
the browser previews; a `comparisons run` folder holds bitstreams only, so the baselines are decoded with FFmpeg
and the original is read from the clip path results.json names. A folder holding several runs (a suite: one
results.json per sequence) lists them, and one is picked by `sequence`.
"""
from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np

from app import engine, players
from app.inputs import InputError

MANIFEST = "studio.json"
MANIFEST_SCHEMA = "s2vc-studio/bundle/1"
RESULTS = "results.json"
ORIGINAL_FILE = "original.mkv"
CLIP_KEYS = ("name", "fps", "width", "height", "count", "start", "notes", "description")


def write_manifest(state: dict, out: Path, decoded: dict[str, Path], previews: dict[str, Path],
                   original: Path, original_preview: Path) -> Path:
    """`studio.json` in `out`: what the page needs beyond results.json (clip, conditions, messages, main bitrate,
    and for each record, in results.json's order, its page label and its files relative to `out`)."""
    def rel(path: Path | None) -> str | None:
        return Path(path).relative_to(out).as_posix() if path else None

    manifest = {"schema": MANIFEST_SCHEMA, "clip": {k: state["clip"][k] for k in CLIP_KEYS},
                "original": rel(original), "original_preview": rel(original_preview),
                "primary_kbps": state["primary_kbps"], "conditions": state["conditions"],
                "messages": state["messages"],
                "records": [{"key": r["key"], "decoded": rel(decoded.get(r["key"])),
                             "preview": rel(previews.get(r["key"]))} for r in state["results"]["records"]]}
    path = Path(out) / MANIFEST
    path.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return path


def saved_runs(source: Path) -> list[str]:
    """The runs in a folder or zip, by path inside it ("." for the top): every folder holding a results.json (an
    exported bundle, a `comparisons run` output, or a suite's sequences)."""
    if Path(source).is_dir():
        return sorted(p.parent.relative_to(source).as_posix() for p in Path(source).rglob(RESULTS))
    with zipfile.ZipFile(source) as archive:
        return sorted(Path(m).parent.as_posix() for m in archive.namelist() if Path(m).name == RESULTS)


def open_saved(path: str | Path, out: Path, sequence: str | None = None) -> tuple[dict, dict]:
    """The clip and run state of a saved run (zip or folder), its files unpacked or converted into `out`."""
    source = Path(path).expanduser()
    if not source.exists():
        raise InputError(f"{source} does not exist; give the exported .zip or a results folder.")
    if source.is_file() and not zipfile.is_zipfile(source):
        raise InputError(f"{source.name} is neither a zip exported by S2VC Studio nor a results folder.")
    runs = saved_runs(source)
    if not runs:
        raise InputError(f"{source.name} holds no {RESULTS}: not a saved run.")
    if sequence is None and len(runs) > 1:
        raise InputError(f"{source.name} holds {len(runs)} runs; pick one: {', '.join(runs)}.")
    if sequence is not None and sequence not in runs:
        raise InputError(f"{source.name} has no run {sequence!r}; it holds: {', '.join(runs)}.")
    name = sequence if sequence is not None else runs[0]
    run = out / "saved"  # everything the page serves lives in the session folder
    if source.is_dir():
        origin = source / name
        shutil.copytree(origin, run, ignore=shutil.ignore_patterns("*.npy"))
    else:
        with zipfile.ZipFile(source) as archive:
            prefix = "" if name == "." else f"{name}/"
            members = [m for m in archive.namelist() if m.startswith(prefix)]
            archive.extractall(out / "unzipped", members)  # zipfile drops absolute paths and '..' from names
        (out / "unzipped" / prefix).rename(run)
        origin = source.parent
    results = _load_results(run)
    if (run / MANIFEST).is_file():
        clip, state = _from_bundle(run, results, out)
    else:
        clip, state = _from_comparisons(run, origin, results, out)
    state["conditions"] = {"opened from": source.name} | state["conditions"]
    return clip, state


def _load_results(run: Path) -> dict:
    from comparisons.results import load_results

    try:
        results = load_results(run / RESULTS)
    except ValueError as exc:
        raise InputError(str(exc).replace(str(run / RESULTS), RESULTS)) from None
    if not results["records"]:
        raise InputError(f"{RESULTS} holds no results (every encode failed or the run was stopped early).")
    for record in results["records"]:
        record["bitstream"] = str(_bitstream(run, record["bitstream"]))
    return results


def _bitstream(run: Path, stored: str) -> Path:
    """A record's bitstream: relative to the run folder, else where it was written, else in bitstreams/."""
    for candidate in (run / stored, Path(stored), run / "bitstreams" / Path(stored).name):
        if candidate.is_file():
            return candidate
    return run / stored


def _from_bundle(run: Path, results: dict, out: Path) -> tuple[dict, dict]:
    """A bundle the app exported: the manifest gives the page labels and the decoded frames and previews."""
    manifest = json.loads((run / MANIFEST).read_text(encoding="utf-8"))
    if manifest.get("schema") != MANIFEST_SCHEMA:
        raise InputError(f"{MANIFEST}: schema {manifest.get('schema')!r} is not {MANIFEST_SCHEMA!r}.")
    if len(manifest["records"]) != len(results["records"]):
        raise InputError(f"{MANIFEST} lists {len(manifest['records'])} results, {RESULTS} "
                         f"{len(results['records'])}: the bundle is inconsistent.")
    info = manifest["clip"]
    frames = _frames_file(run / manifest["original"], info["fps"], out / "original.npy")
    clip = info | {"frames": str(frames), "preview": str(run / manifest["original_preview"])}
    for record, saved in zip(results["records"], manifest["records"]):
        record["key"] = saved["key"]
        if saved["decoded"]:
            stem = Path(record["bitstream"]).stem
            record["decoded"] = str(_frames_file(run / saved["decoded"], info["fps"], out / f"{stem}.npy"))
            record["preview"] = str(run / saved["preview"])
    state = {"dir": str(out), "results": results, "messages": list(manifest["messages"]),
             "primary_kbps": manifest["primary_kbps"], "clip": clip, "conditions": manifest["conditions"],
             "done": True}
    return clip, state


def _from_comparisons(run: Path, origin: Path, results: dict, out: Path) -> tuple[dict, dict]:
    """A `comparisons run` folder: the original from the clip path it names, the baselines' frames decoded from
    their bitstreams; S2VC's frames would need the model, so S2VC shows in the tables and plots only."""
    from model.video_io import VideoReadError, read_video

    info = results["clip"]
    fps, count = float(info["fps"]), int(info["frames"])
    source = _clip_source(origin, str(info.get("path") or info["name"]))
    size = (int(info["width"]), int(info["height"])) if source.suffix.lower() == ".yuv" else None
    try:
        original, _ = read_video(source, start=int(info.get("start") or 0), frames=count, size=size, fps=fps)
    except VideoReadError as exc:
        raise InputError(f"the original clip could not be read: {exc}") from None
    np.save(out / "original.npy", original)
    clip = {"frames": str(out / "original.npy"), "fps": fps, "name": info["name"], "width": int(info["width"]),
            "height": int(info["height"]), "count": count, "start": int(info.get("start") or 0), "notes": [],
            "preview": str(players.write_preview(original, fps, out / "previews" / "original.mp4"))}
    clip["description"] = (f"**{clip['name']}**: {count} frames from frame {clip['start']}, {clip['width']}x"
                           f"{clip['height']}, {fps:g} fps ({count / fps:.2f} s), opened from a saved run")
    messages, shown = [], set()
    for record in results["records"]:
        record["key"] = engine.record_key(record)
        if record["codec"] in shown:
            continue
        decoded = engine.decode_bitstream(record)
        if decoded is None:
            messages.append(f"{record['label']}: its decoded frames are not saved in a `comparisons run` folder and "
                            "decoding its bitstream needs the model, so it is in the tables and plots but not in "
                            "the players (the app's exported zip keeps them)")
            continue
        shown.add(record["codec"])
        stem = Path(record["bitstream"]).stem
        np.save(out / f"{stem}.npy", decoded)
        record["decoded"] = str(out / f"{stem}.npy")
        record["preview"] = str(players.write_preview(decoded, fps, out / "previews" / f"{stem}.mp4"))
    state = {"dir": str(out), "results": results, "messages": messages,
             "primary_kbps": results["records"][0]["target_kbps"], "clip": clip, "conditions": {}, "done": True}
    return clip, state


def _clip_source(origin: Path, stored: str) -> Path:
    """The original clip named in results.json: as written (absolute, or relative to the working folder or to the
    saved run's folder), else beside or inside that folder."""
    for candidate in (Path(stored), origin / stored, origin.parent / Path(stored).name, origin / Path(stored).name):
        if candidate.exists():
            return candidate
    raise InputError(f"the original clip {stored} named in {RESULTS} is not found (looked beside the run folder "
                     "too); put it there to open this run.")


def _frames_file(video: Path, fps: float, npy: Path) -> Path:
    """A bundle's lossless video as the .npy file the page reads frames from."""
    from model.video_io import VideoReadError, read_video

    try:
        frames, _ = read_video(video, fps=fps)
    except VideoReadError as exc:
        raise InputError(f"{video.name} in the bundle could not be read: {exc}") from None
    np.save(npy, frames)
    return npy
