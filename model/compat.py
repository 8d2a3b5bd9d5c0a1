"""Import-time compatibility fixes, kept in this one place.

The torchvision wheel that pip resolves next to the CPU build of torch is a CUDA build; importing it fails with
``operator torchvision::nms does not exist`` because its compiled ops cannot load. Declaring the two operator
schemas it registers fake kernels for (``torchvision::nms`` and ``torchvision::qnms``) lets its pure-Python parts
(models, transforms) import. This matters beyond torchvision users: ``lpips`` imports torchvision, and ``peft``
imports ``transformers``, which imports torchvision whenever it is installed.

Call :func:`patch_torchvision` before importing lpips, peft, transformers or torchvision. It is idempotent and
does nothing when torchvision's own ops are present.
"""
from __future__ import annotations

import importlib.util

import torch

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_library: torch.library.Library | None = None


def _has_op(name: str) -> bool:
    try:
        torch._C._dispatch_find_schema_or_throw(f"torchvision::{name}", "")
        return True
    except RuntimeError:
        return False


def patch_torchvision() -> None:
    """Define the missing torchvision operator schemas so that `import torchvision` works on CPU torch."""
    global _library
    if _library is not None or importlib.util.find_spec("torchvision") is None:
        return
    missing = [name for name in _SCHEMAS if not _has_op(name)]
    if not missing:
        return
    _library = torch.library.Library("torchvision", "DEF")
    for name in missing:
        _library.define(_SCHEMAS[name])
