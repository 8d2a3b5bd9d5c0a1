"""Everything a suite reports, rebuilt from its job records alone (``python -m comparisons suite-report OUT``).

Per sequence: ``OUT/sequences/<dataset>/<sequence>/results.json`` (+ ``results.csv``, ``per_frame.csv``), the
job records merged into the existing results schema, the same folder layout as `comparisons run` writes.
Per dataset:
  - mean metrics per rate point: rate point i of a codec is its i-th lowest target on each sequence; kbps, bpp and
    every metric are averaged over the sequences that have it (``sequences`` counts them);
  - BD-rate of every codec against the anchor for every metric: per sequence with `comparisons.bdrate` (pchip,
    as ``bdrate`` does), then averaged over the sequences where it is defined (the common practice of
    per-class BD-rates); sequences where it is undefined are counted and their reasons kept;
  - patch FID as the release computes it: one FID per codec and rate point pooled over every patch of every sequence
    of the dataset (from the Inception features each job kept under ``metric_state/``); it replaces the mean of the
    per-sequence FIDs in the rate-point table and plots. Without the Inception weights: unavailable, with the reason.
Written as ``OUT/suite.json``, ``OUT/tables/bd_rate.{csv,md,tex}`` (datasets as rows, metrics as columns),
``OUT/tables/rate_points.{csv,md}`` and ``OUT/plots/<dataset>/rd_<metric>.{html,png}`` (mean curves).
"""
from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from comparisons.bdrate import BDRateError, bd_table
from comparisons.plots import save_figures
from comparisons.results import load_results, save_results, write_csv
from comparisons.suite.jobs import safe_name

SUITE_SCHEMA = "s2vc-studio/suite/1"
BD_METHOD = ("per sequence: bjontegaard pchip BD-rate over the overlapping quality range (comparisons.bdrate); "
             "per dataset: the mean over the sequences where it is defined")
RATE_POINT = ("rate point i = a codec's i-th lowest target on each sequence; values are means over the sequences "
              "where they are defined (a '<metric> sequences' column counts them when that is not all), except patch "
              "FID: one FID pooled over every patch of the dataset's sequences, as the release computes it")


class ReportError(ValueError):
    """The output folder holds no suite records; one line."""


# ---------------------------------------------------------------------------------------------- per sequence
def merge_jobs(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """One sequence's job records -> one results dict in the existing schema (records ordered by codec, target)."""
    header = next((j for j in jobs if "width" in j["clip"]), jobs[0])
    merged = {k: v for k, v in header.items() if k not in ("suite_job", "records", "failures")}
    merged["test_conditions"] = dict(header["test_conditions"])
    merged["metrics"], merged["records"], merged["failures"] = {}, [], []
    merged["unavailable"] = {"codecs": {}, "metrics": {}}
    targets: set[float] = set()
    for job in jobs:
        merged["metrics"].update(job["metrics"])
        for kind in ("codecs", "metrics"):
            merged["unavailable"][kind].update(job["unavailable"][kind])
        merged["records"] += job["records"]
        merged["failures"] += [{k: f[k] for k in ("codec", "target_kbps", "error")} for f in job.get("failures", [])]
        targets |= {t for t in job["test_conditions"].get("targets_kbps", []) if t is not None}
    merged["test_conditions"]["targets_kbps"] = sorted(targets)
    merged["records"].sort(key=lambda r: (r["codec"], r["target_kbps"] or 0.0))
    return merged


def sequence_results(out: str | Path) -> dict[Path, dict[str, Any]]:
    """Sequence folder -> its merged results, read from ``OUT/sequences/*/*/jobs/*.json``."""
    found: dict[Path, list[dict[str, Any]]] = {}
    for path in sorted(Path(out).glob("sequences/*/*/jobs/*.json")):
        found.setdefault(path.parent.parent, []).append(load_results(path))
    return {folder: merge_jobs(jobs) for folder, jobs in found.items()}


# ----------------------------------------------------------------------------------------------- per dataset
def indexed_records(results: dict[str, Any]) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """(codec, rate_index, record) of one sequence's results: each codec's records numbered from its lowest target
    rate (or, without a target, its lowest measured rate) up; the index that joins a rate point across sequences."""
    by_codec: dict[str, list[dict[str, Any]]] = {}
    for record in results["records"]:
        by_codec.setdefault(record["codec"], []).append(record)
    for codec, records in by_codec.items():
        for i, record in enumerate(sorted(records, key=lambda r: r["target_kbps"] or r["kbps"])):
            yield codec, i, record


def rate_points(sequences: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows (codec, rate_index): mean kbps, bpp and every metric over the sequences that have the point."""
    rows = []
    for results in sequences:
        for codec, i, record in indexed_records(results):
            rows.append({"codec": codec, "label": record["label"], "preset": record["settings"].get("preset"),
                         "traditional": record.get("traditional", True), "rate_index": i,
                         "kbps": record["kbps"], "bpp": record["bpp"], **record["metrics"]})
    if not rows:
        return pd.DataFrame(columns=["codec", "rate_index", "sequences", "kbps", "bpp"])
    table = pd.DataFrame(rows)
    metrics = [c for c in table.columns if c not in ("codec", "label", "preset", "traditional", "rate_index")]
    grouped = table.groupby(["codec", "rate_index"], sort=True)
    means = grouped[metrics].mean()
    means.insert(0, "sequences", grouped.size())
    counts = grouped[metrics].count()
    for metric in metrics:  # a metric not defined on every sequence (e.g. MS-SSIM below 161 px) says on how many
        if (counts[metric] < means["sequences"]).any():
            means[f"{metric} sequences"] = counts[metric]
    meta = grouped[["label", "preset", "traditional"]].first()
    return meta.join(means).reset_index()


def bd_rates(sequences: list[dict[str, Any]], anchor: str) -> dict[str, dict[str, dict[str, Any]]]:
    """codec -> metric -> {bd_rate_percent (mean over sequences where defined), sequences, undefined}."""
    values: dict[tuple[str, str], list[float]] = {}
    undefined: dict[tuple[str, str], list[str]] = {}
    for results in sequences:
        name = results["clip"]["name"]
        try:
            table = bd_table(results, anchor)
        except BDRateError as exc:  # the anchor has no records on this sequence
            for codec in {r["codec"] for r in results["records"]} - {anchor}:
                for metric in results["metrics"]:
                    undefined.setdefault((codec, metric), []).append(f"{name}: {exc}")
            continue
        for row in table.itertuples():
            key = (row.codec, row.metric)
            if math.isfinite(row.bd_rate_percent):
                values.setdefault(key, []).append(row.bd_rate_percent)
            else:
                undefined.setdefault(key, []).append(f"{name}: {row.note}")
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for codec, metric in sorted(set(values) | set(undefined)):
        got = values.get((codec, metric), [])
        out.setdefault(codec, {})[metric] = {
            "bd_rate_percent": float(np.mean(got)) if got else None, "sequences": len(got),
            "undefined": undefined.get((codec, metric), [])}
    return out


def dataset_fid(sequences: list[tuple[Path, dict[str, Any]]]) -> dict[str, Any]:
    """Per-dataset patch FID: for every FID metric, codec and rate point (indexed as in `rate_points`), one FID over
    the Inception features of all the dataset's sequences; the reason when there is none."""
    from comparisons.metrics.fid import PatchFID256, fid_from_features

    kept: dict[tuple[str, str, int], list[Path]] = {}
    for folder, results in sequences:
        for codec, i, record in indexed_records(results):
            for metric, file in record.get("metric_state", {}).items():
                kept.setdefault((metric, codec, i), []).append(folder / file)
    if not kept:
        why = PatchFID256.availability()
        return {"available": False, "reason": why or ("no job kept patch FID features (add fid_patch256 or "
                                                      "fid_patch128 to --metrics)")}
    pooled: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for (metric, codec, i), files in sorted(kept.items()):
        arrays = [np.load(f) for f in files]
        real = np.concatenate([a["real"] for a in arrays])
        fake = np.concatenate([a["fake"] for a in arrays])
        pooled.setdefault(metric, {}).setdefault(codec, []).append(
            {"rate_index": i, "fid": fid_from_features(real, fake), "patch_pairs": len(real),
             "sequences": len(files)})
    return {"available": True, "pooled": pooled,
            "method": "one FID per codec and rate point over the Inception features of every patch pair of every "
                      "sequence of the dataset (the release's per-dataset patch FID)"}


def with_pooled_fid(rates: pd.DataFrame, fid: dict[str, Any]) -> pd.DataFrame:
    """The rate-point table with each FID column holding the dataset-pooled FID (where one was computed)."""
    rates = rates.copy()
    for metric, per_codec in fid.get("pooled", {}).items():
        for codec, points in per_codec.items():
            for point in points:
                where = (rates["codec"] == codec) & (rates["rate_index"] == point["rate_index"])
                rates.loc[where, metric] = point["fid"]
    return rates


# --------------------------------------------------------------------------------------------------- outputs
def _metric_info(sequences: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    info: dict[str, dict[str, Any]] = {}
    for results in sequences:
        info.update(results["metrics"])
    return info


def bd_rate_table(suite: dict[str, Any], shown: bool = False) -> pd.DataFrame:
    """Datasets (and codec vs anchor) as rows, metrics as columns: BD-rate % (NaN where undefined); ``shown``:
    as text, "+1.2", with "(n/N)" where it is defined on only n of the dataset's N sequences, "n/a" on none."""
    metrics = list(suite["metrics"])
    rows = []
    for dataset, data in suite["datasets"].items():
        total = len(data["sequences"])
        for codec, per_metric in data["bd_rate"].items():
            row = {"dataset": dataset, "codec": f"{codec} vs {suite['anchor']}"}
            for metric in metrics:
                entry = per_metric.get(metric, {"bd_rate_percent": None, "sequences": 0})
                value = math.nan if entry["bd_rate_percent"] is None else entry["bd_rate_percent"]
                if shown:
                    part = f" ({entry['sequences']}/{total})" if entry["sequences"] < total else ""
                    value = "n/a" if math.isnan(value) else f"{value:+.1f}{part}"
                row[metric] = value
            rows.append(row)
    return pd.DataFrame(rows, columns=["dataset", "codec", *metrics])


def _footnote(suite: dict[str, Any]) -> list[str]:
    return ([f"BD-rate (%) against {suite['anchor']}, negative = fewer bits at equal quality; {BD_METHOD}; "
             "(n/N): defined on n of N sequences, n/a: on none (suite.json says why)."]
            + [f"{name}: {info['variant']}" for name, info in suite["metrics"].items()])


def _latex_escape(text: str) -> str:
    return "".join("\\" + c if c in "&%$#_{}" else c for c in text)


def write_tables(suite: dict[str, Any], rates: pd.DataFrame, folder: Path) -> list[Path]:
    """``bd_rate.{csv,md,tex}`` and ``rate_points.{csv,md}`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    table = bd_rate_table(suite)
    notes = _footnote(suite)
    paths = [folder / n for n in ("bd_rate.csv", "bd_rate.md", "bd_rate.tex", "rate_points.csv", "rate_points.md")]
    with open(paths[0], "w") as f:
        f.writelines(f"# {line}\n" for line in notes)
        table.to_csv(f, index=False)
    shown = bd_rate_table(suite, shown=True)
    paths[1].write_text(shown.to_markdown(index=False, disable_numparse=True) + "\n\n"
                        + "\n".join(f"- {line}" for line in notes) + "\n")
    paths[2].write_text(shown.to_latex(index=False, escape=True, column_format="ll" + "r" * len(suite["metrics"]),
                                       caption=_latex_escape(notes[0]), label="tab:bd-rate"))
    with open(paths[3], "w") as f:
        f.write(f"# {RATE_POINT}\n")
        rates.to_csv(f, index=False)
    paths[4].write_text(rates.drop(columns=["traditional"], errors="ignore").to_markdown(index=False, floatfmt=".4g")
                        + f"\n\n- {RATE_POINT}.\n")
    return paths


def write_plots(dataset: str, rates: pd.DataFrame, metrics: dict[str, dict[str, Any]], folder: Path,
                png: bool = True) -> str | None:
    """One RD figure per metric of the dataset's mean curves; returns why PNG export failed, if it did."""
    curves = {"metrics": {name: {**info, "variant": f"{dataset}, {RATE_POINT}; {info['variant']}"}
                          for name, info in metrics.items()},
              "records": [{"codec": row["codec"], "label": row["label"], "traditional": bool(row["traditional"]),
                           "settings": {"preset": row["preset"]}, "kbps": row["kbps"],
                           "metrics": {m: row[m] for m in metrics if m in row and pd.notna(row[m])}}
                          for row in rates.to_dict("records")]}
    _, png_error = save_figures(curves, folder, png=png)
    return png_error


def build_report(out: str | Path, anchor: str = "x265", png: bool = True) -> dict[str, Any]:
    """Merge every sequence's records, aggregate per dataset, write suite.json, tables and plots."""
    out = Path(out)
    per_sequence = sequence_results(out)
    if not per_sequence:
        raise ReportError(f"{out}: no suite records found (expected sequences/<dataset>/<sequence>/jobs/*.json)")
    datasets: dict[str, list[dict[str, Any]]] = {}
    folders: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
    for folder, results in per_sequence.items():
        save_results(results, folder / "results.json")
        write_csv(results, folder)
        datasets.setdefault(results["clip"]["dataset"], []).append(results)
        folders.setdefault(results["clip"]["dataset"], []).append((folder, results))
    suite: dict[str, Any] = {"schema": SUITE_SCHEMA,
                             "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                             "anchor": anchor, "bd_method": BD_METHOD, "rate_point": RATE_POINT,
                             "metrics": {}, "datasets": {}, "failures": []}
    all_rates = []
    png_error = None
    for dataset, sequences in datasets.items():
        metrics = _metric_info(sequences)
        suite["metrics"].update(metrics)
        fid = dataset_fid(folders[dataset])
        rates = with_pooled_fid(rate_points(sequences), fid)
        suite["datasets"][dataset] = {
            "sequences": [s["clip"]["name"] for s in sequences],
            "rate_points": rates.to_dict("records"),
            "bd_rate": bd_rates(sequences, anchor),
            "fid": fid,
        }
        suite["failures"] += [{"dataset": dataset, "sequence": s["clip"]["name"], **f}
                              for s in sequences for f in s["failures"]]
        png_error = (write_plots(dataset, rates, metrics, out / "plots" / safe_name(dataset), png and png_error is None)
                     or png_error)
        all_rates.append(rates.assign(dataset=dataset))
    rates_table = pd.concat(all_rates, ignore_index=True)
    rates_table = rates_table[["dataset", *[c for c in rates_table.columns if c != "dataset"]]]
    for column in [c for c in rates_table.columns if c.endswith(" sequences")]:  # datasets where all had it
        rates_table[column] = rates_table[column].fillna(rates_table["sequences"]).astype(int)
    suite["tables"] = [str(p) for p in write_tables(suite, rates_table, out / "tables")]
    suite["png_error"] = png_error
    save_results(suite, out / "suite.json")
    return suite
