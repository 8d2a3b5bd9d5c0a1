"""Find the encoder setting whose real output bitrate is within a tolerance of a target.

The knob ``x`` is whatever the codec turns (a CRF, or the log of a requested bitrate); ``log(kbps)`` is assumed
monotone in ``x``. Secant steps from a slope guess until the target is bracketed, then regula falsi on
(x, log kbps) inside the bracket, never leaving ``[lo, hi]`` and never repeating a tried value.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Trial:
    x: float
    kbps: float


def search_rate(encode: Callable[[float], float], target_kbps: float, x0: float, slope: float, lo: float,
                hi: float, tolerance: float, max_trials: int = 8, step: float = 0.01) -> tuple[Trial, list[Trial]]:
    """Return the best trial (closest in log rate) and all trials; stops early once within ``tolerance / 2``.

    ``encode(x)`` encodes with knob ``x`` and returns the real kbps; ``slope`` is a guess of d(log kbps)/dx;
    ``step`` is the knob's resolution (values are rounded to it).
    """
    goal = math.log(target_kbps)
    trials: list[Trial] = []

    def snap(x: float) -> float:
        return round(min(max(x, lo), hi) / step) * step

    x = snap(x0)
    while len(trials) < max_trials:
        trials.append(Trial(x, encode(x)))
        err = math.log(trials[-1].kbps) - goal
        if abs(err) <= math.log1p(tolerance / 2):
            break
        above = [t for t in trials if t.kbps > target_kbps]
        below = [t for t in trials if t.kbps < target_kbps]
        if above and below:
            a = min(above, key=lambda t: t.kbps)
            b = max(below, key=lambda t: t.kbps)
            la, lb = math.log(a.kbps), math.log(b.kbps)
            nxt = a.x + (goal - la) * (b.x - a.x) / (lb - la)
            if not min(a.x, b.x) < nxt < max(a.x, b.x):
                nxt = 0.5 * (a.x + b.x)
        else:
            if len(trials) >= 2:
                t1, t2 = trials[-2], trials[-1]
                measured = (math.log(t2.kbps) - math.log(t1.kbps)) / (t2.x - t1.x) if t2.x != t1.x else 0.0
                slope = measured if measured * slope > 0 else slope
            nxt = x - err / slope
        x = snap(nxt)
        if any(abs(t.x - x) < step / 2 for t in trials):
            break  # bracket narrower than the knob's resolution, or a bound reached
    best = min(trials, key=lambda t: abs(math.log(t.kbps) - goal))
    return best, trials
