"""S2VC as one more Codec: the model package's default (or given) model, real bytes, real decode.

S2VC has discrete rate points (``S2VC.rate_names``, index 0 = fewest bits). To meet a target bitrate, each rate
point's bitrate on the clip is first *estimated* with ``S2VC.estimate_bits`` (the entropy model's bits plus the
container overhead; no VAE decoding, and within about 1% of the real size), from the lowest rate point up; the
highest one at or under the target is then really encoded and decoded. Should its real size exceed the target,
the next lower rate point is encoded instead. When even the lowest exceeds the target, the lowest is kept and
flagged out of tolerance. Estimates are cached per clip.
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np

from comparisons.codecs.base import Codec, CodecError, EncodeResult, check_frames


class S2VCCodec(Codec):
    """Adapter over ``model.load_model(checkpoint, preset, device)`` -> ``S2VC.compress/decompress``."""

    name = "s2vc"
    label = "S2VC"
    traditional = False

    def __init__(self, checkpoint: str | None = None, preset: str | None = None, device: str = "cpu",
                 model: Any = None, tolerance: float = 0.05) -> None:
        self.checkpoint, self.preset, self.device = checkpoint, preset, device
        self.tolerance = tolerance
        self._model = model
        self._estimates: dict[tuple[str, float, int], float] = {}

    @classmethod
    def availability(cls) -> str | None:
        try:
            from model import load_model  # noqa: F401
        except ImportError as exc:
            return f"S2VC model package not available: {exc}"
        return None

    @property
    def model(self) -> Any:
        if self._model is None:
            reason = self.availability()
            if reason:
                raise CodecError(reason)
            from model import load_model

            self._model = load_model(checkpoint=self.checkpoint, preset=self.preset, device=self.device)
        return self._model

    def version(self) -> str:
        describe = getattr(self.model, "describe", None)
        info = describe() if callable(describe) else {}
        return "S2VC " + ", ".join(f"{k}={v}" for k, v in dict(info).items()) if info else "S2VC (model package)"

    def settings(self) -> dict[str, Any]:
        return {
            "checkpoint": self.checkpoint or "bundled default",
            "preset": self.preset or "default",
            "device": self.device,
            "rate_points": list(self.model.rate_names),
            "intra_period": "one intra frame for the clip",
            "colour": "RGB in and out (no YUV conversion)",
            "rate_control": "highest rate point whose estimated kbps <= target, checked on the real file",
            "tolerance": self.tolerance,
        }

    def _estimate_kbps(self, frames: np.ndarray, fps: float, rate: int) -> float:
        """Model-estimated kbps of a rate point on this clip, container overhead included (cached)."""
        key = (hashlib.sha1(frames.tobytes()).hexdigest() + str(frames.shape), float(fps), rate)
        if key not in self._estimates:
            self._estimates[key] = self.model.estimate_kbps(frames, rate, fps)
        return self._estimates[key]

    def rate_estimates(self, frames: np.ndarray, fps: float) -> list[float]:
        """Estimated kbps of every rate point on this clip (fewest bits first)."""
        frames = check_frames(frames)
        return [self._estimate_kbps(frames, fps, rate) for rate in range(len(self.model.rate_names))]

    def encode(self, frames: np.ndarray, fps: float, target_kbps: float, workdir: str | Path) -> EncodeResult:
        frames = check_frames(frames)
        if not target_kbps or target_kbps <= 0:
            raise CodecError(f"s2vc: target bitrate must be > 0 kbps, got {target_kbps}")
        t, h, w = frames.shape[:3]
        names = list(self.model.rate_names)
        trials: list[dict[str, float]] = []
        chosen = 0
        for rate in range(len(names)):
            kbps = self._estimate_kbps(frames, fps, rate)
            trials.append({"rate": rate, "estimated_kbps": round(kbps, 3)})
            if kbps > target_kbps:
                break
            chosen = rate
        work = Path(workdir)
        work.mkdir(parents=True, exist_ok=True)
        path = work / f"s2vc_{target_kbps:g}kbps.s2vc"
        while True:
            start = time.perf_counter()
            self.model.encode_file(path, frames, chosen, fps)
            encode_seconds = time.perf_counter() - start
            bits = path.stat().st_size * 8
            kbps = bits * fps / t / 1000.0
            trials.append({"rate": chosen, "kbps": round(kbps, 3)})
            if kbps <= target_kbps or chosen == 0:
                break
            chosen -= 1
        start = time.perf_counter()
        decoded, _ = self.model.decompress(path)
        decode_seconds = time.perf_counter() - start
        decoded = np.asarray(decoded)
        if decoded.shape != frames.shape:
            raise CodecError(f"s2vc: decoded shape {list(decoded.shape)} differs from the input {list(frames.shape)}")
        settings = self.settings() | {"rate_point": names[chosen], "rate_index": chosen}
        return EncodeResult(
            codec=self.name, label=self.label, version=self.version(), settings=settings,
            command=f"S2VC.encode_file(path, frames, rate={chosen}, fps={fps:g})", bitstream_path=str(path),
            bits=bits, frames=t, fps=float(fps), width=w, height=h, target_kbps=float(target_kbps),
            within_tolerance=abs(kbps / target_kbps - 1) <= self.tolerance, trials=trials,
            encode_seconds=encode_seconds, decode_seconds=decode_seconds, decoded=decoded.astype(np.uint8))
