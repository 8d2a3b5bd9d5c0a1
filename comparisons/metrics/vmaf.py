"""VMAF through libvmaf in the imageio-ffmpeg FFmpeg (built-in model vmaf_v0.6.1)."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from comparisons import ffmpeg
from comparisons.metrics.base import Metric
from model.video_io import rgb_to_yuv420

MODEL = "vmaf_v0.6.1"


class VMAF(Metric):
    name = "vmaf"
    variant = (f"VMAF {MODEL} (libvmaf in FFmpeg, built-in model) on 8-bit Y'CbCr 4:2:0 made from both RGB clips "
               "(BT.601 limited range)")
    higher_is_better = True

    @classmethod
    def availability(cls) -> str | None:
        try:
            exe = ffmpeg.ffmpeg_exe()
        except Exception as exc:
            return f"the imageio-ffmpeg FFmpeg is not available ({type(exc).__name__})"
        return None if ffmpeg.has_filter("libvmaf") else f"the FFmpeg at {exe} has no libvmaf filter"

    def applicable(self, frames: int, height: int, width: int) -> str | None:
        return None if min(height, width) >= 16 else f"frames must be at least 16x16, got {width}x{height}"

    def per_frame(self, ref: np.ndarray, test: np.ndarray) -> np.ndarray:
        t, h, w = ref.shape[:3]
        with tempfile.TemporaryDirectory(prefix="vmaf-") as tmp:
            paths = []
            for label, frames in (("dist", test), ("ref", ref)):
                y, cb, cr = rgb_to_yuv420(frames)
                path = Path(tmp) / f"{label}.yuv"
                path.write_bytes(np.concatenate([y.reshape(t, -1), cb.reshape(t, -1), cr.reshape(t, -1)], 1).tobytes())
                paths.append(path)
            log = Path(tmp) / "vmaf.json"
            raw = ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{w}x{h}", "-r", "25"]
            cmd = [ffmpeg.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", *raw, "-i", str(paths[0]), *raw,
                   "-i", str(paths[1]), "-lavfi",
                   f"[0:v][1:v]libvmaf=model=version={MODEL}:log_fmt=json:log_path={log}:n_threads=2",
                   "-f", "null", "-"]
            ffmpeg.run(cmd, "VMAF")
            frames_log = json.loads(log.read_text())["frames"]
        values = np.array([f["metrics"]["vmaf"] for f in sorted(frames_log, key=lambda f: f["frameNum"])])
        if len(values) != t:
            raise RuntimeError(f"libvmaf scored {len(values)} frames, expected {t}")
        return values
