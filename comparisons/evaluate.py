"""The S2VC release's evaluation protocol (``eval_quality.py``, S2VC_ARCHITECTURE.md section 5) on folders of PNGs.

``python -m comparisons evaluate GT_DIR RECON_DIR --out OUT``: GT_DIR is one sequence (PNG frames) or a dataset
(sub-folders of PNG frames, one per sequence; RECON_DIR then has the same sub-folders, or
``RECON_DIR/<sequence>/<--recon-subdir>`` as the release's inference writes them). Frames pair by the release's
names (GT ``im00001.png``, reconstruction ``im00001_bpp_0.123456.png``, ``im00001_0.123456.png`` or
``im00001.png``; indices contiguous from 1, the reconstructions may stop before the GT, as the release allows),
or else by sorted order (any PNG names, equal counts). Every metric is computed on RGB at the original
resolution, as the release does; patch FID pools every frame of every sequence into one value per dataset.

Written under OUT in the release's layout, CSV and Markdown:
  ``detail/<dataset>_<sequence>_detail.csv``  per frame: lpips, dists, psnr, ms_ssim, flolpips, bpp
                                              (flolpips 0 on the first and last frame, as the release writes it)
  ``<dataset>_detail.csv``                    per sequence: name, psnr, msssim, lpips, dists, flolpips, bpp (means;
                                              flolpips over frames 2..N-1)
  ``<dataset>_summary.csv``                   name "summary", the mean over sequences, and the dataset's patch FID
and ``<dataset>_variants.md``: each column's exact variant, and why any column is empty.
"""
from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from comparisons.metrics import METRICS, MetricError, get_metric
from comparisons.metrics.fid import PatchFIDPool
from comparisons.metrics.weights import WeightsMissing

# registry metric -> (per-frame column, per-sequence column), the release's names and order
RELEASE_COLUMNS = {"lpips_alex": ("lpips", "lpips"), "dists": ("dists", "dists"), "psnr_rgb": ("psnr", "psnr"),
                   "ms_ssim_rgb": ("ms_ssim", "msssim"), "flolpips_raft": ("flolpips", "flolpips")}
SEQUENCE_ORDER = ("psnr", "msssim", "lpips", "dists", "flolpips")
FID_METRICS = ("fid_patch256", "fid_patch128")
PSNR_FLOOR_MSE = 1e-10  # the release floors the MSE of [0,1] values: identical frames score 100 dB
PSNR_VARIANT = ("PSNR as the release: -10 log10(MSE) over all pixels and channels of RGB in [0,1], MSE floored at "
                "1e-10 (identical frames: 100 dB); sequence value = mean of the frames'")
_RELEASE_GT = re.compile(r"^im(\d+)\.png$", re.IGNORECASE)
_RELEASE_RECON = re.compile(r"^im(\d+)(?:_(?:bpp_)?([0-9]+(?:\.[0-9]+)?))?\.png$", re.IGNORECASE)


class EvaluateError(ValueError):
    """The folders cannot be evaluated; one line naming the folder or file and the problem."""


@dataclass
class Sequence:
    """One sequence's frame pairs: GT and reconstruction files, and the bpp each reconstruction's name carries."""

    name: str
    gt: list[Path]
    recon: list[Path]
    bpp: list[float]


def _pngs(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".png"),
                  key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)])


def pair_frames(name: str, gt_dir: Path, recon_dir: Path) -> Sequence:
    """Pair one sequence's frames (the release's names, else sorted order); `EvaluateError` when they cannot."""
    for folder in (gt_dir, recon_dir):
        if not folder.is_dir():
            raise EvaluateError(f"{folder}: no such folder")
    gt, recon = _pngs(gt_dir), _pngs(recon_dir)
    for folder, files in ((gt_dir, gt), (recon_dir, recon)):
        if not files:
            raise EvaluateError(f"{folder}: no PNG frames")
    gt_index = {int(m.group(1)): p for p in gt if (m := _RELEASE_GT.match(p.name))}
    rec = [(int(m.group(1)), float(m.group(2) or math.nan), p) for p in recon if (m := _RELEASE_RECON.match(p.name))]
    if len(gt_index) == len(gt) and len(rec) == len(recon):  # the release's names on both sides
        rec.sort(key=lambda r: r[0])
        indices = [r[0] for r in rec]
        if indices != list(range(1, len(rec) + 1)):
            raise EvaluateError(f"{recon_dir}: frame indices must run 1..N without gaps (the release's rule), "
                                f"got {indices[0]}..{indices[-1]} for {len(rec)} frames")
        missing = [i for i in indices if i not in gt_index]
        if missing:
            raise EvaluateError(f"{gt_dir}: no ground truth for reconstructed frame(s) "
                                f"{', '.join(f'im{i:05d}.png' for i in missing[:5])}")
        return Sequence(name, [gt_index[i] for i in indices], [r[2] for r in rec], [r[1] for r in rec])
    if len(gt) != len(recon):
        raise EvaluateError(f"{name}: {len(gt)} ground-truth PNGs in {gt_dir} but {len(recon)} reconstructions in "
                            f"{recon_dir} (without the release's im00001.png names, counts must be equal)")
    return Sequence(name, gt, recon, [math.nan] * len(gt))


def find_sequences(gt_root: Path, recon_root: Path, recon_subdir: str | None = None) -> list[Sequence]:
    """GT_DIR holding PNGs is one sequence; else each sub-folder is one, paired with RECON_DIR/<name>[/subdir]."""
    if not gt_root.is_dir():
        raise EvaluateError(f"{gt_root}: no such folder")
    if not recon_root.is_dir():
        raise EvaluateError(f"{recon_root}: no such folder")
    if _pngs(gt_root):
        return [pair_frames(gt_root.name, gt_root, recon_root / recon_subdir if recon_subdir else recon_root)]
    folders = sorted(p for p in gt_root.iterdir() if p.is_dir() and _pngs(p))
    if not folders:
        raise EvaluateError(f"{gt_root}: no PNG frames, nor sub-folders of PNG frames")
    sequences = []
    for folder in folders:
        recon = recon_root / folder.name / recon_subdir if recon_subdir else recon_root / folder.name
        if not recon.is_dir():
            raise EvaluateError(f"{recon}: no reconstruction folder for sequence {folder.name}")
        sequences.append(pair_frames(folder.name, folder, recon))
    return sequences


def read_frames(files: list[Path]) -> np.ndarray:
    """uint8 RGB ``[T,H,W,3]`` (converted to RGB as the release does); one size for all, else `EvaluateError`."""
    from PIL import Image, UnidentifiedImageError

    frames = []
    for path in files:
        try:
            with Image.open(path) as image:
                frame = np.asarray(image.convert("RGB"))
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise EvaluateError(f"{path}: unreadable PNG ({type(exc).__name__}: {exc})") from None
        if frames and frame.shape != frames[0].shape:
            raise EvaluateError(f"{path}: {frame.shape[1]}x{frame.shape[0]}, but {files[0].name} is "
                                f"{frames[0].shape[1]}x{frames[0].shape[0]}")
        frames.append(frame)
    return np.stack(frames)


def release_psnr(ref: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Per-frame PSNR of RGB in [0,1] with the MSE floored at 1e-10, as the release computes it."""
    diff = (ref.astype(np.float64) - test.astype(np.float64)) / 255.0
    mse = (diff * diff).reshape(len(ref), -1).mean(axis=1)
    return -10.0 * np.log10(np.maximum(mse, PSNR_FLOOR_MSE))


def variant(metric: str) -> str:
    return PSNR_VARIANT if metric == "psnr_rgb" else METRICS[metric].variant


def evaluate(sequences: list[Sequence], dataset: str, out: Path, metrics: list[str], device: str = "cpu",
             log: Callable[[str], None] = print) -> dict[str, Path]:
    """Score every sequence with ``metrics`` and write the release's tables; returns {table: path}."""
    frame_metrics = [m for m in metrics if m not in FID_METRICS]
    fid_metric = next((m for m in metrics if m in FID_METRICS), None)
    reasons: dict[str, str] = {m: why for m in metrics if (why := METRICS[m].availability())}
    pool = None
    if fid_metric and fid_metric not in reasons:
        try:
            pool = PatchFIDPool(METRICS[fid_metric].patch, device)
        except WeightsMissing as exc:
            reasons[fid_metric] = str(exc)
    for name, why in reasons.items():
        log(f"{name}: not computed: {why}")
    per_sequence, skipped = [], []
    (out / "detail").mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for seq in sequences:
        begin = time.perf_counter()
        ref, test = read_frames(seq.gt), read_frames(seq.recon)
        if ref.shape != test.shape:
            raise EvaluateError(f"{seq.name}: ground truth is {ref.shape[2]}x{ref.shape[1]}, reconstruction "
                                f"{test.shape[2]}x{test.shape[1]}")
        detail = {}
        for name in frame_metrics:
            if name in reasons:
                continue
            values = _frame_values(name, ref, test, device)
            if isinstance(values, str):  # unavailable here (every sequence), or undefined on this one
                why = METRICS[name].availability()
                if why or "weights missing" in values:
                    reasons[name] = values
                else:
                    skipped.append(f"{seq.name}: {values}")
                log(f"{dataset}/{seq.name}: {values}")
            else:
                detail[name] = values
        if pool is not None:
            try:
                pool.update(ref, test)
            except MetricError as exc:
                reasons[fid_metric] = str(exc)
                pool = None
        frame_table = _frame_table(detail, frame_metrics, seq.bpp)
        paths |= _write(frame_table, out / "detail" / f"{dataset}_{seq.name}_detail")
        per_sequence.append(_sequence_row(seq.name, detail, frame_metrics, seq.bpp))
        log(f"{dataset}/{seq.name}: {len(ref)} frames {ref.shape[2]}x{ref.shape[1]} in "
            f"{time.perf_counter() - begin:.1f} s")
    sequence_table = pd.DataFrame(per_sequence)
    summary = {"name": "summary"} | sequence_table.mean(numeric_only=True).to_dict()
    if fid_metric:
        summary["fid"] = math.nan
        if pool is not None:
            try:
                summary["fid"] = pool.compute()
            except MetricError as exc:
                reasons[fid_metric] = str(exc)
    paths |= _write(sequence_table, out / f"{dataset}_detail")
    paths |= _write(pd.DataFrame([summary]), out / f"{dataset}_summary")
    notes = out / f"{dataset}_variants.md"
    notes.write_text(_notes(dataset, metrics, reasons, pool, skipped))
    paths[notes.name] = notes
    return paths


def _frame_values(name: str, ref: np.ndarray, test: np.ndarray, device: str) -> np.ndarray | str:
    """Per-frame values (NaN where a frame has none), or why the metric cannot run on this sequence."""
    if name == "psnr_rgb":
        return release_psnr(ref, test)
    metric = get_metric(name, device)
    try:
        return np.asarray(metric.evaluate(ref, test).per_frame, dtype=np.float64)
    except MetricError as exc:
        return str(exc)


def _column(metric: str, level: int) -> str:
    return RELEASE_COLUMNS[metric][level] if metric in RELEASE_COLUMNS else metric


def _frame_table(detail: dict[str, np.ndarray], metrics: list[str], bpp: list[float]) -> pd.DataFrame:
    """The release's per-frame columns (lpips, dists, psnr, ms_ssim, flolpips, bpp), then any other metric."""
    ordered = [m for m in RELEASE_COLUMNS if m in metrics] + [m for m in metrics if m not in RELEASE_COLUMNS]
    table = {}
    for metric in ordered:
        values = detail.get(metric, np.full(len(bpp), np.nan))
        if metric == "flolpips_raft" and metric in detail:
            values = np.nan_to_num(values, nan=0.0)  # the release writes 0 for frames 1 and N
        table[_column(metric, 0)] = values
    table["bpp"] = bpp
    return pd.DataFrame(table)


def _sequence_row(name: str, detail: dict[str, np.ndarray], metrics: list[str], bpp: list[float]) -> dict:
    """name, psnr, msssim, lpips, dists, flolpips (frames 2..N-1), any other metric, bpp: the frames' means."""
    row: dict[str, object] = {"name": name}
    ordered = sorted((m for m in metrics if m in RELEASE_COLUMNS), key=lambda m: SEQUENCE_ORDER.index(
        RELEASE_COLUMNS[m][1])) + [m for m in metrics if m not in RELEASE_COLUMNS]
    for metric in ordered:
        values = detail.get(metric)
        defined = values[~np.isnan(values)] if values is not None else np.array([])
        row[_column(metric, 1)] = float(defined.mean()) if defined.size else math.nan
    known = [b for b in bpp if not math.isnan(b)]
    row["bpp"] = float(np.mean(known)) if len(known) == len(bpp) else math.nan
    return row


def _write(table: pd.DataFrame, stem: Path) -> dict[str, Path]:
    csv, md = stem.with_name(stem.name + ".csv"), stem.with_name(stem.name + ".md")
    table.to_csv(csv, index=False)
    md.write_text(table.to_markdown(index=False, floatfmt=".6g") + "\n")
    return {csv.name: csv, md.name: md}


def _notes(dataset: str, metrics: list[str], reasons: dict[str, str], pool: PatchFIDPool | None,
           skipped: list[str]) -> str:
    lines = [f"# {dataset}: the S2VC release's evaluation protocol", "",
             "All metrics on RGB at the original resolution, [0,1] floats from 8-bit PNGs; the summary is the mean "
             "over sequences (each a mean over its frames).", ""]
    for metric in metrics:
        column = "fid" if metric in FID_METRICS else _column(metric, 0)
        state = f" **Not computed:** {reasons[metric]}" if metric in reasons else ""
        lines.append(f"- `{column}` ({metric}): {variant(metric)}.{state}")
    if pool is not None and not any(m in reasons for m in FID_METRICS):
        lines.append(f"- patch FID pooled {pool.pairs} patch pairs of {pool.size}x{pool.size} over the dataset.")
    lines.append("- `bpp`: the value in the reconstruction's file name (`im00001_bpp_0.123456.png`), empty without one.")
    lines += [f"- left empty on sequence {line}" for line in skipped]
    return "\n".join(lines) + "\n"
