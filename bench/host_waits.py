"""Host waits: the calls that make the CPU wait for an accelerator's queued work, counted per coded frame.

On a GPU each of these blocks until the device has finished everything queued before it: reading values
(`item`, `tolist`, `bool` / `int` / `float` / `index` of a tensor, `numpy`, `__array__`), ops whose output size
depends on the data (`nonzero`, `unique`, `masked_select`, indexing or assigning with a boolean mask) and
`torch.equal`. `HostWaits` sees them through a TorchFunctionMode, so a CPU run counts the calls the same code makes
on a GPU (a `.cpu()` copy is counted by the read that follows it, once).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

_Tensor = torch.Tensor
READS = {_Tensor.item, _Tensor.tolist, _Tensor.__bool__, _Tensor.__int__, _Tensor.__float__, _Tensor.__index__,
         _Tensor.numpy, _Tensor.__array__, torch.nonzero, _Tensor.nonzero, torch.unique, _Tensor.unique,
         torch.masked_select, _Tensor.masked_select, torch.equal, _Tensor.equal}
INDEXING = {_Tensor.__getitem__, _Tensor.__setitem__}


def _boolean_mask(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items)


class HostWaits(TorchFunctionMode):
    """Counts host waits; `frames` holds one count per `mark()` (the calls before the first mark are not kept)."""

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[int] = []

    def mark(self) -> None:
        self.frames.append(0)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if self.frames and (func in READS or (func in INDEXING and len(args) > 1 and _boolean_mask(args[1]))):
            self.frames[-1] += 1
        return func(*args, **(kwargs or {}))


def per_frame(owner: type, method: str, run: Callable[[], Any]) -> list[int]:
    """Host waits of each frame while `run()` runs: a frame starts at each call of owner.method (e.g.
    S2VC.code_frame) and lasts until the next one, so it includes what follows (picture fetch, coder finish)."""
    counter = HostWaits()
    original = owner.__dict__[method]

    def marked(*args, **kwargs):
        counter.mark()
        return original(*args, **kwargs)

    setattr(owner, method, marked)
    try:
        with counter:
            run()
    finally:
        setattr(owner, method, original)
    return counter.frames
