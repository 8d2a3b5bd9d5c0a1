"""S2VC: the whole codec. Codes a clip in memory (estimated bits) or to a real bitstream and back.

Frame 0 is coded by the I-frame codec, every later frame by the conditional P-frame codec; both drive one pass of
the one-step U-Net, whose x0 latent the VAE decodes. The decoded-picture buffer lives here, one per coding loop.
"""
from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .bitstream import FrameRecord, StreamHeader, check_model, picture_check, read_stream, write_stream
from .checkpoints import weights_fingerprint
from .config import S2VCConfig, tiny
from .dpb import FRAME_I, FRAME_RESET, DecodedPictureBuffer, frame_type
from .entropy_coder import SymbolDecoder, SymbolEncoder
from .environment import CodingEnvironment, this_machine
from .errors import BitstreamError, DecoderMismatchError
from .generator import OneStepUNet
from .inter import InterCodec, RefState
from .intra import IntraCodec
from .release_rate import release_bpp
from .vae import LatentVAE

MAX_SIDE = 16384
CODING_THREADS = 1  # CPU threads of every computation the decoder must reproduce exactly (see _coding_threads)


@dataclass
class FrameResult:
    """One coded frame: its type, the reconstruction (uint8 RGB), its bits (estimated or real) and, for a real
    stream, its rate as the official release reports it (`model.release_rate`; None for in-memory estimates) and,
    when asked for (`iter_reconstruct(keep_latent=True)`), its decoded x0 latent [1, C, Hp/8, Wp/8] (padded frame)."""

    index: int
    frame_type: str
    frame: np.ndarray | None
    bits: float
    release_bpp: float | None = None
    latent: torch.Tensor | None = None


def to_model_frames(frames: np.ndarray, multiple: int) -> torch.Tensor:
    """uint8 RGB [T,H,W,3] -> float [T,3,Hp,Wp] in [-1,1], padded bottom/right to a multiple (reflect, as released;
    replicate where the frame is too small to reflect)."""
    frames = validate_frames(frames)
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x


def to_uint8_tensor(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[B,3,Hp,Wp] in [-1,1] -> uint8 [B,H,W,3] on x's device, cropped back to the original size."""
    x = x[..., :height, :width].clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1)


def to_uint8(x: torch.Tensor, height: int, width: int) -> np.ndarray:
    """[B,3,Hp,Wp] in [-1,1] -> uint8 [B,H,W,3] numpy, cropped back to the original size."""
    return to_uint8_tensor(x, height, width).cpu().numpy()


def validate_frames(frames: np.ndarray) -> np.ndarray:
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        got = getattr(frames, "shape", type(frames).__name__), getattr(frames, "dtype", "")
        raise ValueError(f"frames must be a uint8 array [T, H, W, 3] of RGB, got {got[0]} {got[1]}")
    t, h, w, _ = frames.shape
    if t < 1 or h < 1 or w < 1:
        raise ValueError(f"frames must hold at least one non-empty frame, got shape {frames.shape}")
    if h > MAX_SIDE or w > MAX_SIDE:
        raise ValueError(f"frame size {w}x{h} exceeds the {MAX_SIDE}-pixel limit")
    return frames


class S2VC(nn.Module):
    """The codec: `intra` (I-frame codec), `inter` (P-frame codec), `unet` (one-step generator), `vae`."""

    def __init__(self, config: S2VCConfig | None = None):
        super().__init__()
        self.config = config or tiny()
        self.intra = IntraCodec(self.config)
        self.inter = InterCodec(self.config)
        self.unet = OneStepUNet(self.config)
        self.vae = LatentVAE(self.config)
        self.rate_names: list[str] = list(self.config.rate_names)
        self.rate_switcher: Any = None  # official folders: loads a rate point's weights on demand
        self.seed = 0  # seeds the stochastic VAE posterior sample of the I-frame encoder (SD VAE only)
        self._weights_hash: bytes | None = None

    # ------------------------------------------------------------------------------------------ basics
    @property
    def device(self) -> torch.device:
        return self.intra.enc.pix_emb.weight.device

    def describe(self) -> dict[str, Any]:
        """What is live: preset, rate points, device, precision, parameter counts."""
        on_gpu = self.device.type == "cuda"
        return {
            "preset": self.config.preset,
            "rate_names": list(self.rate_names),
            "device": str(self.device),
            "precision": "I-frame (VAE decode included) bf16 autocast, P-frame fp32, TF32" if on_gpu else "fp32",
            "parameters": {name: sum(p.numel() for p in m.parameters()) for name, m in self.named_children()},
            "reset_interval": self.config.reset_interval,
        }

    def _net_rate(self, rate: int) -> int:
        """Validate a rate-point index and map it to the networks' rate index (loading weights if needed)."""
        if not 0 <= int(rate) < len(self.rate_names):
            raise ValueError(f"rate index {rate} out of range: this model has rate points {self.rate_names}")
        if self.rate_switcher is not None:
            self.rate_switcher(self, int(rate))
        return int(rate) if self.config.num_rates > 1 else 0

    def _prepare(self) -> None:
        """Eval mode, and the memory format of the conv weights: channels_last on CPU (oneDNN then skips a reorder
        around every conv; the bundled model codes 416x240 on 1 thread 1.06x faster than with contiguous weights),
        contiguous elsewhere. Every coding loop passes here, so encoder and decoder compute with the same kernels.
        The autoencoder also converts its activations itself (`model.taesd.ChannelsLastOnCPU`), so that it is fast
        where it runs outside a coding loop too (the naive floor, training latents)."""
        self.eval()
        self.to(memory_format=torch.channels_last if self.device.type == "cpu" else torch.contiguous_format)

    @property
    def environment(self) -> CodingEnvironment:
        """How this model codes here (device kind, precision mode, kernels, torch, threads); in every stream."""
        return this_machine(self.device, CODING_THREADS)

    @contextlib.contextmanager
    def _coding_threads(self) -> Iterator[None]:
        """Run the networks that feed the entropy coder, the buffers and the output pictures with fixed kernel
        settings: on a CPU a fixed thread count, on a GPU TF32 on (as the release) and cuDNN's autotuner off.

        CPU kernels round differently with different thread counts, and a decoder whose prior parameters differ in
        the last bit from the encoder's cannot decode. Pinning the count makes a stream decodable whatever
        thread count the encoding and decoding processes use; on a GPU, a process's TF32 or autotuner settings
        would otherwise decide the rounding.
        """
        if self.device.type == "cuda":
            backends = torch.backends
            saved = backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32, backends.cudnn.benchmark
            backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32, backends.cudnn.benchmark = True, True, False
            try:
                yield
            finally:
                backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32, backends.cudnn.benchmark = saved
            return
        threads = torch.get_num_threads()
        torch.set_num_threads(CODING_THREADS)
        try:
            yield
        finally:
            torch.set_num_threads(threads)

    def _iframe_precision(self) -> contextlib.AbstractContextManager:
        """The release's I-frame precision: everything, its VAE decode included, under bf16 autocast on CUDA."""
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _pframe_precision(self) -> contextlib.AbstractContextManager:
        if self.device.type == "cuda":
            return torch.autocast("cuda", enabled=False)
        return contextlib.nullcontext()

    # ------------------------------------------------------------------------------------------ one frame
    def _cond(self, x: torch.Tensor) -> torch.Tensor:
        generator = None
        if self.config.vae_type == "sd":
            generator = torch.Generator(device=x.device).manual_seed(self.seed)
        return self.vae.encode(x, sample=self.config.vae_type == "sd", generator=generator)

    def code_frame(
        self,
        dpb: DecodedPictureBuffer,
        rate: int,
        x: torch.Tensor | None = None,
        enc: Any = None,
        dec: Any = None,
        size: tuple[int, int] | None = None,
    ) -> dict[str, Any]:
        """Code the next frame against `dpb` and update it.

        Exactly one mode: `x` alone (estimate, eval forward), `x` and `enc` (real encoding), `dec` and `size`
        (decoding a frame of padded size). Returns {"frame_type", "latent", "bits" (None when decoding),
        "release_bits"} (the bits as floats).
        """
        with self._coding_threads():
            out = self._code_frame(dpb, rate, x, enc, dec, size)
        bits, release = out["bits"], out["release_bits"]
        return {**out, "bits": None if bits is None else float(bits),
                "release_bits": 0.0 if release is None else float(release)}

    def _code_frame(
        self,
        dpb: DecodedPictureBuffer,
        rate: int,
        x: torch.Tensor | None,
        enc: Any,
        dec: Any,
        size: tuple[int, int] | None,
    ) -> dict[str, Any]:
        kind = dpb.next_frame_type()
        hp, wp = size if x is None else x.shape[-2:]
        if kind == FRAME_I:
            with self._iframe_precision():
                if dec is not None:
                    out = self.intra.decompress(dec, hp, wp, rate)
                elif enc is not None:
                    out = self.intra.compress(x, self._cond(x), rate, enc)
                else:
                    out = self.intra(x, self._cond(x), rate)
                latent, feats = self.unet.generate(out["f_pix"], out["tokens"], "iframe")
            dpb.update(latent.float(), None, feats)
        else:
            ref = RefState(
                ref_feature=None if kind == FRAME_RESET else dpb.ref_feature,
                ref_latent=dpb.ref_latent,
                is_reset=kind == FRAME_RESET,
            )
            with self._pframe_precision():
                latent_in = self._cond(x) if x is not None and self.config.inter_latent_input else None
                if dec is not None:
                    out = self.inter.decompress(dec, ref, hp, wp, rate)
                elif enc is not None:
                    out = self.inter.compress(x, ref, rate, enc, latent_in)
                else:
                    out = self.inter(x, ref, rate, latent_in)
                feats_in = [f.float() for f in dpb.ref_unet_features]
                latent, feats = self.unet.generate(out["f_pix"], out["tokens"], "pframe", feats_in)
                latent = self.inter.add_reference(latent, ref)
            dpb.update(latent, out["feature"], feats)
        bits, release = out.get("bits"), out.get("release_bits")
        return {  # the sums stay tensors (on the device): `code_frame` reads them, `iter_encode` fetches them
            "frame_type": kind, "latent": latent, "bits": None if bits is None else bits.sum(),
            "release_bits": None if release is None else release.sum(),
        }

    def decode_latent(self, latent: torch.Tensor, height: int, width: int, kind: str) -> np.ndarray:
        """x0 latent of a frame of type `kind` -> uint8 RGB [H, W, 3], in that frame type's precision (the I-frame
        under bf16 autocast on CUDA, as the release; P-frames fp32), with the pinned kernel settings so the
        decoder's pictures equal the encoder's bit for bit."""
        return self.decode_picture(latent, height, width, kind).cpu().numpy()

    def decode_picture(self, latent: torch.Tensor, height: int, width: int, kind: str) -> torch.Tensor:
        """`decode_latent` without the read: the uint8 picture [H, W, 3] on the model's device."""
        precision = self._iframe_precision() if kind == FRAME_I else self._pframe_precision()
        with self._coding_threads(), precision:
            return to_uint8_tensor(self.vae.decode(latent), height, width)[0]

    # ------------------------------------------------------------------------------------------ clips in memory
    @torch.no_grad()
    def iter_reconstruct(
        self, frames: np.ndarray, rate: int, decode: bool = True, keep_latent: bool = False
    ) -> Iterator[FrameResult]:
        """Code a clip in memory frame by frame, yielding each reconstruction with its estimated bits (and, with
        `keep_latent`, its decoded x0 latent)."""
        frames = validate_frames(frames)
        h, w = frames.shape[1:3]
        r = self._net_rate(rate)
        self._prepare()
        dpb = DecodedPictureBuffer(self.config.reset_interval)
        for t in range(frames.shape[0]):
            x = to_model_frames(frames[t : t + 1], self.config.pad_multiple).to(self.device)
            out = self.code_frame(dpb, r, x=x)
            image = self.decode_latent(out["latent"], h, w, out["frame_type"]) if decode else None
            yield FrameResult(t, out["frame_type"], image, out["bits"], latent=out["latent"] if keep_latent else None)

    def reconstruct(self, frames: np.ndarray, rate: int) -> tuple[np.ndarray, list[float]]:
        """Code a clip in memory: (reconstructions uint8 [T,H,W,3], estimated bits per frame)."""
        results = list(self.iter_reconstruct(frames, rate))
        return np.stack([r.frame for r in results]), [r.bits for r in results]

    def estimate_bits(self, frames: np.ndarray, rate: int) -> list[float]:
        """Estimated bits per frame without decoding pixels (cheaper: no VAE decoder)."""
        return [r.bits for r in self.iter_reconstruct(frames, rate, decode=False)]

    def estimate_kbps(self, frames: np.ndarray, rate: int, fps: float, max_frames: int | None = None) -> float:
        """Estimated bitrate of a real bitstream: entropy-model bits per frame, rounded up to the coder's 32-bit
        words plus its flush, plus the exact container overhead (header and frame records).

        `max_frames` codes only the clip's first frames (at least 3: an I, a reset and a plain P-frame) and gives
        every later frame the mean estimate of the coded frames of its type; None codes every frame.
        """
        frames = validate_frames(frames)
        if max_frames is not None and max_frames < 3:
            raise ValueError(f"max_frames must be at least 3 (one frame of each type), got {max_frames}")
        header_bytes = len(self._header(frames, rate, fps).to_bytes())
        coded = self.estimate_bits(frames[:max_frames] if max_frames else frames, rate)
        types = [frame_type(t, self.config.reset_interval) for t in range(len(frames))]
        by_type: dict[str, list[float]] = {}
        for kind, bits in zip(types, coded):
            by_type.setdefault(kind, []).append(bits)
        means = {kind: sum(v) / len(v) for kind, v in by_type.items()}
        total = 8 * header_bytes
        for t, kind in enumerate(types):
            bits = coded[t] if t < len(coded) else means[kind]
            payload = 4 * int(-(-(bits + 64) // 32))  # whole 32-bit words, flush included
            total += 8 * (payload + len(FrameRecord(kind, b"").to_bytes()) + (payload.bit_length() + 6) // 7 - 1)
        return total * fps / len(frames) / 1000.0

    # ------------------------------------------------------------------------------------------ training
    def forward_frames(
        self,
        frames: torch.Tensor,
        rate: int | torch.Tensor,
        decode: bool = True,
        reset_interval: int | None = None,
        iframe_grad: bool = True,
    ) -> list[dict]:
        """Training pass over clips [B,T,3,H,W] in [-1,1] (H, W multiples of 64) through the buffers.

        Per frame: x_hat (if decode), latent_hat (x0), latent (the VAE latent of the input, the target),
        bits [B] (estimated), likelihoods, frame_type. Gradients flow through the buffers (cascaded training);
        `iframe_grad=False` runs the I-frame without autograd (P-frame stages). `reset_interval` overrides the
        config's reset period for this call.
        """
        if frames.dim() != 5 or frames.shape[2] != 3:
            raise ValueError(f"frames must be [B, T, 3, H, W], got {tuple(frames.shape)}")
        dpb = DecodedPictureBuffer(reset_interval or self.config.reset_interval)
        outputs = []
        for t in range(frames.shape[1]):
            x = frames[:, t]
            with torch.no_grad():
                target = self.vae.encode(x)
            kind = dpb.next_frame_type()
            if kind == FRAME_I:
                with torch.set_grad_enabled(iframe_grad and torch.is_grad_enabled()):
                    out = self.intra(x, target, rate)
                    latent, feats = self.unet.generate(out["f_pix"], out["tokens"], "iframe")
                dpb.update(latent, None, feats)
            else:
                ref = RefState(
                    ref_feature=None if kind == FRAME_RESET else dpb.ref_feature,
                    ref_latent=dpb.ref_latent,
                    is_reset=kind == FRAME_RESET,
                )
                out = self.inter(x, ref, rate, target if self.config.inter_latent_input else None)
                latent, feats = self.unet.generate(out["f_pix"], out["tokens"], "pframe", dpb.ref_unet_features)
                latent = self.inter.add_reference(latent, ref)
                dpb.update(latent, out["feature"], feats)
            record = {
                "frame_type": kind,
                "latent_hat": latent,
                "latent": target,
                "bits": out["bits"],
                "likelihoods": out["likelihoods"],
            }
            if decode:
                record["x_hat"] = self.vae.decode(latent)
            outputs.append(record)
        return outputs

    # ------------------------------------------------------------------------------------------ bitstreams
    @property
    def weights_hash(self) -> bytes:
        """16-byte fingerprint of the weights, written into every bitstream (see `invalidate_hash`)."""
        if self._weights_hash is None:
            self._weights_hash = weights_fingerprint(self)
        return self._weights_hash

    def invalidate_hash(self) -> None:
        """Call after changing weights in place (loading, training)."""
        self._weights_hash = None

    def _header(self, frames: np.ndarray, rate: int, fps: float) -> StreamHeader:
        if not fps or fps <= 0 or not np.isfinite(fps):
            raise ValueError(f"fps must be a positive number, got {fps}")
        fraction = Fraction(fps).limit_denominator(1001)
        return StreamHeader(
            preset=self.config.preset,
            weights_hash=self.weights_hash,
            width=int(frames.shape[2]),
            height=int(frames.shape[1]),
            fps_num=fraction.numerator,
            fps_den=fraction.denominator,
            frame_count=int(frames.shape[0]),
            rate_index=int(rate),
            rate_name=self.rate_names[int(rate)],
            environment=self.environment,
        )

    @torch.no_grad()
    def iter_encode(
        self, frames: np.ndarray, rate: int, fps: float
    ) -> tuple[StreamHeader, Iterator[tuple[FrameRecord, FrameResult]]]:
        """Encode a clip: the stream header, then (record, reconstruction) per frame as each is coded.

        The reconstruction is what the decoder will produce from the record, bit for bit, on a machine like this
        one (the record carries its `picture_check`).
        """
        frames = validate_frames(frames)
        r = self._net_rate(rate)
        header = self._header(frames, rate, fps)
        self._prepare()

        def frames_iter() -> Iterator[tuple[FrameRecord, FrameResult]]:
            dpb = DecodedPictureBuffer(self.config.reset_interval)
            for t in range(frames.shape[0]):
                with torch.inference_mode():  # per frame: this body runs after iter_encode has returned
                    x = to_model_frames(frames[t : t + 1], self.config.pad_multiple).to(self.device)
                    enc = SymbolEncoder()
                    with self._coding_threads():
                        out = self._code_frame(dpb, r, x, enc, None, None)
                    picture = self.decode_picture(out["latent"], header.height, header.width, out["frame_type"])
                    # one host wait per frame: the coder's symbols, the picture and the release's bits in one read
                    release = out["release_bits"]
                    release = picture.new_zeros((), dtype=torch.float32) if release is None else release.float()
                    payload, (image, release) = enc.finish_fetching([picture, release])
                    image = image.reshape(picture.shape)
                    record = FrameRecord(out["frame_type"], payload, picture_check(image), float(release[0]))
                yield record, self._result(t, record, image, header)

        return header, frames_iter()

    def encode_file(
        self, path: str | Path, frames: np.ndarray, rate: int, fps: float,
        on_frame: Callable[[FrameResult], None] | None = None,
    ) -> list[FrameResult]:
        """Encode a clip into an .s2vc file; returns the reconstructions with their real payload bits."""
        header, records = self.iter_encode(frames, rate, fps)
        results: list[FrameResult] = []

        def records_only() -> Iterator[FrameRecord]:
            for record, result in records:
                results.append(result)
                if on_frame is not None:
                    on_frame(result)
                yield record

        write_stream(path, header, records_only())
        return results

    def compress(self, frames: np.ndarray, rate: int, fps: float) -> bytes:
        """Encode a clip into bitstream bytes."""
        header, records = self.iter_encode(frames, rate, fps)
        buffer = io.BytesIO()
        write_stream(buffer, header, (record for record, _ in records))
        return buffer.getvalue()

    @staticmethod
    def _result(index: int, record: FrameRecord, image: np.ndarray, header: StreamHeader) -> FrameResult:
        kind = record.frame_type.value
        rate = release_bpp(kind, len(record.payload), record.release_bits, header.width, header.height)
        return FrameResult(index, kind, image, 8.0 * len(record.payload), rate)

    @torch.no_grad()
    def iter_decode(self, source: str | Path | bytes) -> tuple[StreamHeader, Iterator[FrameResult]]:
        """Decode a bitstream (bytes or a path): its header, then each frame as it is decoded.

        DecoderMismatchError, before decoding, for a stream coded on another device kind or precision mode, and at
        the first frame whose picture differs from the encoder's (or whose symbols do not decode, when the coding
        environments differ); every message names both machines.
        """
        header, records = read_stream(source)
        check_model(header, self.config.preset, self.weights_hash)
        here = self.environment
        made = header.environment
        if made.must_match(here):
            raise DecoderMismatchError(
                f"this stream was coded on {made.describe()}; this machine would decode on {here.describe()}: "
                f"decode it on a {made.device} machine (--device {made.device}) with the same precision"
            )
        if header.rate_index >= len(self.rate_names):
            raise BitstreamError(f"rate index {header.rate_index} not available in this model ({self.rate_names})")
        r = self._net_rate(header.rate_index)
        multiple = self.config.pad_multiple
        size = (-(-header.height // multiple) * multiple, -(-header.width // multiple) * multiple)
        self._prepare()

        def frames_iter() -> Iterator[FrameResult]:
            dpb = DecodedPictureBuffer(self.config.reset_interval)
            for t, record in enumerate(records):
                expected = dpb.next_frame_type()
                if record.frame_type.value != expected:
                    raise BitstreamError(f"frame {t}: stream says {record.frame_type.value}, expected {expected}")
                with torch.inference_mode():  # per frame: this body runs after iter_decode has returned
                    try:
                        dec = SymbolDecoder(record.payload)
                        out = self.code_frame(dpb, r, dec=dec, size=size)
                        dec.check_exhausted()
                    except BitstreamError as exc:
                        if not made.may_matter(here):
                            raise
                        raise DecoderMismatchError(f"frame {t}: {exc}; {_mismatch(made, here)}") from None
                    image = self.decode_latent(out["latent"], header.height, header.width, out["frame_type"])
                check = picture_check(image)
                if check != record.check:
                    raise DecoderMismatchError(
                        f"frame {t}: the decoded picture differs from the encoder's (picture check {check.hex()}, "
                        f"the stream has {record.check.hex()}); {_mismatch(made, here)}"
                    )
                yield self._result(t, record, image, header)

        return header, frames_iter()

    def decompress(self, source: str | Path | bytes) -> tuple[np.ndarray, float]:
        """Decode a whole bitstream: (frames uint8 [T,H,W,3], fps)."""
        header, results = self.iter_decode(source)
        return np.stack([r.frame for r in results]), header.fps

    def save_pretrained(self, directory: str | Path, dtype: torch.dtype | None = None) -> Path:
        """Write config.json + model.safetensors (our format; see `model.load_model`)."""
        from .checkpoints import save_pretrained

        return save_pretrained(self, directory, dtype)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "S2VC":
        from .loading import from_pretrained

        return from_pretrained(directory)


def _mismatch(made: CodingEnvironment, here: CodingEnvironment) -> str:
    """The second half of a decoder-mismatch message: both machines and what to do."""
    differ = made.may_matter(here)
    if not differ:
        return (f"coded and decoded on {here.describe()}: the stream was altered after its checksums were "
                "written, or this is a bug (please report it with the stream)")
    return (f"the stream was coded on {made.describe()}, this machine is {here.describe()} ({', '.join(differ)} "
            "differ): decode it on a machine like the encoder's")
