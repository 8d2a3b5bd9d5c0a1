"""Slide-ready media of a run, on 16:9 canvases (1920x1080 unless the user picks 1280x720 or 3840x2160): the codecs
side by side (H.264 MP4), a wipe video, a zoomed-crop figure (PNG) and the RD plots (PNG and SVG).

Every tile is labelled "codec · preset · kbps" with the bitrate of its own bitstream, and S2VC is named as the model
it is ("S2VC (small CPU demo model)" for the bundled one). The MP4s are H.264 High, yuv420p, faststart (what
PowerPoint, Keynote and browsers play).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from app import compose, engine
from app.handlers import crop_box, load_frames, metrics_in, player_records, rd_figures, s2vc_name

SLIDE_CRF = 16  # near-transparent: the artefacts shown must be the codecs', not the slide video's
SLIDE_X264 = "veryfast"  # about 2x faster than medium on 2 cores (0.25 against 0.48 s per 1676x1078 frame)
DEFAULT_SIZE = "1920x1080"
CROP_METRICS = 2  # the crop figure shows one or two metrics: more would not be read on a slide


def _sources(state: dict) -> tuple[list[str], list[np.ndarray]]:
    """Labels and frames of the original and every codec shown in the players."""
    shown = player_records(state)
    if not shown:
        raise ValueError("nothing to export: no result is shown yet")
    name = s2vc_name(state)
    labels = ["original"] + [engine.display_key(r, name) for r in shown]
    return labels, [load_frames(state["clip"]["frames"])] + [load_frames(r["decoded"]) for r in shown]


def write_video(path: Path, frames: Iterable[np.ndarray], fps: float) -> Path:
    """An H.264 MP4 (High, yuv420p, BT.601 limited, faststart) written frame by frame, so that a 4K slide video
    never holds the whole clip in memory."""
    import av

    from model.video_io import rgb_to_yuv420, write_mp4

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if "libx264" not in av.codecs_available:  # the FFmpeg binary route of write_mp4 takes the whole clip
        return write_mp4(path, np.stack(list(frames)), fps, crf=SLIDE_CRF, preset=SLIDE_X264)
    with av.open(str(path), mode="w", options={"movflags": "+faststart"}) as container:
        stream = None
        for index, image in enumerate(frames):
            if stream is None:
                stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
                stream.height, stream.width = image.shape[:2]
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": f"{SLIDE_CRF}", "preset": SLIDE_X264, "profile": "high"}
                stream.codec_context.colorspace, stream.codec_context.color_range = 6, 1  # BT.601, limited
            planes = rgb_to_yuv420(image[None])
            frame = av.VideoFrame(image.shape[1], image.shape[0], "yuv420p")
            for plane, values in zip(frame.planes, planes):
                rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
                rows[: values.shape[1], : values.shape[2]] = values[0]
            frame.colorspace, frame.color_range, frame.pts = 6, 1, index
            container.mux(stream.encode(frame))
        if stream is not None:
            container.mux(stream.encode(None))
    return path


def side_by_side_layout(state: dict, layout: str, size: str = DEFAULT_SIZE) -> compose.SlideLayout:
    """Where the original and the codecs go on the slide, labels fitted."""
    labels, clips = _sources(state)
    height, width = clips[0].shape[1:3]
    return compose.tiles((width, height), [[label] for label in labels], layout, compose.resolution(size))


def side_by_side(state: dict, layout: str, path: Path, size: str = DEFAULT_SIZE) -> Path:
    """The original and the codecs in a grid or a row, each tile captioned, as an H.264 MP4 at the clip's rate."""
    _, clips = _sources(state)
    plan = side_by_side_layout(state, layout, size)
    return write_video(path, (plan.frame([c[t] for c in clips]) for t in range(len(clips[0]))), state["clip"]["fps"])


def wipe_video(state: dict, key: str, path: Path, size: str = DEFAULT_SIZE) -> Path:
    """Original | `key` (a shown result) with the split moving from left to right over the clip, as an MP4."""
    labels, clips = _sources(state)
    keys = ["original"] + [r["key"] for r in player_records(state)]
    if key not in keys[1:]:
        raise ValueError(f"{key} is not among the shown results")
    index = keys.index(key)
    original, coded = clips[0], clips[index]
    height, width = original.shape[1:3]
    plan, fitted = compose.wipe_layout((width, height), ("original", labels[index]), compose.resolution(size))
    count = len(original)

    def frames() -> Iterator[np.ndarray]:
        for t in range(count):
            yield compose.wipe(plan, fitted, original[t], coded[t], t / max(count - 1, 1))

    return write_video(path, frames(), state["clip"]["fps"])


def crop_layout(state: dict, frame: int, center_x: float, center_y: float, zoom: int, metrics: list[str],
                size: str = DEFAULT_SIZE) -> tuple[compose.SlideLayout, list[np.ndarray]]:
    """The crop figure's layout (labels and footnote drawn) and its crops: the same zoomed crop of one frame from
    the original and every codec, each captioned with its name and the chosen metrics (plain names) at this frame
    and over the clip; a footnote gives the frame, the crop and the metrics' exact definitions. The grid or the
    row, whichever shows the crops larger."""
    labels, clips = _sources(state)
    if not 1 <= len(metrics) <= CROP_METRICS:
        raise ValueError(f"choose one or two metrics for the crop figure, got {len(metrics)}")
    info = state["results"]["metrics"]
    unknown = [m for m in metrics if m not in metrics_in(state)]
    if unknown:
        raise ValueError(f"{', '.join(unknown)} was not measured in this run")
    index = int(np.clip(frame, 0, len(clips[0]) - 1))
    box = crop_box(clips[0].shape[1:3], center_x, center_y, int(zoom))
    crops = [np.asarray(c[index])[box] for c in clips]
    captions = [[labels[0], f"frame {index}"] + [""] * (len(metrics) - 1)]
    for label, r in zip(labels[1:], player_records(state)):
        lines = [label]
        for m in metrics:
            here = r["per_frame"].get(m, [])
            value = f"{here[index]:.4g} here" if index < len(here) else "not measured"  # the font has no dash
            clip = f", {r['metrics'][m]:.4g} clip" if m in r["metrics"] else ""
            lines.append(f"{engine.plain_name(m, info[m]['variant'])}: {value}{clip}")
        captions.append(lines)
    canvas = compose.resolution(size)
    height, width = crops[0].shape[:2]
    def notes(scale: float) -> list[str]:
        return [f"frame {index} of {state['clip']['name']}: the {width}x{height} crop centred at ({center_x:.2f}, "
                f"{center_y:.2f}) of the {clips[0].shape[2]}x{clips[0].shape[1]} frame, enlarged {scale:g}x"] + [
            f"{engine.plain_name(m, info[m]['variant'])} ({engine.direction(info[m]['higher_is_better'])}): "
            f"{info[m]['variant']}" for m in metrics]

    note_h = compose.footnote(notes(88.25), canvas)[0]  # room for the longest scale there can be
    room = (canvas[0], canvas[1] - note_h)
    plans = [compose.tiles((width, height), captions, layout, room) for layout in compose.LAYOUTS]
    plan = max(plans, key=lambda p: (p.scale, p.text_px))
    base = np.full((canvas[1], canvas[0], 3), compose.BACKGROUND, np.uint8)
    base[: room[1]] = plan.base
    plan.base, plan.canvas = base, canvas
    _, wrapped, note_px = compose.footnote(notes(plan.scale), canvas)
    compose.add_footnote(plan, wrapped, note_px)
    return plan, crops


def crop_figure(state: dict, frame: int, center_x: float, center_y: float, zoom: int, metrics: list[str],
                path: Path, size: str = DEFAULT_SIZE) -> Path:
    """The crop figure (see `crop_layout`) as a PNG."""
    from PIL import Image

    plan, crops = crop_layout(state, frame, center_x, center_y, zoom, metrics, size)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(plan.frame(crops)).save(path)
    return Path(path)


def rd_slides(state: dict, folder: Path, size: str = DEFAULT_SIZE) -> list[Path]:
    """Every RD plot of the run as PNG (at the slide size) and SVG (1920x1080, scalable) with slide-sized text;
    S2VC's curve is named as the model it is."""
    width, height = compose.resolution(size)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for metric, figure in rd_figures(state, s2vc_name(state)).items():
        slide = engine.slide_figure(figure)
        for suffix, scale in ((".png", height / compose.SLIDE[1]), (".svg", 1)):
            target = folder / f"rd_{metric}{suffix}"
            slide.write_image(target, width=compose.SLIDE[0], height=compose.SLIDE[1], scale=scale)
            written.append(target)
    return written
