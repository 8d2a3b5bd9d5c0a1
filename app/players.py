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

# Installed once in the page head. Every <video> inside #s2vc-players follows a leader: the player the user last
# touched (or the first). Ten times a second each follower takes the leader's play/pause state and rate, and its
# drift (on the loop's circle: 0.98 s and 0.01 s of a 1 s clip are 0.03 s apart) is taken out: by a seek when it is
# paused or more than half a second off, else by running up to 30% faster or slower until it is in step. Players
# that loop on their own and answer each other's events drift apart under load; this converges instead.
SYNC_JS = """
<script>
(() => {
  let leader = null;
  const group = () => Array.from(document.querySelectorAll('#s2vc-players video'));
  const drift = (v, l) => {
    const d = v.currentTime - l.currentTime, span = l.duration;
    return isFinite(span) && span > 0 ? ((d % span) + 1.5 * span) % span - span / 2 : d;
  };
  const hook = (v) => {
    if (v.dataset.s2vcSync) return; v.dataset.s2vcSync = '1'; v.loop = true; v.muted = true;
    ['pointerdown', 'keydown'].forEach(e => v.addEventListener(e, () => { leader = v; }, true));
  };
  const tick = () => {
    const g = group(); g.forEach(hook);
    const l = g.includes(leader) ? leader : g[0];
    if (!l || l.readyState < 2 || l.seeking) return;
    g.forEach(v => {
      if (v === l || v.readyState < 2 || v.seeking) return;
      if (l.paused !== v.paused) { if (l.paused) v.pause(); else v.play().catch(() => {}); }
      const d = drift(v, l);
      if (l.paused || Math.abs(d) > 0.5) {
        if (Math.abs(d) > 0.01) v.currentTime = l.currentTime;
        v.playbackRate = l.playbackRate;
      } else {
        v.playbackRate = l.playbackRate * (1 - Math.max(-0.3, Math.min(0.3, 2 * d)));
      }
    });
  };
  setInterval(tick, 100);
  window.s2vcDrift = () => { const g = group(), l = g.includes(leader) ? leader : g[0];
    return l ? Math.max(0, ...g.map(v => Math.abs(drift(v, l)))) : 0; };
  window.s2vcPlayAll = () => {
    const g = group(); leader = g[0] || null; g.forEach(v => { v.currentTime = 0; });
    g.forEach(v => v.play().catch(() => {})); };
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
