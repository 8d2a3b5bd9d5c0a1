"""Import-time compatibility fixes, kept in this one place.

The torchvision wheel that pip resolves next to the CPU build of torch is a CUDA build: its compiled ops cannot
load, and its import then fails with ``operator torchvision::nms does not exist`` (its fake-kernel registrations
need the two schemas ``torchvision::nms`` and ``torchvision::qnms``). Declaring those two schemas lets its
pure-Python parts (models, transforms) import. This matters beyond torchvision users: ``lpips`` imports
torchvision, and ``peft`` imports ``transformers``, which imports torchvision whenever it is installed.

A working torchvision registers those operators itself when it is imported; defining them before that would make
its import abort the whole process (a C++ ``terminate``: "Tried to register an operator ... multiple times"). So
:func:`patch_torchvision` imports torchvision first and declares the schemas only when that import failed for
exactly this reason, then imports it again.

Call :func:`patch_torchvision` before importing lpips, peft, transformers or torchvision. It is idempotent.
"""
from __future__ import annotations

import importlib
import importlib.util
import re
import sys

import torch

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_MISSING_OP = re.compile(r"operator torchvision::(nms|qnms) does not exist")
_library: torch.library.Library | None = None  # set only when the schemas had to be declared
_checked = False


def patched() -> bool:
    """Whether this process had to declare torchvision's operator schemas (its compiled ops did not load)."""
    return _library is not None


def _forget_torchvision() -> None:
    """Drop the modules of a failed torchvision import so that the next import starts afresh."""
    for name in [name for name in sys.modules if name == "torchvision" or name.startswith("torchvision.")]:
        del sys.modules[name]


def patch_torchvision() -> None:
    """Make `import torchvision` work where its compiled ops cannot load; leave a working torchvision alone.

    Any other import failure is left for the code that imports torchvision to report.
    """
    global _library, _checked
    if _checked:
        return
    _checked = True
    if "torchvision" in sys.modules or importlib.util.find_spec("torchvision") is None:
        return
    try:
        importlib.import_module("torchvision")
        return
    except Exception as exc:  # noqa: BLE001 - only one failure is ours to fix; the rest go to the importer
        _forget_torchvision()
        if not _MISSING_OP.search(str(exc)):
            return
    _library = torch.library.Library("torchvision", "DEF")
    for schema in _SCHEMAS.values():
        _library.define(schema)
    try:
        importlib.import_module("torchvision")
    except Exception:  # still broken for another reason: its importer reports it
        _forget_torchvision()
