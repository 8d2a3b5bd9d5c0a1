"""Metric throughput on CPU: frames per second of every available metric on a synthetic-noise pair at W x H, and
each metric's measured cost per 1080p frame on this machine, kept in a cache that names the date and the machine."""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from comparisons.metrics import METRICS, MetricError, metric_availability


def bench_metrics(width: int = 416, height: int = 240, frames: int = 8, seed: int = 0,
                  names: list[str] | None = None) -> list[dict[str, object]]:
    """Each metric once on a 256x256 crop of 3 frames to warm up (model build), then timed on ``frames`` frames;
    rows: metric, fps or reason."""
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
            metric.evaluate(ref[:3, :256, :256], test[:3, :256, :256])
            start = time.perf_counter()
            metric.evaluate(ref, test)
            seconds = time.perf_counter() - start
        except MetricError as exc:
            rows.append({"metric": name, "fps": None, "seconds": None, "note": str(exc)})
            continue
        rows.append({"metric": name, "fps": frames / seconds, "seconds": seconds, "note": ""})
    return rows


COST_SIZE = (1920, 1080)
COST_FRAMES = 3  # the temporal metrics give a value for all but the first and last frame: 3 is their minimum


def machine() -> str:
    """This machine as a cost measurement names it: host, CPU, cores, torch threads."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{platform.node()}: {cpu}, {os.cpu_count()} cores, torch {torch.__version__} on CPU, "
            f"{torch.get_num_threads()} threads")


def cost_cache() -> Path:
    """``$XDG_CACHE_HOME/s2vc-studio/metric_cost_1080p.json`` (``~/.cache`` by default)."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "s2vc-studio" / "metric_cost_1080p.json"


def measured_costs() -> dict[str, dict[str, object]]:
    """Metric -> {seconds_per_frame, measured (UTC time), frames, load} measured on this machine (empty when none);
    ``load`` is the machine's 1-minute load average when the measurement began (others' work slows it)."""
    try:
        data = json.loads(cost_cache().read_text())
    except (OSError, ValueError):
        return {}
    return data.get("metrics", {}) if data.get("machine") == machine() else {}


def measure_costs(names: list[str] | None = None) -> dict[str, dict[str, object]]:
    """Time ``names`` (default: every available metric) on a synthetic 1080p pair of `COST_FRAMES` frames on the
    CPU, merge into the cache and return this machine's entries."""
    costs = measured_costs()
    today = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = round(os.getloadavg()[0], 2)
    for row in bench_metrics(*COST_SIZE, COST_FRAMES, names=names):
        if row["seconds"] is not None:
            costs[str(row["metric"])] = {"seconds_per_frame": float(row["seconds"]) / COST_FRAMES, "measured": today,
                                         "frames": COST_FRAMES, "load": load}
    path = cost_cache()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine(), "size": list(COST_SIZE), "metrics": costs}, indent=1))
    return costs


if __name__ == "__main__":
    from comparisons.__main__ import main

    raise SystemExit(main(["bench"]))
