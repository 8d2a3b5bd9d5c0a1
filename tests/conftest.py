"""Shared test fixtures. `S2VC_SHARED` points at the shared data folder (default: ../shared next to the repo).

No test reaches the network: the project's offline switch is set for the whole session, so a learned metric whose
weights are not cached says so instead of fetching them (tests of the fetch path unset it and fetch from files)."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

# Caches that libraries put in the system temp folder (torch makes torchinductor_<user> on import, Gradio its file
# cache) go into one folder of this run instead, removed when the run ends; pytest removes the tmp_path folders of a
# passing run (pyproject: tmp_path_retention_policy). A run leaves nothing in the temp folder.
_SCRATCH = Path(tempfile.mkdtemp(prefix="s2vc-tests-"))
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(_SCRATCH / "torchinductor"))
os.environ.setdefault("GRADIO_TEMP_DIR", str(_SCRATCH / "gradio"))

import numpy as np  # noqa: E402 (after the cache folders are set)
import pytest  # noqa: E402
import torch  # noqa: E402

from model.compat import patch_torchvision

patch_torchvision()
os.environ["S2VC_OFFLINE"] = "1"

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("S2VC_SHARED", REPO.parent / "shared"))
DATA = SHARED / "data"
BASKETBALL = DATA / "video" / "BasketballPass_416x240_100f_png"


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture
def shared_data() -> Path:
    """The shared data folder; tests that need it are skipped when it is absent."""
    if not DATA.is_dir():
        pytest.skip(f"shared data not found at {DATA} (set S2VC_SHARED)")
    return DATA


@pytest.fixture
def basketball_dir(shared_data: Path) -> Path:
    if not BASKETBALL.is_dir():
        pytest.skip(f"BasketballPass frames not found at {BASKETBALL}")
    return BASKETBALL


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove this run's cache folder, and pytest's own temp root when a passing run left it empty."""
    shutil.rmtree(_SCRATCH, ignore_errors=True)
    factory = getattr(config, "_tmp_path_factory", None)
    root = factory.getbasetemp().parent if factory is not None and factory._basetemp is not None else None
    if root is not None and root.is_dir() and factory._given_basetemp is None:
        for entry in root.iterdir():
            if entry.is_symlink() and not entry.exists():  # pytest-current, pointing at the removed run
                entry.unlink()
        with contextlib.suppress(OSError):
            root.rmdir()
