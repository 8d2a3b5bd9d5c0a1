"""Shared test fixtures. `S2VC_SHARED` points at the shared data folder (default: ../shared next to the repo)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from model.compat import patch_torchvision

patch_torchvision()

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
