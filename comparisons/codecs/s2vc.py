"""S2VC as one more Codec: the model package's default (or given) model, real bytes, real decode.

S2VC has discrete rate points (``S2VC.rate_names``, index 0 = fewest bits). To meet a target bitrate, rate points'
bitrates on the clip are first *estimated* with ``S2VC.estimate_kbps`` on the clip's first ``estimate_frames``
frames (the entropy model's bits plus the container overhead, no VAE decoding; later frames get the mean of the
coded frames of their type); a bisection over the rate points finds the highest one at or under the target, which
is then really encoded. Should the real file exceed the target, the next lower rate point is encoded instead. When
even the lowest exceeds the target, the lowest is kept and flagged out of tolerance. Estimates are cached per clip.

The decoded frames of a result are the encoder's reconstructions, which the decoder reproduces bit for bit.
``verify`` proves it for one result: it runs the real decoder on the file, compares every frame and times the
decode. ``encode`` verifies before returning unless the codec was made with ``verify_decode=False`` (the app
shows the result first and verifies afterwards); until then the result's ``decode_seconds`` is None and its
``decoder_check`` is "pending".
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np

from comparisons.codecs.base import BIT_EXACT, PENDING, Codec, CodecError, EncodeResult, check_frames


ESTIMATE_FRAMES = 8  # frames coded per rate-point estimate (at least 3: an I, a reset and a plain P-frame)
MATCH_MARGIN = 1.02  # a target of a rate point's whole-clip estimate x this selects exactly that rate point


class S2VCCodec(Codec):
    """Adapter over ``model.load_model(checkpoint, preset, device)`` -> ``S2VC.encode_file/decompress``."""

    name = "s2vc"
    label = "S2VC"
    traditional = False

    def __init__(self, checkpoint: str | None = None, preset: str | None = None, device: str = "cpu",
                 model: Any = None, tolerance: float = 0.05, estimate_frames: int | None = ESTIMATE_FRAMES,
                 verify_decode: bool = True) -> None:
        if estimate_frames is not None and estimate_frames < 3:
            raise CodecError(f"s2vc: estimate_frames must be at least 3 (one frame of each type) or None (the "
                             f"whole clip), got {estimate_frames}")
        self.checkpoint, self.preset, self.device = checkpoint, preset, device
        self.tolerance = tolerance
        self.estimate_frames = estimate_frames
        self.verify_decode = verify_decode
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
        estimated_on = (f"the first {self.estimate_frames} frames, extrapolated per frame type"
                        if self.estimate_frames else "every frame")
        return {
            "checkpoint": self.checkpoint or "bundled default",
            "preset": self.preset or "default",
            "device": self.device,
            "rate_points": list(self.model.rate_names),
            "intra_period": "one intra frame for the clip",
            "colour": "RGB in and out (no YUV conversion)",
            "rate_control": f"highest rate point whose estimated kbps (on {estimated_on}) <= target, checked on "
                            "the real file",
            "estimate_frames": self.estimate_frames or "all",
            "tolerance": self.tolerance,
        }

    def _estimate_kbps(self, frames: np.ndarray, fps: float, rate: int) -> float:
        """Model-estimated kbps of a rate point on this clip, container overhead included (cached)."""
        key = (hashlib.sha1(frames.tobytes()).hexdigest() + str(frames.shape), float(fps), rate)
        if key not in self._estimates:
            self._estimates[key] = self.model.estimate_kbps(frames, rate, fps, max_frames=self.estimate_frames)
        return self._estimates[key]

    def rate_estimates(self, frames: np.ndarray, fps: float) -> list[float]:
        """Estimated kbps of every rate point on this clip (fewest bits first)."""
        frames = check_frames(frames)
        return [self._estimate_kbps(frames, fps, rate) for rate in range(len(self.model.rate_names))]

    def _choose_rate(self, frames: np.ndarray, fps: float, target_kbps: float, trials: list[dict[str, float]]) -> int:
        """The highest rate point whose estimate is at or under the target (0 when none is), found by bisection
        (estimates grow with the rate point), so that few rate points are estimated; each goes into `trials`."""
        fits, over = -1, len(self.model.rate_names)  # highest known to fit, lowest known to exceed
        while over - fits > 1:
            rate = (fits + over) // 2
            kbps = self._estimate_kbps(frames, fps, rate)
            trials.append({"rate": rate, "estimated_kbps": round(kbps, 3)})
            fits, over = (rate, over) if kbps <= target_kbps else (fits, rate)
        return max(fits, 0)

    def encode(self, frames: np.ndarray, fps: float, target_kbps: float, workdir: str | Path) -> EncodeResult:
        """Encode at the chosen rate point; the decoded frames are the encoder's reconstructions (verified by the
        real decoder before returning when ``verify_decode``). ``release_bpp``: the rate as the official release
        reports it, a second figure beside the real file's ``bpp``."""
        frames = check_frames(frames)
        if not target_kbps or target_kbps <= 0:
            raise CodecError(f"s2vc: target bitrate must be > 0 kbps, got {target_kbps}")
        t, h, w = frames.shape[:3]
        names = list(self.model.rate_names)
        trials: list[dict[str, float]] = []
        chosen = self._choose_rate(frames, fps, target_kbps, trials)
        work = Path(workdir)
        work.mkdir(parents=True, exist_ok=True)
        path = work / f"s2vc_{target_kbps:g}kbps.s2vc"
        while True:
            start = time.perf_counter()
            reconstructions = self.model.encode_file(path, frames, chosen, fps)
            encode_seconds = time.perf_counter() - start
            bits = path.stat().st_size * 8
            kbps = bits * fps / t / 1000.0
            trials.append({"rate": chosen, "kbps": round(kbps, 3)})
            if kbps <= target_kbps or chosen == 0:
                break
            chosen -= 1
        decoded = np.stack([np.asarray(r.frame) for r in reconstructions])
        if decoded.shape != frames.shape:
            raise CodecError(f"s2vc: reconstructed shape {list(decoded.shape)} differs from the input "
                             f"{list(frames.shape)}")
        settings = self.settings() | {"rate_point": names[chosen], "rate_index": chosen}
        result = EncodeResult(
            codec=self.name, label=self.label, version=self.version(), settings=settings,
            command=f"S2VC.encode_file(path, frames, rate={chosen}, fps={fps:g})", bitstream_path=str(path),
            bits=bits, frames=t, fps=float(fps), width=w, height=h, target_kbps=float(target_kbps),
            within_tolerance=abs(kbps / target_kbps - 1) <= self.tolerance, trials=trials,
            encode_seconds=encode_seconds, decode_seconds=None, decoded=decoded.astype(np.uint8),
            decoder_check=PENDING, release_bpp=_release_bpp(reconstructions))
        if self.verify_decode:
            self.verify(result)
        return result

    def verify(self, result: EncodeResult) -> float:
        """Decode ``result``'s bitstream with the real decoder and check that every frame equals the encoder's
        reconstruction; fills in ``decode_seconds`` and ``decoder_check`` and returns the decode seconds."""
        from model.errors import S2VCError

        start = time.perf_counter()
        try:
            decoded, _ = self.model.decompress(result.bitstream_path)
        except S2VCError as exc:  # e.g. a decoded picture that differs from the encoder's (named by frame)
            raise CodecError(f"s2vc: the decoder failed on {result.bitstream_path}: {exc}") from None
        seconds = time.perf_counter() - start
        decoded = np.asarray(decoded)
        if decoded.shape != result.decoded.shape:
            raise CodecError(f"s2vc: the decoder gave {list(decoded.shape)} frames from {result.bitstream_path}, "
                             f"the encoder reconstructed {list(result.decoded.shape)}")
        differs = np.flatnonzero((decoded != result.decoded).reshape(len(decoded), -1).any(axis=1))
        if differs.size:
            first = int(differs[0])
            worst = int(np.abs(decoded[first].astype(np.int16) - result.decoded[first]).max())
            raise CodecError(f"s2vc: decoder output differs from the encoder's reconstruction at frame {first} "
                             f"(max |difference| {worst}; {differs.size} of {len(decoded)} frames differ) in "
                             f"{result.bitstream_path}")
        result.decode_seconds = seconds
        result.decoder_check = BIT_EXACT
        return seconds


def _release_bpp(reconstructions: list[Any]) -> float | None:
    """The clip's rate as the official release reports it; None when a frame lacks the figure."""
    from model.release_rate import clip_release_bpp

    rates = [getattr(r, "release_bpp", None) for r in reconstructions]
    return None if None in rates else clip_release_bpp(rates)
