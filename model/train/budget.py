"""A wall-clock budget for a training run: stop early enough that the final checkpoint, the held-out evaluation
and `final/` are written before the deadline, and plan the learning-rate schedule over the steps that fit.

Every cost is measured in the run itself (the recent steps, the checkpoint save, the evaluation); nothing is a
guess. A run with a budget therefore saves a checkpoint (and evaluates) after its first step, to measure them.
"""
from __future__ import annotations

import statistics
import time
from collections import deque


class TimeBudget:
    """Deadline `at` in `time.monotonic()` seconds (None: no budget)."""

    SAFETY = 1.25  # the next step and the finishing work may each run this much slower than measured
    RECENT = 8  # steps whose times predict the next one

    def __init__(self, at: float | None):
        self.at = at
        self.steps: deque[float] = deque(maxlen=self.RECENT)
        self.costs: dict[str, float] = {}

    @classmethod
    def seconds_from_now(cls, seconds: float | None) -> "TimeBudget":
        if seconds is not None and seconds <= 0:
            raise ValueError(f"a time budget must be positive, got {seconds} s")
        return cls(None if seconds is None else time.monotonic() + seconds)

    def record_step(self, seconds: float) -> None:
        self.steps.append(seconds)

    def record(self, what: str, seconds: float) -> None:
        """The wall time of one piece of finishing work ("checkpoint", "eval"); the largest seen is kept."""
        self.costs[what] = max(self.costs.get(what, 0.0), seconds)

    def measured(self, what: str) -> bool:
        return what in self.costs

    def reserve(self) -> float:
        """Seconds the end of the run needs: a checkpoint, `final/` (the model alone: at most a checkpoint's
        cost, which also holds the optimiser) and the held-out evaluation."""
        return 2 * self.costs.get("checkpoint", 0.0) + self.costs.get("eval", 0.0)

    def left(self) -> float:
        return float("inf") if self.at is None else self.at - time.monotonic()

    def room_for_step(self) -> bool:
        """Whether one more step (as slow as the slowest recent one) and the finishing work fit."""
        if self.at is None:
            return True
        return self.SAFETY * (max(self.steps, default=0.0) + self.reserve()) <= self.left()

    def planned_steps(self, done: int, max_steps: int) -> int:
        """The step count the run will reach: `max_steps`, or fewer when the budget runs out first (at the
        median recent step time)."""
        if self.at is None or not self.steps:
            return max_steps
        room = max(0.0, self.left() / self.SAFETY - self.reserve())
        return min(max_steps, done + int(room / statistics.median(self.steps)))
