"""Run a comparison: every codec at every target bitrate, every available metric, one results dict."""
from __future__ import annotations

import datetime as _dt
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from comparisons.codecs import CODECS, Codec, CodecError, EncodeResult
from comparisons.ffmpeg import FFmpegError
from comparisons.metrics import METRICS, MetricError, default_metrics, get_metric, metric_availability
from comparisons.results import SCHEMA, save_results

METRIC_SPACE = "RGB at the original resolution (S2VC paper protocol); YUV-based metrics state their conversion"


def new_results(clip: dict[str, Any], frames: np.ndarray, fps: float, targets_kbps: list[float],
                metrics: list[str], tolerance: float = 0.05, intra_period: int | None = None) -> dict[str, Any]:
    """An empty results dict for a clip; records are appended by `add_record`."""
    t, h, w = frames.shape[:3]
    reasons = metric_availability()
    return {
        "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "clip": {"name": Path(str(clip.get("path", "clip"))).name, **clip, "width": w, "height": h, "fps": fps,
                 "frames": t},
        "test_conditions": {"frames": t, "fps": fps, "targets_kbps": list(targets_kbps), "tolerance": tolerance,
                            "metric_space": METRIC_SPACE,
                            "intra_period": intra_period or "one intra frame for the clip"},
        "metrics": {m: {"variant": METRICS[m].variant, "higher_is_better": METRICS[m].higher_is_better,
                        "unit": METRICS[m].unit} for m in metrics},
        "unavailable": {"codecs": {}, "metrics": {m: why for m, why in reasons.items() if why}},
        "records": [],
        "failures": [],
    }


def measure(ref: np.ndarray, result: EncodeResult, metrics: list[str], device: str = "cpu",
            state_dir: Path | None = None) -> dict[str, Any]:
    """The record of one encode: its codec facts plus every metric (clip value, per frame, seconds); the learned
    metrics run on ``device`` (resolved: "cpu" or "cuda[:N]"). With ``state_dir``, what a metric needs to be pooled
    over many clips (patch FID's Inception features) is saved there as ``<bitstream stem>.<metric>.npz`` and the
    record's ``metric_state`` names the file (relative to ``state_dir``'s parent)."""
    record: dict[str, Any] = {
        "codec": result.codec, "label": result.label, "traditional": getattr(CODECS.get(result.codec), "traditional", True),
        "version": result.version, "settings": result.settings,
        "command": result.command, "bitstream": result.bitstream_path, "bits": result.bits, "frames": result.frames,
        "fps": result.fps, "width": result.width, "height": result.height, "kbps": result.kbps, "bpp": result.bpp,
        "target_kbps": result.target_kbps, "within_tolerance": result.within_tolerance, "trials": result.trials,
        "encode_seconds": result.encode_seconds, "decode_seconds": result.decode_seconds,
        "decoder_check": result.decoder_check, "release_bpp": result.release_bpp,
        "metrics": {}, "per_frame": {}, "metric_seconds": {}, "metric_errors": {}, "metric_device": device,
    }
    if state_dir is not None:
        record["metric_state"] = {}
    for name in metrics:
        metric = get_metric(name, device)
        start = time.perf_counter()
        try:
            if state_dir is None:
                value, state = metric.evaluate(ref, result.decoded), {}
            else:
                value, state = metric.evaluate_with_state(ref, result.decoded)
        except MetricError as exc:
            record["metric_errors"][name] = str(exc)
            continue
        record["metric_seconds"][name] = time.perf_counter() - start
        if state:
            state_dir.mkdir(parents=True, exist_ok=True)
            path = state_dir / f"{Path(result.bitstream_path).stem}.{name}.npz"
            np.savez(path, **state)
            record["metric_state"][name] = f"{state_dir.name}/{path.name}"
        record["metrics"][name] = value.clip
        if value.per_frame is not None:
            record["per_frame"][name] = value.per_frame
    return record


def run_comparison(frames: np.ndarray, fps: float, codecs: list[Codec], targets_kbps: list[float],
                   out_dir: str | Path, metrics: list[str] | None = None, clip: dict[str, Any] | None = None,
                   on_record: Callable[[dict[str, Any], EncodeResult], None] | None = None,
                   log: Callable[[str], None] = print, device: str = "cpu") -> dict[str, Any]:
    """Encode, decode and measure; ``results.json`` in ``out_dir`` is rewritten after every record.

    ``metrics`` defaults to the available members of the default set for ``device`` (where the learned metrics
    run: "cpu" or "cuda[:N]"). Unavailable codecs are listed with their reason and skipped.
    ``on_record(record, encode_result)`` is called as each encode is measured (decoded frames included).
    A failed encode is logged and listed under ``failures``; the other encodes go on.
    """
    out = Path(out_dir)
    names = metrics if metrics is not None else default_metrics(device)
    tolerance = max((getattr(c, "tolerance", 0.05) for c in codecs), default=0.05)
    intra = next((getattr(c, "intra_period", None) for c in codecs if getattr(c, "intra_period", None)), None)
    results = new_results(clip or {}, frames, fps, targets_kbps, names, tolerance, intra)
    said: set[str] = set()  # metrics whose error was logged
    for codec in codecs:
        why = codec.availability()
        if why:
            results["unavailable"]["codecs"][codec.name] = why
            log(f"{codec.name}: skipped ({why})")
            continue
        for target in targets_kbps:
            log(f"{codec.name} @ {target:g} kbps: encoding")
            try:
                result = codec.encode(frames, fps, target, out / "bitstreams")
            except (CodecError, FFmpegError) as exc:
                results["failures"].append({"codec": codec.name, "target_kbps": target, "error": str(exc)})
                log(f"{codec.name} @ {target:g} kbps: failed ({exc})")
                continue
            log(f"{codec.name} @ {target:g} kbps: {result.kbps:.2f} kbps real in {len(result.trials)} trial(s), "
                f"measuring {len(names)} metrics")
            record = measure(frames, result, names, device)
            for name, error in record["metric_errors"].items():
                if name not in said:  # e.g. weights missing: said once, the run goes on without the metric
                    said.add(name)
                    log(f"metric {error}")
            results["records"].append(record)
            save_results(results, out / "results.json")
            if on_record:
                on_record(record, result)
    save_results(results, out / "results.json")
    return results
