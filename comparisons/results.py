"""The one JSON result schema of a comparison run, and its pandas/CSV views.

``results.json``::

    {"schema": "s2vc-studio/comparison/1", "created": ISO time,
     "clip": {"path", "name", "width", "height", "fps", "frames", "start"},
     "test_conditions": {"frames", "fps", "targets_kbps", "tolerance", "metric_space", "intra_period"},
     "metrics": {name: {"variant", "higher_is_better", "unit"}},   # the metrics computed, with exact variants
     "unavailable": {"codecs": {name: reason}, "metrics": {name: reason}},
     "records": [{"codec", "label", "traditional", "version", "settings", "command", "bitstream", "bits",
                  "frames", "fps", "width", "height", "kbps", "bpp", "target_kbps", "within_tolerance", "trials",
                  "encode_seconds", "decode_seconds", "decoder_check", "release_bpp", "metrics": {name: clip value},
                  "per_frame": {name: [values]}, "metric_seconds": {name: s}, "metric_errors": {name: reason}}],
     "failures": [{"codec", "target_kbps", "error"}]}

``decoder_check`` is null where the decoded frames are the real decoder's output (the baselines); for S2VC, whose
decoded frames are the encoder's reconstructions, it is "bit-exact" once the real decoder reproduced every frame,
and "pending" (with a null ``decode_seconds``) while that check has not run.

``release_bpp`` (S2VC only, null for the others) is a second rate figure: the rate as the official S2VC release
reports it (the I-frame's estimated y bits over the padded area, P-frames' payload bits, the mean of the frames;
model/release_rate.py), for setting results beside the paper's. ``bits``, ``kbps`` and ``bpp`` are the real file's.

Non-finite numbers (PSNR of identical frames, frames without a temporal value) are written as the strings
"inf", "-inf" and "nan", so the file is strict JSON; `load_results` turns them back into floats.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

SCHEMA = "s2vc-studio/comparison/1"
_NONFINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def _encode(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, str) and value in _NONFINITE:
        return _NONFINITE[value]
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def save_results(results: dict[str, Any], path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_encode(results), indent=1, allow_nan=False))
    tmp.replace(p)
    return p


def load_results(path: str | Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable results file ({type(exc).__name__}: {exc})") from None
    if data.get("schema") != SCHEMA:
        raise ValueError(f"{path}: schema {data.get('schema')!r} is not {SCHEMA!r}")
    return _decode(data)


def records_table(results: dict[str, Any]) -> pd.DataFrame:
    """One row per encode: codec, rate, times, tolerance flag and one column per metric (clip value)."""
    rows = []
    for r in results["records"]:
        row = {k: r[k] for k in ("codec", "label", "target_kbps", "kbps", "bpp", "within_tolerance", "bits",
                                 "encode_seconds", "decode_seconds")}
        row["preset"] = r["settings"].get("preset")
        row["release_bpp"] = r.get("release_bpp")
        row.update(r["metrics"])
        rows.append(row)
    columns = ["codec", "label", "preset", "target_kbps", "kbps", "bpp", "release_bpp", "within_tolerance", "bits",
               "encode_seconds", "decode_seconds", *results["metrics"]]
    return pd.DataFrame(rows, columns=columns)


def per_frame_table(results: dict[str, Any]) -> pd.DataFrame:
    """Long table: codec, target_kbps, kbps, metric, frame, value."""
    rows = [(r["codec"], r["target_kbps"], r["kbps"], name, i, v)
            for r in results["records"] for name, values in r["per_frame"].items() for i, v in enumerate(values)]
    return pd.DataFrame(rows, columns=["codec", "target_kbps", "kbps", "metric", "frame", "value"])


def write_csv(results: dict[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    """``results.csv`` (clip values, metric variants in the header comment) and ``per_frame.csv``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary, frames = out / "results.csv", out / "per_frame.csv"
    with open(summary, "w") as f:
        for name, info in results["metrics"].items():
            f.write(f"# {name}: {info['variant']}\n")
        records_table(results).to_csv(f, index=False)
    per_frame_table(results).to_csv(frames, index=False)
    return summary, frames
