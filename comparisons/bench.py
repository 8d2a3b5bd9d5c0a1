"""Metric throughput on CPU: frames per second of every available metric on a synthetic-noise pair at W x H."""
from __future__ import annotations

import time

import numpy as np

from comparisons.metrics import METRICS, MetricError, metric_availability


def bench_metrics(width: int = 416, height: int = 240, frames: int = 8, seed: int = 0,
                  names: list[str] | None = None) -> list[dict[str, object]]:
    """Each metric once to warm up (model build), then timed on ``frames`` frames; rows: metric, fps or reason."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (1, height // 8, width // 8, 3)).repeat(8, 1).repeat(8, 2)
    ref = np.clip(base + rng.integers(-20, 21, (frames, height, width, 3)), 0, 255).astype(np.uint8)
    test = np.clip(ref.astype(int) + rng.integers(-8, 9, ref.shape), 0, 255).astype(np.uint8)
    rows: list[dict[str, object]] = []
    for name, why in metric_availability().items():
        if names and name not in names:
            continue
        if why:
            rows.append({"metric": name, "fps": None, "seconds": None, "note": f"unavailable: {why}"})
            continue
        metric = METRICS[name]()
        try:
            metric.evaluate(ref[:3], test[:3])
            start = time.perf_counter()
            metric.evaluate(ref, test)
            seconds = time.perf_counter() - start
        except MetricError as exc:
            rows.append({"metric": name, "fps": None, "seconds": None, "note": str(exc)})
            continue
        rows.append({"metric": name, "fps": frames / seconds, "seconds": seconds, "note": ""})
    return rows


if __name__ == "__main__":
    from comparisons.__main__ import main

    raise SystemExit(main(["bench"]))
