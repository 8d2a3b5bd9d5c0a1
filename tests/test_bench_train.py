"""bench_train: steps/s and crops/s per batch size and option, on a small random model."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.test_train_budget import init_model  # noqa: F401 (fixture)

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_train.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_train", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_train_prints_one_measured_row_per_batch_and_variant(tmp_path: Path, init_model: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    torch.set_num_threads(1)
    stills = tmp_path / "stills"
    stills.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(stills / "a.png")
    bench = _bench()
    assert bench.main(["--preset", "tiny-cpu-intra", "--batch", "1,2", "--steps", "1", "--warmup", "0",
                       "--variants", "base,for-loop", "--init-from", str(init_model), "--set",
                       f'sources=["images:{stills}"]', "crop=64", f"cache_dir={tmp_path / 'cache'}"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    assert [(r[0], r[1]) for r in rows] == [("1", "base"), ("1", "for-loop"), ("2", "base"), ("2", "for-loop")]
    for batch, _, steps, crops, ratio, memory in rows:
        assert float(steps) > 0 and float(crops) == pytest.approx(float(steps) * int(batch), abs=0.06)
        assert float(memory) > 0
    assert rows[0][4] == rows[2][4] == "1.00"
    with pytest.raises(SystemExit):
        bench.main(["--variants", "fused,base"])
