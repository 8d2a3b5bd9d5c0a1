"""Slide frames from decoded frames: labelled tiles in a grid or a row, and a wipe between two clips, drawn on a
16:9 canvas (1920x1080 unless the user picks 1280x720 or 3840x2160).

Pure image work (numpy and Pillow), no files. Pictures take the largest clean scale their cell allows (a whole
factor, else a multiple of 1/4): enlarged with nearest neighbour, so coding artefacts stay visible as pixels, or
reduced by area averaging. Every label is measured: it is wrapped (at " · ", then at spaces) or set smaller until
it fits its tile, never cut; `SlideLayout.texts` keeps each drawn line's box, so that tests can check it.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont

RESOLUTIONS = {"1280x720": (1280, 720), "1920x1080": (1920, 1080), "3840x2160": (3840, 2160)}
SLIDE = RESOLUTIONS["1920x1080"]
SLIDE_TEXT_PX = 32  # label height on a 1080p slide (legible from the back of a room); scaled with the canvas
MIN_TEXT = 24  # a label may shrink to this (at 1080p) before it is wrapped onto more lines
SMALLEST_TEXT = 14  # and, wrapped, to this at the very least
NOTE_TEXT_PX = 20  # footnotes (exact metric definitions)
LAYOUTS = ("grid", "row")
BACKGROUND, INK, MUTED, SPLIT = (16, 16, 16), (255, 255, 255), (190, 190, 190), (255, 200, 0)
Box = tuple[int, int, int, int]  # left, top, right, bottom (right and bottom exclusive)


def resolution(name: str) -> tuple[int, int]:
    """A canvas size by name ("1920x1080")."""
    if name not in RESOLUTIONS:
        raise ValueError(f"slide size must be one of {', '.join(RESOLUTIONS)}, got {name!r}")
    return RESOLUTIONS[name]


def font(size: int) -> ImageFont.FreeTypeFont:
    """Pillow's bundled scalable font (no system font needed)."""
    return ImageFont.load_default(size=max(6, int(size)))


def px(size: float, canvas: tuple[int, int]) -> int:
    """A 1080p pixel size on a canvas of another height."""
    return max(6, round(size * canvas[1] / SLIDE[1]))


def line_height(size: int) -> int:
    return round(size * 1.3)


def text_width(text: str, size: int) -> int:
    left, _, right, _ = font(size).getbbox(text, anchor="la")
    return right - min(left, 0)


def grid_shape(count: int, layout: str) -> tuple[int, int]:
    """(rows, columns) for `count` tiles: a row, or the squarest grid (2x2 for four)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if layout == "row":
        return 1, count
    columns = math.ceil(math.sqrt(count))
    return math.ceil(count / columns), columns


def clean_scale(fit: float) -> float:
    """The scale a picture is drawn at when `fit` would fill its room: an enlargement is the whole factor below
    `fit` when that keeps 85% of the size, else `fit` rounded down to a quarter; a reduction is `fit` itself."""
    if fit < 1:
        return fit
    return float(math.floor(fit)) if math.floor(fit) >= 0.85 * fit else math.floor(fit * 4) / 4


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`image` at `size` (width, height): nearest neighbour when enlarged, area averaging when reduced."""
    picture = Image.fromarray(np.ascontiguousarray(image))
    if picture.size == size:
        return np.asarray(picture)
    enlarging = size[0] >= picture.width
    return np.asarray(picture.resize(size, Image.Resampling.NEAREST if enlarging else Image.Resampling.BOX))


def enlarge(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement by a whole factor."""
    return image if factor == 1 else np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def _wrap(text: str, separator: str, width: int, size: int) -> list[str] | None:
    """`text` broken at `separator` into lines no wider than `width` (the separator is dropped at a break);
    None when one piece alone is too wide."""
    lines: list[str] = []
    for piece in text.split(separator):
        joined = f"{lines[-1]}{separator}{piece}" if lines else piece
        if lines and text_width(joined, size) <= width:
            lines[-1] = joined
        elif text_width(piece, size) <= width:
            lines.append(piece)
        else:
            return None
    return lines


def fit_text(text: str, width: int, size: int, smallest: int, max_lines: int = 2) -> tuple[list[str], int]:
    """`text` as lines that fit `width` pixels: as it is at the largest size from `size` down to `smallest`;
    else broken at " · " (then at spaces) into at most `max_lines` lines; else at `smallest` on as many lines as
    it takes; else smaller still. Never cut."""
    for current in range(size, smallest - 1, -1):
        if text_width(text, current) <= width:
            return [text], current
    for current in range(size, smallest - 1, -1):
        for separator in (" · ", " "):
            lines = _wrap(text, separator, width, current)
            if lines and len(lines) <= max_lines:
                return lines, current
    current = smallest
    while current > 6:
        lines = _wrap(text, " ", width, current)
        if lines:
            return lines, current
        current -= 1
    return [text], current


def fit_captions(captions: Sequence[Sequence[str]], width: int, size: int, smallest: int
                 ) -> tuple[list[list[str]], int]:
    """Every tile's caption lines fitted to `width` at one common size (the smallest any line needs)."""
    common = min((fit_text(line, width, size, smallest)[1] for lines in captions for line in lines if line),
                 default=size)
    fitted = [[part for line in lines for part in (fit_text(line, width, common, common, 99)[0] if line else [""])]
              for lines in captions]
    return fitted, common


@dataclass
class SlideLayout:
    """Where each picture goes on the canvas and the canvas with every label drawn (`base`); `frame` pastes one
    set of pictures on a copy. `texts` holds each drawn line's tile index, text and measured box."""

    canvas: tuple[int, int]
    picture: tuple[int, int]  # each picture's drawn size (width, height)
    scale: float
    text_px: int
    pictures: list[Box] = field(default_factory=list)
    tiles: list[Box] = field(default_factory=list)
    texts: list[tuple[int, str, Box]] = field(default_factory=list)
    base: np.ndarray | None = None

    def frame(self, images: Sequence[np.ndarray]) -> np.ndarray:
        out = self.base.copy()
        for image, (left, top, right, bottom) in zip(images, self.pictures):
            out[top:bottom, left:right] = resize(image, self.picture)
        return out


def _draw_lines(draw: ImageDraw.ImageDraw, layout: SlideLayout, tile: int, lines: Sequence[str], x: int, y: int,
                size: int, fill: tuple[int, int, int] = INK) -> int:
    """Draw centred lines from `y` down; record their boxes; returns the y below them."""
    face = font(size)
    for line in lines:
        if line:
            draw.text((x, y), line, font=face, fill=fill, anchor="ma")
            layout.texts.append((tile, line, tuple(int(v) for v in draw.textbbox((x, y), line, font=face,
                                                                                  anchor="ma"))))
        y += line_height(size)
    return y


def tiles(picture_size: tuple[int, int], captions: Sequence[Sequence[str]], layout: str,
          canvas: tuple[int, int] = SLIDE, text_px: int | None = None) -> SlideLayout:
    """The layout of `len(captions)` pictures of `picture_size` (width, height) in a grid or a row on `canvas`,
    each with its caption lines underneath, as large as the canvas allows."""
    rows, columns = grid_shape(len(captions), layout)
    width, height = canvas
    gap = px(6, canvas)
    cell_w, cell_h = (width - (columns + 1) * gap) // columns, (height - (rows + 1) * gap) // rows
    size = text_px or px(SLIDE_TEXT_PX, canvas)
    fitted, size = fit_captions(captions, cell_w - 2 * gap, size, min(size, px(MIN_TEXT, canvas)))
    if size < px(MIN_TEXT, canvas):  # too narrow even wrapped onto two lines: allow more lines, not tinier text
        fitted, size = fit_captions(captions, cell_w - 2 * gap, px(MIN_TEXT, canvas), px(SMALLEST_TEXT, canvas))
    count = max(len(lines) for lines in fitted)
    caption_h = count * line_height(size) + size // 3
    scale = clean_scale(max(0.01, min(cell_w / picture_size[0], (cell_h - caption_h) / picture_size[1])))
    shown = (max(1, round(picture_size[0] * scale)), max(1, round(picture_size[1] * scale)))
    tile_h = shown[1] + caption_h
    top0 = (height - rows * tile_h - (rows - 1) * gap) // 2
    result = SlideLayout(canvas, shown, scale, size)
    image = Image.new("RGB", canvas, BACKGROUND)
    draw = ImageDraw.Draw(image)
    for index, lines in enumerate(fitted):
        row, column = divmod(index, columns)
        in_row = min(columns, len(fitted) - row * columns)  # a last row with fewer tiles is centred
        left = (width - in_row * cell_w - (in_row - 1) * gap) // 2 + column * (cell_w + gap)
        top = top0 + row * (tile_h + gap)
        x = left + (cell_w - shown[0]) // 2
        result.tiles.append((left, top, left + cell_w, top + tile_h))
        result.pictures.append((x, top, x + shown[0], top + shown[1]))
        _draw_lines(draw, result, index, lines, left + cell_w // 2, top + shown[1] + size // 6, size)
    result.base = np.asarray(image).copy()
    return result


def footnote(lines: Sequence[str], canvas: tuple[int, int]) -> tuple[int, list[str], int]:
    """Room for a footnote at the bottom of `canvas`: (its height, its lines wrapped to the width, text size)."""
    size = px(NOTE_TEXT_PX, canvas)
    wrapped = [part for line in lines for part in fit_text(line, canvas[0] - px(40, canvas), size,
                                                           px(SMALLEST_TEXT, canvas), 99)[0]]
    return len(wrapped) * line_height(size) + size, wrapped, size


def add_footnote(layout: SlideLayout, lines: Sequence[str], size: int) -> None:
    """Draw footnote lines at the bottom of the layout's canvas (their boxes go in `texts` with tile -1)."""
    image = Image.fromarray(layout.base)
    draw = ImageDraw.Draw(image)
    y = layout.canvas[1] - len(lines) * line_height(size) - size // 2
    _draw_lines(draw, layout, -1, lines, layout.canvas[0] // 2, y, size, MUTED)
    layout.base = np.asarray(image).copy()


def wipe_layout(picture_size: tuple[int, int], labels: tuple[str, str], canvas: tuple[int, int] = SLIDE
                ) -> tuple[SlideLayout, list[tuple[list[str], int]]]:
    """Where a wipe's picture goes (as large as the canvas allows) and its two labels fitted to half its width
    (set smaller down to `MIN_TEXT`, then wrapped)."""
    result = tiles(picture_size, [[]], "row", canvas)
    size, pad = px(SLIDE_TEXT_PX, canvas), px(10, canvas)
    half = result.picture[0] // 2 - 3 * pad
    return result, [fit_text(label, half, size, px(MIN_TEXT, canvas), 3) for label in labels]


def wipe(layout: SlideLayout, labels: list[tuple[list[str], int]], left: np.ndarray, right: np.ndarray,
         position: float) -> np.ndarray:
    """`left` up to the split at `position` (0..1 of the width) and `right` after it, a split line between, and
    each side's label in its top corner on a dark box; the labels' boxes are recorded once (first call)."""
    a, b = (resize(img, layout.picture) for img in (left, right))
    split = int(round(np.clip(position, 0.0, 1.0) * a.shape[1]))
    picture = np.concatenate([a[:, :split], b[:, split:]], axis=1)
    line = max(2, layout.picture[1] // 200)
    picture[:, max(0, split - line // 2):split + line - line // 2] = SPLIT
    out = layout.base.copy()
    x0, y0, x1, y1 = layout.pictures[0]
    out[y0:y1, x0:x1] = picture
    image = Image.fromarray(out)
    draw = ImageDraw.Draw(image)
    pad = px(10, layout.canvas)
    record = not layout.texts
    for tile, ((lines, size), x, anchor) in enumerate(zip(labels, (x0 + 2 * pad, x1 - 2 * pad), ("la", "ra"))):
        face = font(size)
        boxes = [draw.textbbox((x, y0 + 2 * pad + i * line_height(size)), text, font=face, anchor=anchor)
                 for i, text in enumerate(lines)]
        draw.rectangle((min(b[0] for b in boxes) - pad, min(b[1] for b in boxes) - pad,
                        max(b[2] for b in boxes) + pad, max(b[3] for b in boxes) + pad), fill=BACKGROUND)
        for i, (text, box) in enumerate(zip(lines, boxes)):
            draw.text((x, y0 + 2 * pad + i * line_height(size)), text, font=face, fill=INK, anchor=anchor)
            if record:
                layout.texts.append((tile, text, tuple(int(v) for v in box)))
    return np.asarray(image)
