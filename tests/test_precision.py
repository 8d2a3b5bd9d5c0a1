"""Which precision each frame type gets: on CUDA the release decodes the I-frame's latent (VAE decode included) under
bf16 autocast and everything of a P-frame in fp32; a CPU computes everything in fp32."""
from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator

import pytest
import torch

from model import S2VC
from tests.test_codec import clip, tiny_model
from tests.test_entropy_models import single_thread  # noqa: F401 (autouse)


def _tagged(tag: str, active: list[str]) -> Callable[[], contextlib.AbstractContextManager]:
    @contextlib.contextmanager
    def context() -> Iterator[None]:
        active.append(tag)
        try:
            yield
        finally:
            active.pop()

    return context


def test_vae_decode_runs_in_the_frame_types_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spy on the two precision contexts and on the VAE decoder: I-frame pictures decode inside the I-frame's
    precision, P-frame pictures inside the P-frame's, in the encoder and in the decoder."""
    model = tiny_model()  # I, reset, P
    active: list[str] = []
    monkeypatch.setattr(model, "_iframe_precision", _tagged("I-frame", active))
    monkeypatch.setattr(model, "_pframe_precision", _tagged("P-frame", active))
    seen: list[str | None] = []
    real_decode = model.vae.decode

    def decode(latent: torch.Tensor) -> torch.Tensor:
        seen.append(active[-1] if active else None)
        return real_decode(latent)

    monkeypatch.setattr(model.vae, "decode", decode)
    data = model.compress(clip(3, 64, 64), 1, 25.0)
    assert seen == ["I-frame", "P-frame", "P-frame"]
    seen.clear()
    model.decompress(data)
    assert seen == ["I-frame", "P-frame", "P-frame"]


def test_precision_contexts_on_cuda_and_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_model()
    assert isinstance(model._iframe_precision(), contextlib.nullcontext)
    assert isinstance(model._pframe_precision(), contextlib.nullcontext)
    monkeypatch.setattr(S2VC, "device", property(lambda self: torch.device("cuda")))
    with warnings.catch_warnings():  # without a GPU torch warns that CUDA autocast is disabled
        warnings.simplefilter("ignore")
        iframe, pframe = model._iframe_precision(), model._pframe_precision()
    assert isinstance(iframe, torch.autocast) and iframe.device == "cuda" and iframe.fast_dtype == torch.bfloat16
    assert isinstance(pframe, torch.autocast) and pframe.device == "cuda" and not pframe._enabled
