"""Slide frames from decoded frames: labelled tiles in a grid or a row, a wipe between two clips, a crop figure.

Pure image work (numpy and Pillow), no files. Pictures are enlarged by whole factors with nearest-neighbour, so
coding artefacts stay visible as pixels; text is sized for a 1920x1080 slide: `SLIDE_TEXT_PX` pixels tall once
the picture is fitted to the slide.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SLIDE = (1920, 1080)
SLIDE_TEXT_PX = 32  # text height on a 1080p slide (legible from the back of a room)
MIN_TEXT = 24  # the smallest it may become to keep a larger picture
LAYOUTS = ("grid", "row")
BACKGROUND, INK, SPLIT = (16, 16, 16), (255, 255, 255), (255, 200, 0)
GAP = 4  # pixels between tiles


def font(size: int) -> ImageFont.FreeTypeFont:
    """Pillow's bundled scalable font (no system font needed)."""
    return ImageFont.load_default(size=max(8, int(size)))


def grid_shape(count: int, layout: str) -> tuple[int, int]:
    """(rows, columns) for `count` tiles: a row, or the squarest grid (2x2 for four)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if layout == "row":
        return 1, count
    columns = math.ceil(math.sqrt(count))
    return math.ceil(count / columns), columns


def enlargement(width: int, height: int, bound: tuple[int, int] = SLIDE) -> int:
    """The largest whole enlargement that keeps `width` x `height` within `bound` (at least 1)."""
    return max(1, min(bound[0] // max(width, 1), bound[1] // max(height, 1)))


def text_px(width: int, height: int) -> int:
    """Font size in pixels of a picture `width` x `height` so that its text is `SLIDE_TEXT_PX` tall on a slide."""
    fit = min(SLIDE[0] / width, SLIDE[1] / height)
    return max(12, round(SLIDE_TEXT_PX / fit))


def shrink(image: np.ndarray, factor: int) -> np.ndarray:
    """Box-filter reduction by a whole factor (for pictures larger than a slide)."""
    return image if factor == 1 else np.asarray(Image.fromarray(np.ascontiguousarray(image)).reduce(factor))


def enlarge(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement by a whole factor."""
    return image if factor == 1 else np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def captioned(image: np.ndarray, lines: Sequence[str], size: int) -> np.ndarray:
    """`image` with a dark caption strip underneath holding `lines` (centred, white)."""
    face = font(size)
    line_h = round(size * 1.35)
    strip = Image.new("RGB", (image.shape[1], caption_height(size, len(lines))), BACKGROUND)
    draw = ImageDraw.Draw(strip)
    for i, line in enumerate(lines):
        draw.text((image.shape[1] / 2, size // 4 + i * line_h), line, font=face, fill=INK, anchor="ma")
    return np.concatenate([image, np.asarray(strip)], axis=0)


def tiles(images: Sequence[np.ndarray], captions: Sequence[Sequence[str]], layout: str, reduce: int, factor: int,
          size: int, gap: int = GAP) -> np.ndarray:
    """Captioned images (reduced, then enlarged, by whole factors) in a grid or a row on a dark background;
    every image has the same size."""
    cells = [captioned(enlarge(shrink(np.asarray(img), reduce), factor), lines, size)
             for img, lines in zip(images, captions)]
    rows, columns = grid_shape(len(cells), layout)
    cell_h, cell_w = max(c.shape[0] for c in cells), cells[0].shape[1]
    out = np.empty((rows * cell_h + (rows + 1) * gap, columns * cell_w + (columns + 1) * gap, 3), np.uint8)
    out[:] = BACKGROUND
    for index, cell in enumerate(cells):
        r, c = divmod(index, columns)
        top, left = gap + r * (cell_h + gap), gap + c * (cell_w + gap)
        out[top:top + cell.shape[0], left:left + cell_w] = cell
    return out


def shrinking(width: int, height: int, bound: tuple[int, int] = SLIDE) -> int:
    """The smallest whole reduction that brings `width` x `height` within `bound` (1 when it fits already)."""
    return max(1, math.ceil(width / bound[0]), math.ceil(height / bound[1]))


def tile_layout(width: int, height: int, count: int, layout: str, lines: int = 1) -> tuple[int, int, int]:
    """(reduction, enlargement, font size) for `count` tiles of `width` x `height` with `lines` caption lines
    each, so that the whole picture, captions and gaps included, fits a slide with its text `SLIDE_TEXT_PX` tall
    (down to `MIN_TEXT` when that keeps a larger enlargement)."""
    rows, columns = grid_shape(count, layout)
    reduce = shrinking(width * columns, height * rows)
    width, height = width // reduce, height // reduce

    def total_w(factor: int) -> int:
        return columns * width * factor + (columns + 1) * GAP

    def total_h(factor: int, size: int) -> int:
        return rows * (height * factor + caption_height(size, lines)) + (rows + 1) * GAP

    for factor in range(enlargement(width * columns, height * rows), 0, -1):
        size = text_px(total_w(factor), total_h(factor, 0))
        for _ in range(3):  # captions add height, which shrinks the picture on the slide: let the size settle
            size = text_px(total_w(factor), total_h(factor, size))
        room = (SLIDE[1] - total_h(factor, 0)) // rows  # caption height per row that still fits the slide
        smallest = size * MIN_TEXT // SLIDE_TEXT_PX
        while size > smallest and caption_height(size, lines) > room:
            size -= 1  # a little smaller text rather than a smaller picture
        if total_h(factor, size) <= SLIDE[1] and total_w(factor) <= SLIDE[0]:
            return reduce, factor, size
    return reduce, 1, size


def caption_height(size: int, lines: int) -> int:
    """Height of a caption strip of `lines` lines at font size `size` (as `captioned` draws it)."""
    return round(size * 1.35) * lines + size // 2 if lines else 0


def wipe(left: np.ndarray, right: np.ndarray, position: float, labels: tuple[str, str], reduce: int, factor: int,
         size: int) -> np.ndarray:
    """`left` up to the split at `position` (0..1 of the width) and `right` after it, a split line between, and
    each side's label in its top corner (both pictures reduced, then enlarged, by whole factors)."""
    a, b = (enlarge(shrink(np.asarray(img), reduce), factor) for img in (left, right))
    split = int(round(np.clip(position, 0.0, 1.0) * a.shape[1]))
    out = np.concatenate([a[:, :split], b[:, split:]], axis=1)
    line = max(2, size // 8)
    out[:, max(0, split - line // 2):split + line - line // 2] = SPLIT
    image = Image.fromarray(np.ascontiguousarray(out))
    draw, face, pad = ImageDraw.Draw(image), font(size), size // 3
    for text, x, anchor in ((labels[0], pad, "la"), (labels[1], out.shape[1] - pad, "ra")):
        box = draw.textbbox((x, pad), text, font=face, anchor=anchor)
        draw.rectangle((box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad), fill=BACKGROUND)
        draw.text((x, pad), text, font=face, fill=INK, anchor=anchor)
    return np.asarray(image)


def even(image: np.ndarray) -> np.ndarray:
    """Crop to even height and width (H.264 4:2:0 needs them)."""
    return image[: image.shape[0] // 2 * 2, : image.shape[1] // 2 * 2]
