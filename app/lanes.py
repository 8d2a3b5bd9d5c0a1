"""Work lanes: functions that run side by side in their own threads while one generator streams what they post.

A run codes S2VC in one lane and the baselines (FFmpeg encoders) in another, so that the two CPU cores are both
busy; the page's generator receives each finished step as soon as its lane posts it, whichever lane that is.
"""
from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from queue import Queue
from typing import Any

Post = Callable[[Any], None]
Lane = Callable[[Post, threading.Event], None]  # lane(post, stop): post events; return early once stop is set


@dataclass(frozen=True)
class _Finished:
    """A lane returned (error None) or raised."""

    error: BaseException | None


def run_lanes(lanes: dict[str, Lane], stop: threading.Event | None = None,
              after: Callable[[], None] | None = None) -> Iterator[Any]:
    """Start every lane in its own thread and yield what they post, in order of arrival, until all have returned.

    A lane's exception is raised here. Leaving early (an exception, or closing the generator) sets the lanes'
    `stop` event, so they return after their current step; nobody waits for them. `after` runs once every lane
    has returned (in the last lane's thread), however the consumer left.
    """
    events: Queue = Queue()
    stop = stop or threading.Event()
    left = [len(lanes)]
    lock = threading.Lock()

    def body(lane: Lane) -> None:
        try:
            lane(events.put, stop)
        except BaseException as exc:  # handed to the consumer, which raises it
            events.put(_Finished(exc))
        else:
            events.put(_Finished(None))
        finally:
            with lock:
                left[0] -= 1
                last = left[0] == 0
            if last and after is not None:
                after()

    for name, lane in lanes.items():
        threading.Thread(target=body, args=(lane,), name=f"s2vc-studio-{name}", daemon=True).start()
    running = len(lanes)
    try:
        while running:
            event = events.get()
            if not isinstance(event, _Finished):
                yield event
            elif event.error is not None:
                raise event.error
            else:
                running -= 1
    finally:
        stop.set()


def lower_priority(steps: int = 10) -> None:
    """Make the calling thread, and the processes it starts from now on, yield the CPU to the other lanes
    (Linux keeps a nice value per thread; elsewhere nothing changes)."""
    if not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + steps))
    except OSError:  # not permitted here: the lanes simply share the CPU equally
        pass
