"""Where jobs run: in this process (one worker), a local process pool, or a Dask distributed cluster.

Every engine takes jobs with ``submit(job) -> future`` and hands back finished ones with ``wait(futures)``
(at least one, as soon as one is done); ``future.result()`` is `run_job`'s summary or raises what killed it.
Dask moves the jobs and their summaries between machines; the records themselves are files the workers write
into the output folder, which every worker must see at the same path (a shared filesystem).
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import logging
import multiprocessing
from typing import Any

from comparisons.suite.jobs import Job, run_job

ENGINES = ("local", "dask")


class EngineError(RuntimeError):
    """The engine cannot start (e.g. no scheduler at the address); one line."""


class InProcess:
    """One worker: this process, one job at a time, in submission order."""

    description = "this process"

    def __init__(self) -> None:
        self._queue: collections.deque[tuple[cf.Future, Job]] = collections.deque()

    def submit(self, job: Job) -> cf.Future:
        future: cf.Future = cf.Future()
        self._queue.append((future, job))
        return future

    def wait(self, futures: set) -> set:
        future, job = self._queue.popleft()
        try:
            future.set_result(run_job(job))
        except BaseException as exc:  # run_job records job errors itself; this is e.g. KeyboardInterrupt
            future.set_exception(exc)
            raise
        return {future}

    def close(self) -> None:
        self._queue.clear()


class ProcessPool:
    """``workers`` local processes (spawned: a clean torch in each), each keeping its models between jobs."""

    def __init__(self, workers: int) -> None:
        self.description = f"local process pool, {workers} workers"
        self._pool = cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, job: Job) -> cf.Future:
        return self._pool.submit(run_job, job)

    def wait(self, futures: set) -> set:
        return cf.wait(futures, return_when=cf.FIRST_COMPLETED).done

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class Dask:
    """Dask distributed: the scheduler at ``address`` (``tcp://host:8786``), or a local cluster of ``workers``
    single-threaded worker processes when no address is given."""

    def __init__(self, workers: int, address: str | None = None) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise EngineError(f"--engine dask needs the distributed package (pip install distributed): {exc}") from None
        self._cluster = None
        try:
            if address:
                self._client = Client(address, timeout="20s")
                self.description = f"Dask cluster at {address}"
            else:
                self._cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                             dashboard_address=None, silence_logs=logging.ERROR)
                self._client = Client(self._cluster)
                self.description = f"Dask local cluster, {workers} worker processes"
        except (OSError, TimeoutError) as exc:
            if self._cluster is not None:
                self._cluster.close()
            raise EngineError(f"cannot reach a Dask scheduler at {address}: {exc}") from None

    def submit(self, job: Job) -> Any:
        return self._client.submit(run_job, job, pure=False)

    def wait(self, futures: set) -> set:
        from distributed import wait

        return set(wait(list(futures), return_when="FIRST_COMPLETED").done)

    def close(self) -> None:
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


def open_engine(engine: str, workers: int, address: str | None = None) -> InProcess | ProcessPool | Dask:
    if engine not in ENGINES:
        raise EngineError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")
    if workers < 1:
        raise EngineError(f"--workers must be at least 1, got {workers}")
    if engine == "dask":
        return Dask(workers, address)
    if address:
        raise EngineError("--address is for --engine dask")
    return InProcess() if workers == 1 else ProcessPool(workers)
