"""Browser-playable previews of reconstructions and the script that keeps the players in step.

The previews are near-lossless H.264 (CRF 12) re-encodes for display only; every label quotes the bitrate measured on
the codec's own bitstream, never the preview's.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

PREVIEW_CRF = 12

# Installed once in the page head: every <video> inside #s2vc-players follows the one the user drives.
SYNC_JS = """
<script>
(() => {
  let busy = false;
  const group = () => Array.from(document.querySelectorAll('#s2vc-players video'));
  const follow = (src, fn) => { if (busy) return; busy = true;
    try { group().forEach(v => { if (v !== src) fn(v); }); } finally { busy = false; } };
  const hook = (v) => {
    if (v.dataset.s2vcSync) return; v.dataset.s2vcSync = '1'; v.loop = true; v.muted = true;
    v.addEventListener('play', () => follow(v, o => { o.currentTime = v.currentTime; o.play().catch(() => {}); }));
    v.addEventListener('pause', () => follow(v, o => o.pause()));
    v.addEventListener('seeked', () => follow(v, o => {
      if (Math.abs(o.currentTime - v.currentTime) > 0.02) o.currentTime = v.currentTime; }));
    v.addEventListener('ratechange', () => follow(v, o => { o.playbackRate = v.playbackRate; }));
  };
  new MutationObserver(() => group().forEach(hook)).observe(document.documentElement, {childList: true, subtree: true});
  window.s2vcPlayAll = () => {
    const g = group(); g.forEach(v => { v.currentTime = 0; }); g.forEach(v => v.play().catch(() => {})); };
})();
</script>
"""

PLAY_ALL_JS = "() => { if (window.s2vcPlayAll) window.s2vcPlayAll(); }"


def write_preview(frames: np.ndarray, fps: float, path: Path) -> Path:
    """A browser-playable H.264 mp4 of uint8 RGB frames [T,H,W,3] at `path`."""
    from model.video_io import write_mp4

    return write_mp4(path, frames, fps, crf=PREVIEW_CRF)


def write_lossless(frames: np.ndarray, fps: float, path: Path) -> Path:
    """Store decoded frames bit-exactly (FFV1, RGB) for download."""
    frames = np.asarray(frames)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=_rate(fps))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "bgr0"
        for frame in frames:
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            for packet in stream.encode(video_frame.reformat(format="bgr0")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _rate(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)
