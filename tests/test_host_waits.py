"""Host waits per coded frame (bench/host_waits.py): the counter itself, and the codec's counts, which must stay at
encode 1/1/1 and decode 5/4/4 (I, reset P, P frames; 36/17/17 and 25/11/11 before issue 25)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.host_waits import HostWaits, per_frame
from model import S2VC
from tests.test_codec import clip, tiny_model
from tests.test_entropy_models import single_thread  # noqa: F401 (autouse)


def test_counter_counts_reads_and_data_dependent_shapes_only() -> None:
    x = torch.arange(6.0)
    with HostWaits() as counter:
        x.sum()  # before the first mark: not kept
        counter.mark()
        y = (x * 2 + 1).reshape(2, 3)[:, 1:]  # queued work: no wait
        y.cpu()
        float(y[0, 0]), y.tolist(), y.numpy(), np.asarray(y), bool(y.any()), y.item() if y.numel() == 1 else None
        counter.mark()
        x[x > 2], torch.nonzero(x), x.unique(), torch.equal(x, x)
        z = x.clone()
        z[z > 2] = 0.0
        z[torch.tensor([0, 1])] = 1.0  # integer indices: no wait
    assert counter.frames == [5, 5]


@pytest.fixture(scope="module")
def model() -> S2VC:
    return tiny_model()


def test_host_waits_per_frame_stay_at_the_new_counts(model: S2VC) -> None:
    frames = clip(3, 64, 96)
    data = model.compress(frames, 1, 25.0)
    assert per_frame(S2VC, "_code_frame", lambda: model.compress(frames, 1, 25.0)) == [1, 1, 1]
    assert per_frame(S2VC, "_code_frame", lambda: model.decompress(data)) == [5, 4, 4]
