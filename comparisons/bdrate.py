"""BD-rate and BD-quality between RD curves of a results file, via the `bjontegaard` package (pchip).

BD-rate: average bitrate difference (%) of the test codec against the anchor at equal quality (negative = the
test saves bits). BD-quality: average quality difference at equal rate, in the metric's unit (positive = better
for higher-is-better metrics). Lower-is-better metrics are negated before interpolation, so BD-rate keeps its
meaning; their BD-quality is reported with the metric's own sign (negative = better).
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd


class BDRateError(ValueError):
    """BD metrics cannot be computed for these curves; one-line reason."""


def curve(results: dict[str, Any], codec: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(kbps, clip metric values) of one codec, sorted by rate; repeated encodes of one bitrate count once."""
    points = sorted({(r["kbps"], r["metrics"][metric]) for r in results["records"]
                     if r["codec"] == codec and metric in r["metrics"]})
    return np.array([p[0] for p in points], float), np.array([p[1] for p in points], float)


def bd(rate_a: np.ndarray, q_a: np.ndarray, rate_t: np.ndarray, q_t: np.ndarray,
       higher_is_better: bool = True, label: str = "") -> tuple[float, float]:
    """(BD-rate %, BD-quality) of test vs anchor with pchip; BDRateError when undefined."""
    import bjontegaard

    for name, r, q in (("anchor", rate_a, q_a), ("test", rate_t, q_t)):
        if len(r) < 2:
            raise BDRateError(f"{label}: the {name} curve has {len(r)} point(s); at least 2 are needed")
        if not (np.all(np.isfinite(q)) and np.all(np.isfinite(r)) and np.all(r > 0)):
            raise BDRateError(f"{label}: the {name} curve has non-finite values (e.g. PSNR inf of a lossless point)")
    sign = 1.0 if higher_is_better else -1.0
    qa, qt = sign * q_a, sign * q_t
    low, high = max(qa.min(), qt.min()), min(qa.max(), qt.max())
    if low >= high:
        raise BDRateError(f"{label}: the curves do not overlap in quality (anchor {q_a.min():.4g}..{q_a.max():.4g}, "
                          f"test {q_t.min():.4g}..{q_t.max():.4g}); add rate points so the ranges overlap")
    order_a, order_t = np.argsort(rate_a), np.argsort(rate_t)
    args = (rate_a[order_a], qa[order_a], rate_t[order_t], qt[order_t])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rate = bjontegaard.bd_rate(*args, method="pchip", require_matching_points=False, min_overlap=0.0)
        quality = bjontegaard.bd_psnr(*args, method="pchip", require_matching_points=False, min_overlap=0.0)
    if not (math.isfinite(rate) and math.isfinite(quality)):
        raise BDRateError(f"{label}: BD could not be computed (non-monotonic curve?)")
    return float(rate), float(sign * quality)


def bd_table(results: dict[str, Any], anchor: str, metrics: list[str] | None = None) -> pd.DataFrame:
    """Rows: every other codec x metric; columns: bd_rate_percent, bd_quality, variant, note."""
    names = metrics or list(results["metrics"])
    codecs = [c for c in dict.fromkeys(r["codec"] for r in results["records"]) if c != anchor]
    if anchor not in {r["codec"] for r in results["records"]}:
        raise BDRateError(f"anchor {anchor!r} has no results; codecs present: {', '.join(codecs) or 'none'}")
    rows = []
    for codec in codecs:
        for metric in names:
            if metric not in results["metrics"]:
                raise BDRateError(f"metric {metric!r} is not in the results; present: {', '.join(results['metrics'])}")
            info = results["metrics"][metric]
            row = {"codec": codec, "anchor": anchor, "metric": metric, "bd_rate_percent": math.nan,
                   "bd_quality": math.nan, "note": "", "variant": info["variant"]}
            try:
                row["bd_rate_percent"], row["bd_quality"] = bd(*curve(results, anchor, metric),
                                                               *curve(results, codec, metric),
                                                               info["higher_is_better"], f"{codec} vs {anchor}, {metric}")
            except BDRateError as exc:
                row["note"] = str(exc)
            rows.append(row)
    return pd.DataFrame(rows, columns=["codec", "anchor", "metric", "bd_rate_percent", "bd_quality", "note", "variant"])
