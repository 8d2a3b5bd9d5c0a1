"""Run a suite's jobs: plan them, skip those with a record, run the rest on an engine, one progress bar, a log.

``--kbps``: one job per (sequence, codec, target). ``--match-s2vc``: S2VC at each of its rate points first (target
= the rate point's whole-clip estimate + 2%, as `run --match-s2vc`); once every S2VC job of a sequence has its
record, the other codecs' jobs of that sequence follow at the real bitrates S2VC reached there.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from tqdm import tqdm

from comparisons.suite.jobs import Job, Settings, failed, finished
from comparisons.suite.sources import Sequence

FollowUp = Callable[[Job], list[Job]]


@dataclass
class SuiteRun:
    """What one run of the suite did."""

    engine: str
    ran: int = 0
    failed: int = 0
    skipped: int = 0
    not_run: list[str] = field(default_factory=list)  # jobs lost with their worker; a re-run does them
    seconds: float = 0.0


def plan_jobs(sequences: list[Sequence], codecs: list[str], out: str | Path, settings: Settings,
              kbps: list[float] | None = None, rate_points: int | None = None) -> list[Job]:
    """The first jobs: every (sequence, codec, target) for ``kbps``, or every S2VC rate point to match."""
    out = str(Path(out).resolve())
    if rate_points is not None:
        return [Job(seq, "s2vc", out, settings, rate_point=r) for seq in sequences for r in range(rate_points)]
    return [Job(seq, codec, out, settings, target_kbps=float(k)) for seq in sequences for codec in codecs for k in kbps]


def matched_follow_up(codecs: list[str], rate_points: int) -> FollowUp:
    """For ``--match-s2vc``: once a sequence's S2VC jobs all have records, its other codecs' jobs at the real
    bitrates S2VC reached (each bitrate once; none when every S2VC job failed)."""
    emitted: set[str] = set()

    def follow_up(job: Job) -> list[Job]:
        if job.codec != "s2vc" or job.sequence.key in emitted:
            return []
        records = [finished(Job(job.sequence, "s2vc", job.out, job.settings, rate_point=r)) for r in range(rate_points)]
        if any(r is None for r in records):
            return []
        emitted.add(job.sequence.key)
        reached = sorted({round(rec["kbps"], 3) for results in records for rec in results["records"]})
        return [Job(job.sequence, codec, job.out, job.settings, target_kbps=k)
                for codec in codecs if codec != "s2vc" for k in reached]

    return follow_up


def suite_logger(path: Path) -> logging.Logger:
    """Per-job lines appended to ``path`` (``OUT/suite.log``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    log = logging.getLogger(f"comparisons.suite.{path.resolve()}")
    log.setLevel(logging.INFO)
    log.propagate = False
    if not log.handlers:
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(handler)
    return log


def run_jobs(jobs: Iterable[Job], engine, log: logging.Logger, follow_up: FollowUp | None = None,
             retry_failed: bool = False, progress: bool = True) -> SuiteRun:
    """Run every job without a record (and, with ``retry_failed``, those whose record is a failure)."""
    run = SuiteRun(engine.description)
    begin = time.perf_counter()
    pending: dict = {}

    def schedule(batch: Iterable[Job]) -> int:
        """Submit the jobs without a record (and their follow-ups of jobs done earlier); returns how many."""
        checked = [(job, finished(job)) for job in batch]  # a record made with other settings stops before any runs
        added = 0
        for job, done in checked:
            if done is not None and not (retry_failed and failed(done)):
                run.skipped += 1
                log.info("skip %s: %s earlier", job.label, "failed" if failed(done) else "done")
                added += schedule(follow_up(job)) if follow_up else 0
                continue
            pending[engine.submit(job)] = job
            added += 1
        return added

    log.info("suite on %s", engine.description)
    bar = None
    try:
        total = schedule(jobs)
        bar = tqdm(total=total, unit="job", desc="suite", disable=not progress or not total, dynamic_ncols=True,
                   smoothing=0.1, postfix={"failed": 0, "done_earlier": run.skipped})
        while pending:
            for future in engine.wait(set(pending)):
                job = pending.pop(future)
                try:
                    summary = future.result()
                except Exception as exc:  # the worker died (killed for memory, node lost): no record, re-run does it
                    run.not_run.append(job.label)
                    log.info("LOST %s: %s: %s", job.label, type(exc).__name__, exc)
                else:
                    run.ran += 1
                    run.failed += not summary["ok"]
                    what = f"{summary['kbps']:.2f} kbps" if summary["ok"] else f"FAILED: {summary['error']}"
                    log.info("%s %s: %s, %.1f s on %s", "done" if summary["ok"] else "fail", job.label, what,
                             summary["seconds"], summary["worker"])
                bar.total += schedule(follow_up(job)) if follow_up else 0
                bar.set_postfix(failed=run.failed, done_earlier=run.skipped, refresh=False)
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        engine.close()
    run.seconds = time.perf_counter() - begin
    log.info("suite: %d ran (%d failed), %d skipped, %d lost, %.1f s", run.ran, run.failed, run.skipped,
             len(run.not_run), run.seconds)
    return run
