"""The pretrained weights the learned metrics need: found in the torch hub cache, fetched there on first use.

Every file lives where torchvision and torch-fidelity keep it, ``$TORCH_HOME/hub/checkpoints/<file>``
(``~/.cache/torch/hub/checkpoints`` by default), under its upstream name. A missing file is downloaded there from
its upstream address the first time a metric needs it, unless the machine is offline: ``S2VC_OFFLINE=1`` (this
project's switch) or ``HF_HUB_OFFLINE=1`` (the Hugging Face one, honoured too) fetch nothing. Offline, or when a
fetch fails (no network), the metric stops with one line naming the file and the folder to put it in; a failed
fetch is not retried in the same process, so a run pays for it once and goes on without the metric.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

OFFLINE_SWITCHES = ("S2VC_OFFLINE", "HF_HUB_OFFLINE")
FETCH_TIMEOUT_S = 20.0  # per network operation (connect, each read): a dead network fails in seconds, not minutes
_TRUE = {"1", "true", "yes", "on"}


class WeightsMissing(RuntimeError):
    """A weight file is not in the cache and cannot be fetched now; the message is one line."""


@dataclass(frozen=True)
class WeightFile:
    """One upstream weight file: its cache name, where it comes from and what needs it."""

    key: str
    filename: str
    url: str
    what: str
    sha256_prefix: str | None = None  # torchvision's file names carry the first hex digits of their SHA-256

    def path(self) -> Path:
        return cache_dir() / self.filename


ALEXNET = WeightFile("alexnet", "alexnet-owt-7be5be79.pth",
                     "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
                     "torchvision AlexNet ImageNet (LPIPS-Alex, FloLPIPS)", "7be5be79")
VGG16 = WeightFile("vgg16", "vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth",
                   "torchvision VGG16 ImageNet (DISTS)", "397923af")
RAFT_LARGE = WeightFile("raft_large", "raft_large_C_T_SKHT_V2-ff5fadd5.pth",
                        "https://download.pytorch.org/models/raft_large_C_T_SKHT_V2-ff5fadd5.pth",
                        "torchvision RAFT-large Raft_Large_Weights.DEFAULT (C_T_SKHT_V2; FloLPIPS-RAFT)", "ff5fadd5")
INCEPTION = WeightFile("inception", "weights-inception-2015-12-05-6726825d.pth",
                       "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                       "weights-inception-2015-12-05-6726825d.pth",
                       "torch-fidelity FID Inception v3 (patch FID)")
WEIGHT_FILES = {w.key: w for w in (ALEXNET, VGG16, RAFT_LARGE, INCEPTION)}

_failed: dict[str, str] = {}  # filename -> why its fetch failed in this process


def cache_dir() -> Path:
    """``$TORCH_HOME/hub/checkpoints`` as torch resolves it now (torchvision and torch-fidelity look there)."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def offline() -> str | None:
    """The offline switch that is set (its name), else None."""
    return next((name for name in OFFLINE_SWITCHES if os.environ.get(name, "").strip().lower() in _TRUE), None)


def missing_line(weights: WeightFile, why: str) -> str:
    """The one line a metric says when its weights are missing: which file, where to put it, and why."""
    return (f"{weights.what} weights missing: put {weights.filename} (from {weights.url}) in {cache_dir()} "
            f"(TORCH_HOME moves it); {why}")


def status(weights: WeightFile) -> str | None:
    """None when the file is cached or may be fetched on first use, else the one line saying what is missing."""
    if weights.path().is_file():
        return None
    switch = offline()
    if switch:
        return missing_line(weights, f"offline ({switch}=1), nothing is fetched")
    if weights.filename in _failed:
        return missing_line(weights, f"fetching it failed: {_failed[weights.filename]}")
    return None


def statuses(*files: WeightFile) -> str | None:
    """`status` of several files in one line: None when none is missing, else every missing one's line, joined."""
    lines = [line for line in map(status, files) if line]
    return "; and ".join(lines) if lines else None


def ensure(weights: WeightFile) -> Path:
    """The cached file's path, fetched first when missing and online; `WeightsMissing` (one line) otherwise."""
    path = weights.path()
    if path.is_file():
        return path
    why = status(weights)
    if why:
        raise WeightsMissing(why)
    try:
        fetch(weights.url, path, weights.sha256_prefix)
    except Exception as exc:  # noqa: BLE001 - any failure (DNS, refused, timeout, HTTP, hash) ends the same way
        _failed[weights.filename] = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        raise WeightsMissing(status(weights)) from None
    return path


def fetch(url: str, path: Path, sha256_prefix: str | None = None, timeout: float = FETCH_TIMEOUT_S) -> None:
    """Download ``url`` to ``path`` atomically (a partial file never lands), checking its SHA-256 prefix if given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"fetching {url} -> {path}", flush=True)
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=timeout) as response, \
            tempfile.NamedTemporaryFile(dir=path.parent, prefix=path.name + ".", suffix=".part", delete=False) as tmp:
        try:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                tmp.write(chunk)
        except BaseException:
            os.unlink(tmp.name)
            raise
    if sha256_prefix and not digest.hexdigest().startswith(sha256_prefix):
        os.unlink(tmp.name)
        raise ValueError(f"{url}: SHA-256 {digest.hexdigest()[:12]}... does not start with {sha256_prefix}")
    shutil.move(tmp.name, path)


def forget_failures() -> None:
    """Let the next `ensure` try the network again (e.g. after the connection came back)."""
    _failed.clear()
