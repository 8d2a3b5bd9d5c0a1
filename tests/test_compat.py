"""model.compat in both torchvision worlds, each in a fresh interpreter (the fix acts at import time).

* broken: the CUDA torchvision wheel next to CPU torch (this machine) cannot load its ops, so its import fails
  with "operator torchvision::nms does not exist" and the project declares the two schemas;
* working: a stand-in package on PYTHONPATH registers torchvision::nms / qnms itself on import, as the real
  compiled extension does, then runs the installed torchvision. The project must declare nothing there: a second
  registration aborts a real process.

Both must import `model`, build the official preset on the meta device and load the app's model.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SPEC = importlib.util.find_spec("torchvision")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(SPEC is None or SPEC.origin is None, reason="torchvision is not installed"),
]

CHILD = """
import json, torch
import model
from model import S2VC, compat, official
with torch.device("meta"):
    official_model = S2VC(official())
from app.model_slot import ModelSlot
slot = ModelSlot(device="cpu")
loaded = slot.get()
import peft, torchvision
print(json.dumps({
    "patched": compat.patched(), "stand_in": getattr(torchvision, "STAND_IN", False),
    "official_on_meta": all(p.is_meta for p in official_model.parameters()),
    "app_model": None if loaded is None else loaded.config.preset, "app_error": slot.error,
    "nms": str(torch.ops.torchvision.nms.default._schema),
}))
"""

STAND_IN = """
import os
import torch

STAND_IN = True
# what the real compiled extension registers when torchvision is imported
_ops = torch.library.Library("torchvision", "DEF")
_ops.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
_ops.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
# then become the installed torchvision
__path__ = [{real!r}]
__file__ = os.path.join({real!r}, "__init__.py")
with open(__file__) as _source:
    exec(compile(_source.read(), __file__, "exec"))
"""


def _run_child(pythonpath: list[Path]) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in [*pythonpath, REPO])}
    env.pop("S2VC_CHECKPOINT", None)
    proc = subprocess.run([sys.executable, "-c", CHILD], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _expect_loaded(info: dict) -> None:
    assert info["official_on_meta"] is True
    assert info["app_model"] == "tiny", info["app_error"]
    assert info["nms"].startswith("torchvision::nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")


@pytest.fixture(scope="module")
def torchvision_works() -> bool:
    """Whether the installed torchvision imports on its own here (a CUDA machine), or fails as the CPU wheel does."""
    plain = subprocess.run([sys.executable, "-c", "import torchvision"], capture_output=True, text=True, timeout=120)
    if plain.returncode:
        assert "operator torchvision::nms does not exist" in plain.stderr, plain.stderr[-2000:]
    return plain.returncode == 0


def test_broken_torchvision_gets_the_schemas(torchvision_works: bool) -> None:
    if torchvision_works:
        pytest.skip("torchvision imports on its own here: the broken-wheel world cannot be reproduced")
    info = _run_child([])
    assert info["patched"] is True and info["stand_in"] is False
    _expect_loaded(info)


def test_working_torchvision_is_left_alone(torchvision_works: bool, tmp_path: Path) -> None:
    """The installed torchvision where it works; else the stand-in (whose own copy of the compiled ops cannot load
    here, so the stand-in's registrations are the only ones, as a working extension's would be)."""
    if torchvision_works:
        info = _run_child([])
        assert info["stand_in"] is False
    else:
        package = tmp_path / "torchvision"
        package.mkdir()
        (package / "__init__.py").write_text(STAND_IN.format(real=str(Path(SPEC.origin).parent)))
        info = _run_child([tmp_path])
        assert info["stand_in"] is True
    assert info["patched"] is False
    _expect_loaded(info)
