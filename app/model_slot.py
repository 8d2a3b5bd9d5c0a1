"""The S2VC model, created lazily and once per process, shared by every browser session."""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any


def pick_device(device: str) -> str:
    """`auto` means the GPU when torch sees one, else the CPU."""
    if device != "auto":
        return device
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except Exception:  # torch missing or broken: the baselines still run
        return "cpu"


def is_official(checkpoint: str | None, preset: str | None) -> bool:
    """Whether the model asked for is the official (paper) architecture: an official release folder, our format
    saved from the official preset, or the official preset by name."""
    if preset is not None:
        return preset == "official"
    if not checkpoint:  # the bundled tiny model
        return False
    folder = Path(checkpoint)
    if (folder / "P_ckpts").is_dir() and (folder / "I_ckpts").is_dir():
        return True
    try:
        return json.loads((folder / "config.json").read_text()).get("preset") == "official"
    except (OSError, ValueError):
        return False


class ModelSlot:
    """Holds the one S2VC instance; `get()` loads it on first use, `error` says why it is not available."""

    def __init__(self, checkpoint: str | None = None, preset: str | None = None, device: str = "auto") -> None:
        self.checkpoint = checkpoint
        self.preset = preset
        self.device = pick_device(device)
        self._model: Any = None
        self._error: str | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def error(self) -> str | None:
        return self._error

    def get(self) -> Any | None:
        """The model, loading it on the first call (thread-safe); None with `error` set when it cannot load."""
        with self._lock:
            if self._model is None and self._error is None:
                try:
                    from model import load_model
                except ImportError as exc:
                    self._error = f"the model package has no load_model yet ({exc})"
                    return None
                try:
                    self._model = load_model(checkpoint=self.checkpoint, preset=self.preset, device=self.device)
                except Exception as exc:  # a bad checkpoint must not take the page down
                    self._error = f"{type(exc).__name__}: {exc}"
            return self._model

    def describe(self) -> dict[str, Any]:
        """What the page shows about the model: `S2VC.describe()` once loaded, else the request and status."""
        if self._model is not None:
            return dict(self._model.describe())
        info: dict[str, Any] = {"checkpoint": self.checkpoint or "bundled default (assets/)",
                                "device": self.device}
        info["status"] = f"not available: {self._error}" if self._error else "not loaded yet (loads on first run)"
        return info
