"""One job = one (sequence, codec, rate point): what it is, where its record goes, and how a worker runs it.

A job's record is a results file in the existing schema (`comparisons.results`) holding its one record, or its one
failure, plus a ``suite_job`` entry naming the job and the settings it ran with. It is written atomically when the
job ends, so a record on disk means the job is done. The bitstream goes to the sequence's ``bitstreams/`` folder,
as `comparisons run` lays a clip's folder out.

In a worker process, the codecs (the S2VC model with them) and the last clip read are cached, so the model loads
once per worker, not per job; S2VC runs on the worker's GPU when it has one (``device="auto"``).
"""
from __future__ import annotations

import functools
import json
import os
import socket
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from comparisons.codecs.s2vc import MATCH_MARGIN
from comparisons.results import SCHEMA, load_results, save_results
from comparisons.suite.sources import Sequence


@dataclass(frozen=True)
class Settings:
    """The coding and measuring settings every job of a suite shares (``run``'s flags)."""

    start: int = 0
    frames: int | None = None
    presets: tuple[tuple[str, str], ...] = ()
    intra_period: int | None = None
    tolerance: float = 0.05
    metrics: tuple[str, ...] = ()
    checkpoint: str | None = None
    device: str = "auto"  # S2VC and the learned metrics: "auto" = the worker's GPU when it has one, else "cpu"
    threads: int | None = None  # torch threads per worker; None leaves torch's default

    def identity(self) -> dict[str, Any]:
        """What makes a record what it is (not where or how fast it ran): compared on resume."""
        return {k: v for k, v in asdict(self).items() if k not in ("device", "threads")}


@dataclass(frozen=True)
class Job:
    """Code ``sequence`` with ``codec`` at ``target_kbps``, or (``--match-s2vc``) S2VC at ``rate_point``."""

    sequence: Sequence
    codec: str
    out: str  # the suite's output folder, absolute
    settings: Settings = field(default_factory=Settings)
    target_kbps: float | None = None
    rate_point: int | None = None

    @property
    def name(self) -> str:
        if self.rate_point is not None:
            return f"s2vc_rate{self.rate_point}"
        return f"{self.codec}_{self.target_kbps:g}kbps"

    @property
    def label(self) -> str:
        return f"{self.sequence.key} {self.name}"

    @property
    def folder(self) -> Path:
        return sequence_folder(self.out, self.sequence)

    @property
    def path(self) -> Path:
        return self.folder / "jobs" / f"{self.name}.json"

    def identity(self) -> dict[str, Any]:
        return {"sequence": asdict(self.sequence), "codec": self.codec, "target_kbps": self.target_kbps,
                "rate_point": self.rate_point, **self.settings.identity()}


def sequence_folder(out: str | Path, sequence: Sequence) -> Path:
    """``OUT/sequences/<dataset>/<sequence>``: laid out as one `comparisons run` output folder."""
    return Path(out) / "sequences" / safe_name(sequence.dataset) / safe_name(sequence.name)


def safe_name(name: str) -> str:
    """``name`` as one folder name (letters, digits and ``-_.+=`` kept, anything else ``_``)."""
    return "".join(c if c.isalnum() or c in "-_.+=" else "_" for c in name) or "_"


class ResumeError(ValueError):
    """An existing record was made with other settings than this run's; one line naming it and what differs."""


def finished(job: Job) -> dict[str, Any] | None:
    """The job's record when it is on disk (made with the same settings), else None."""
    if not job.path.is_file():
        return None
    try:
        results = load_results(job.path)
    except ValueError:
        return None  # unreadable (e.g. written by another tool): run the job again, which replaces it
    stored = results.get("suite_job", {}).get("identity")
    if stored != _jsonable(job.identity()):
        differs = sorted(k for k in set(stored or {}) | set(job.identity())
                         if (stored or {}).get(k) != _jsonable(job.identity()).get(k))
        raise ResumeError(f"{job.path} was made with other settings ({', '.join(differs)} differ); use another "
                          "--out, or delete that folder to redo it")
    return results


def failed(results: dict[str, Any]) -> bool:
    return not results["records"]


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


# --------------------------------------------------------------------------------------------- worker side
@functools.lru_cache(maxsize=None)
def _configure(threads: int | None) -> str:
    """Once per worker process: torch threads, the torchvision patch; returns "host:pid"."""
    import torch

    from model.compat import patch_torchvision

    patch_torchvision()
    if threads:
        torch.set_num_threads(threads)
    return f"{socket.gethostname()}:{os.getpid()}"


def _device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@functools.lru_cache(maxsize=8)
def _codec(name: str, settings: Settings, whole_clip_estimates: bool):  # -> Codec, cached per worker
    from comparisons.codecs import get_codec

    if name == "s2vc":
        codec = get_codec("s2vc", checkpoint=settings.checkpoint, device=_device(settings.device),
                          tolerance=settings.tolerance)
        if whole_clip_estimates:
            codec.estimate_frames = None
        return codec
    return get_codec(name, preset=dict(settings.presets).get(name), intra_period=settings.intra_period,
                     tolerance=settings.tolerance)


@functools.lru_cache(maxsize=1)
def _clip(sequence: Sequence, start: int, frames: int | None) -> tuple[np.ndarray, float]:
    from model.video_io import read_video

    return read_video(sequence.path, start=start, frames=frames, size=sequence.size, fps=sequence.fps)


def run_job(job: Job) -> dict[str, Any]:
    """Run one job in this (worker) process and write its record; any error becomes a recorded failure.

    Returns a summary for the log: job, ok, kbps or error, seconds, worker."""
    from comparisons.runner import measure, new_results

    worker = _configure(job.settings.threads)
    begin = time.perf_counter()
    settings = job.settings
    clip_info = {"path": job.sequence.path, "start": settings.start, "dataset": job.sequence.dataset,
                 "name": job.sequence.name}
    metrics = list(settings.metrics)
    target = job.target_kbps
    results: dict[str, Any] | None = None
    try:
        frames, fps = _clip(job.sequence, settings.start, settings.frames)
        results = new_results(clip_info, frames, fps, [], metrics, settings.tolerance, settings.intra_period)
        codec = _codec(job.codec, settings, job.rate_point is not None)
        why = codec.availability()
        if why:
            raise RuntimeError(f"{job.codec} is unavailable on {worker}: {why}")
        if job.rate_point is not None:
            target = MATCH_MARGIN * codec.rate_estimates(frames, fps)[job.rate_point]
        results["test_conditions"]["targets_kbps"] = [target]
        result = codec.encode(frames, fps, target, job.folder / "bitstreams")
        results["records"].append(measure(frames, result, metrics, _device(settings.device),
                                          state_dir=job.folder / "metric_state"))
        summary = {"ok": True, "kbps": result.kbps, "error": None}
    except Exception as exc:  # noqa: BLE001 - every failure is recorded and the suite goes on
        error = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        if results is None:  # the clip itself could not be read
            results = {"schema": SCHEMA, "clip": clip_info, "test_conditions": {"targets_kbps": [target]},
                       "metrics": {}, "unavailable": {"codecs": {}, "metrics": {}}, "records": []}
        results["failures"] = [{"codec": job.codec, "target_kbps": target, "error": error,
                                "traceback": traceback.format_exc(limit=-3)}]
        summary = {"ok": False, "kbps": None, "error": error}
    results["suite_job"] = {"name": job.name, "identity": job.identity(), "worker": worker,
                            "device": _device(settings.device) if job.codec == "s2vc" else "cpu",
                            "seconds": time.perf_counter() - begin}
    save_results(results, job.path)
    return {"job": job.label, **summary, "seconds": results["suite_job"]["seconds"], "worker": worker}
