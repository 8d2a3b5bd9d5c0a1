"""Slide-ready media of a run: the codecs side by side (H.264 MP4), a wipe video, a zoomed-crop figure (PNG) and
the RD plots (PNG and SVG at 1920x1080).

Every tile is labelled "codec · preset · kbps" with the bitrate of its own bitstream; the MP4s are H.264 High,
yuv420p, faststart (what PowerPoint, Keynote and browsers play).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from app import compose, engine
from app.handlers import crop_box, load_frames, player_records, rd_figures

SLIDE_CRF = 16  # near-transparent: the artefacts shown must be the codecs', not the slide video's
SLIDE_X264 = "veryfast"  # about 2x faster than medium on 2 cores (0.25 against 0.48 s per 1676x1078 frame)


def _sources(state: dict) -> tuple[list[str], list[np.ndarray]]:
    """Labels and frames of the original and every codec shown in the players."""
    shown = player_records(state)
    if not shown:
        raise ValueError("nothing to export: no result is shown yet")
    labels = ["original"] + [r["key"] for r in shown]
    return labels, [load_frames(state["clip"]["frames"])] + [load_frames(r["decoded"]) for r in shown]


def side_by_side(state: dict, layout: str, path: Path) -> Path:
    """The original and the codecs in a grid or a row, each tile captioned, as an H.264 MP4 at the clip's rate."""
    from model.video_io import write_mp4

    labels, clips = _sources(state)
    height, width = clips[0].shape[1:3]
    reduce, factor, size = compose.tile_layout(width, height, len(clips), layout)
    frames = np.stack([compose.even(compose.tiles([c[t] for c in clips], [[label] for label in labels], layout,
                                                  reduce, factor, size)) for t in range(len(clips[0]))])
    return write_mp4(path, frames, state["clip"]["fps"], crf=SLIDE_CRF, preset=SLIDE_X264)


def wipe_video(state: dict, key: str, path: Path) -> Path:
    """Original | `key` with the split moving from left to right over the clip, as an H.264 MP4."""
    from model.video_io import write_mp4

    labels, clips = _sources(state)
    if key not in labels[1:]:
        raise ValueError(f"{key} is not among the shown results")
    original, coded = clips[0], clips[labels.index(key)]
    height, width = original.shape[1:3]
    reduce, factor, size = compose.tile_layout(width, height, 1, "row", lines=0)
    count = len(original)
    frames = np.stack([compose.even(compose.wipe(original[t], coded[t], t / max(count - 1, 1), ("original", key),
                                                 reduce, factor, size)) for t in range(count)])
    return write_mp4(path, frames, state["clip"]["fps"], crf=SLIDE_CRF, preset=SLIDE_X264)


def crop_figure(state: dict, frame: int, center_x: float, center_y: float, zoom: int, path: Path) -> Path:
    """The same zoomed crop of one frame from the original and every codec in a row, each labelled, with the
    codec's figures underneath (this frame's and the clip's), and the metric variants at the bottom, as a PNG."""
    from PIL import Image

    labels, clips = _sources(state)
    index = int(np.clip(frame, 0, len(clips[0]) - 1))
    box = crop_box(clips[0].shape[1:3], center_x, center_y, int(zoom))
    crops = [np.asarray(c[index])[box] for c in clips]
    results = state["results"]
    captions = [[labels[0], f"frame {index}, crop {crops[0].shape[1]}x{crops[0].shape[0]}", ""]]
    for r in player_records(state):
        at_frame = [f"{m} {v[index]:.4g}" for m, v in r["per_frame"].items() if index < len(v)]
        captions.append([r["key"], f"frame {index}: " + ", ".join(at_frame),
                         "clip: " + ", ".join(f"{m} {v:.4g}" for m, v in r["metrics"].items())])
    height, width = crops[0].shape[:2]
    reduce, factor, size = compose.tile_layout(width, height, len(crops), "row", lines=3)
    figure = compose.tiles(crops, captions, "row", reduce, factor, size)
    variants = [f"{m}: {info['variant']}" for m, info in results["metrics"].items()
                if any(m in r["metrics"] for r in player_records(state))]
    figure = compose.captioned(figure, variants, max(12, size * 2 // 3))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(figure).save(path)
    return Path(path)


def rd_slides(state: dict, folder: Path) -> list[Path]:
    """Every RD plot of the run as PNG and SVG at 1920x1080 with slide-sized text."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for metric, figure in rd_figures(state).items():
        slide = engine.slide_figure(figure)
        for suffix in (".png", ".svg"):
            target = folder / f"rd_{metric}{suffix}"
            slide.write_image(target, width=compose.SLIDE[0], height=compose.SLIDE[1])
            written.append(target)
    return written
