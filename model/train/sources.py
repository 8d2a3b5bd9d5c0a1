"""Training sources: parse source specs, decode every clip once into a uint8 cache, split held-out items by name.

A source spec is a string:
  ``video:PATH``        one video file, or a folder of them (anything PyAV opens: mp4, avi, mkv, webm, mov, y4m,
                        raw H.264 .264)
  ``frames:PATH``       a folder of PNG/JPEG frames in name order (one clip), or a folder of such folders
  ``yuv:PATH@WxH``      raw I420 (yuv420p planar) with the given size; ``@WxH`` may be omitted when the file name
                        holds ``WxH`` (``cars_320x240.i420``)
  ``images:PATH``       still images (a file or a folder); clips get synthetic camera motion
  ``skimage``           natural images bundled with scikit-image (offline)
  ``gradio``            sample videos and photos bundled with gradio (offline)
  ``pack:PATH``         a data pack built by ``python -m model.train.pack`` (JPEG frames and a manifest); its items
                        keep the keys of the sources they came from, so the held-out split is the same

BasketballPass is the evaluation clip: naming it raises :class:`EvalDataError`; folder scans skip it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

EVAL_NAMES = ("basketballpass",)
VIDEO_EXTS = {".mp4", ".avi", ".mkv", ".webm", ".mov", ".y4m", ".m4v", ".264", ".h264"}
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
SKIMAGE_NAMES = (
    "astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
    "camera", "grass", "gravel", "brick", "moon", "coins", "page", "text",
)
GRADIO_VIDEOS = ("a.mp4", "b.mp4", "world.mp4")
GRADIO_IMAGES = ("cheetah.jpg", "cheetah1.jpg", "groot.jpeg", "lion.jpg", "tower.jpg")
CACHE_VERSION = 1
PACK_MANIFEST = "manifest.json"
PACK_FORMAT = 1


class EvalDataError(ValueError):
    """Raised when evaluation material (BasketballPass) is passed as training data."""


@dataclass
class ClipItem:
    """One training item: a decoded clip `[T,H,W,3]` uint8 (possibly memory-mapped) or one still image (T=1)."""

    key: str
    frames: np.ndarray
    still: bool


def is_eval_name(path: str | Path) -> bool:
    return any(name in str(path).lower() for name in EVAL_NAMES)


def check_not_eval(path: str | Path) -> None:
    """Raise if `path` names the evaluation clip."""
    if is_eval_name(path):
        raise EvalDataError(f"{path} is evaluation data (BasketballPass) and must never be used for training")


def item_key(path: Path) -> str:
    """A name that does not depend on where the data folder is mounted: parent folder / file name."""
    return f"{path.parent.name}/{path.name}"


def is_held_out(key: str, val_fraction: float) -> bool:
    """Deterministic split by name: a stable hash of the key, not a random draw."""
    digest = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16)
    return digest / 0xFFFFFFFF < val_fraction


def split_items(items: list[ClipItem], val_fraction: float) -> tuple[list[ClipItem], list[ClipItem]]:
    train = [it for it in items if not is_held_out(it.key, val_fraction)]
    val = [it for it in items if is_held_out(it.key, val_fraction)]
    return train, val


# ----------------------------------------------------------------------------------------------- decoding


def _fit(img: Image.Image, max_short_side: int) -> Image.Image:
    short = min(img.size)
    if short <= max_short_side:
        return img
    scale = max_short_side / short
    return img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)


def _decode_video(path: Path, max_short_side: int, max_frames: int) -> np.ndarray:
    import av

    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            frames.append(np.asarray(_fit(frame.to_image(), max_short_side)))
            if len(frames) >= max_frames:
                break
    if not frames:
        raise ValueError(f"no video frames decoded from {path}")
    return np.stack(frames)


def _decode_frames(folder: Path, max_short_side: int, max_frames: int) -> np.ndarray:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)[:max_frames]
    if not files:
        raise ValueError(f"no image frames in {folder}")
    return np.stack([np.asarray(_fit(Image.open(p).convert("RGB"), max_short_side)) for p in files])


def _decode_yuv(path: Path, size: tuple[int, int], max_short_side: int, max_frames: int) -> np.ndarray:
    import av

    w, h = size
    frame_bytes = w * h * 3 // 2
    count = min(path.stat().st_size // frame_bytes, max_frames)
    if count == 0:
        raise ValueError(f"{path} holds less than one {w}x{h} I420 frame")
    raw = np.fromfile(path, np.uint8, count * frame_bytes).reshape(count, h * 3 // 2, w)
    frames = [av.VideoFrame.from_ndarray(f, format="yuv420p").to_image() for f in raw]
    return np.stack([np.asarray(_fit(img, max_short_side)) for img in frames])


def _cached(kind: str, path: Path, cache_dir: Path, decode, max_short_side: int, max_frames: int) -> np.ndarray:
    """Decode once; later runs memory-map `cache_dir/<hash>.npy`."""
    stat = path.stat()
    ident = f"{CACHE_VERSION}|{kind}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{max_short_side}|{max_frames}"
    file = cache_dir / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', path.name)}-{hashlib.sha1(ident.encode()).hexdigest()[:12]}.npy"
    if not file.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        frames = decode()
        # a temporary file of its own: data-parallel ranks may fill the same cache at once
        with tempfile.NamedTemporaryFile(dir=cache_dir, prefix=f"{file.stem}.", suffix=".tmp", delete=False) as out:
            np.save(out, frames)
        Path(out.name).replace(file)
        log.info("cached %s: %s frames %sx%s", path, *frames.shape[:3])
    return np.load(file, mmap_mode="r")


def _load_image(path: Path, max_short_side: int) -> np.ndarray:
    return np.asarray(_fit(Image.open(path).convert("RGB"), max_short_side))


# ----------------------------------------------------------------------------------------------- sources


def _yuv_size(spec_size: str | None, path: Path) -> tuple[int, int]:
    match = re.search(r"(\d+)x(\d+)", spec_size or path.name) or re.search(r"(\d+)x(\d+)", path.parent.name)
    if not match:
        raise ValueError(f"raw I420 {path} needs a size: yuv:{path}@WIDTHxHEIGHT")
    return int(match.group(1)), int(match.group(2))


def _listed(folder: Path, exts: set[str]) -> list[Path]:
    found = []
    for p in sorted(folder.iterdir()):
        if is_eval_name(p):
            log.warning("skipping evaluation data %s", p)
        elif p.is_file() and p.suffix.lower() in exts:
            found.append(p)
    return found


def _frame_folders(folder: Path) -> list[Path]:
    """`folder` itself when it holds frames, otherwise its sub-folders that do."""
    if any(p.suffix.lower() in IMAGE_EXTS for p in folder.iterdir()):
        return [folder]
    subs = [p for p in sorted(folder.iterdir()) if p.is_dir()]
    for p in subs:
        if is_eval_name(p):
            log.warning("skipping evaluation data %s", p)
    return [p for p in subs if not is_eval_name(p)]


def _skimage_items(max_short_side: int) -> list[ClipItem]:
    import skimage.data

    items = []
    for name in SKIMAGE_NAMES:
        try:
            img = np.asarray(getattr(skimage.data, name)())
        except Exception as err:  # some need a download; skip those offline
            log.warning("skimage.data.%s unavailable: %s", name, err)
            continue
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        img = np.asarray(_fit(Image.fromarray(img[..., :3].astype(np.uint8)), max_short_side))
        items.append(ClipItem(f"skimage/{name}", img[None], still=True))
    return items


def _gradio_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("gradio")
    if spec is None or spec.origin is None:
        raise ValueError("source 'gradio' needs the gradio package")
    return Path(spec.origin).parent / "media_assets"


def _pack_items(path: Path, cache_dir: Path, max_short_side: int, max_frames: int,
                exclude: tuple[str, ...]) -> list[ClipItem]:
    """The items of a data pack (see `model.train.pack`), checked against its manifest."""
    manifest_file = path / PACK_MANIFEST
    if not manifest_file.is_file():
        raise FileNotFoundError(f"{path} is not a data pack: no {PACK_MANIFEST} (build one with "
                                "python -m model.train.pack)")
    manifest = json.loads(manifest_file.read_text())
    if manifest.get("format") != PACK_FORMAT:
        raise ValueError(f"{manifest_file}: pack format {manifest.get('format')!r}, expected {PACK_FORMAT}")
    items = []
    for entry in manifest["items"]:
        if any(pattern in entry["key"] for pattern in exclude):
            continue
        folder = path / entry["folder"]
        found = len(list(folder.glob("*.jpg"))) if folder.is_dir() else 0
        if found != entry["frames"]:
            raise ValueError(f"data pack {path}: {folder.name} holds {found} frames, the manifest says "
                             f"{entry['frames']}")
        if entry["still"]:
            frames = _load_image(folder / "000000.jpg", max_short_side)[None]
        else:
            frames = _cached("frames", folder, cache_dir, lambda f=folder: _decode_frames(
                f, max_short_side, max_frames), max_short_side, max_frames)
        items.append(ClipItem(entry["key"], frames, still=entry["still"]))
    return items


def load_source(spec: str, cache_dir: Path, max_short_side: int = 480, max_frames: int = 300,
                exclude: tuple[str, ...] = ()) -> list[ClipItem]:
    """Items of one source spec (see the module docstring), minus those whose key contains a pattern of `exclude`."""
    check_not_eval(spec)
    items = _load_source(spec, cache_dir, max_short_side, max_frames, exclude)
    for item in items:
        check_not_eval(item.key)
    return items


def _load_source(spec: str, cache_dir: Path, max_short_side: int, max_frames: int,
                 exclude: tuple[str, ...]) -> list[ClipItem]:
    def keep(paths: list[Path], key=item_key) -> list[Path]:
        return [p for p in paths if not any(pattern in key(p) for pattern in exclude)]

    kind, _, rest = spec.partition(":")
    if kind == "skimage":
        return [it for it in _skimage_items(max_short_side) if not any(pat in it.key for pat in exclude)]
    if kind == "gradio":
        media = _gradio_dir()
        videos = keep([media / "videos" / n for n in GRADIO_VIDEOS if (media / "videos" / n).exists()])
        images = keep([media / "images" / n for n in GRADIO_IMAGES if (media / "images" / n).exists()])
        return [
            ClipItem(f"gradio/{p.name}", _cached("video", p, cache_dir, lambda p=p: _decode_video(
                p, max_short_side, max_frames), max_short_side, max_frames), still=False) for p in videos
        ] + [ClipItem(f"gradio/{p.name}", _load_image(p, max_short_side)[None], still=True) for p in images]
    path_str, _, size = rest.partition("@")
    path = Path(path_str).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"training source {spec!r}: {path} does not exist")
    if kind == "video":
        files = keep([path] if path.is_file() else _listed(path, VIDEO_EXTS))
        return [ClipItem(item_key(p), _cached("video", p, cache_dir, lambda p=p: _decode_video(
            p, max_short_side, max_frames), max_short_side, max_frames), still=False) for p in files]
    if kind == "frames":
        return [ClipItem(f"{p.name}/", _cached("frames", p, cache_dir, lambda p=p: _decode_frames(
            p, max_short_side, max_frames), max_short_side, max_frames), still=False)
            for p in keep(_frame_folders(path), key=lambda p: f"{p.name}/")]
    if kind == "yuv":
        if not keep([path]):
            return []
        wh = _yuv_size(size or None, path)
        return [ClipItem(item_key(path), _cached("yuv", path, cache_dir, lambda: _decode_yuv(
            path, wh, max_short_side, max_frames), max_short_side, max_frames), still=False)]
    if kind == "images":
        files = keep([path] if path.is_file() else _listed(path, IMAGE_EXTS))
        return [ClipItem(item_key(p), _load_image(p, max_short_side)[None], still=True) for p in files]
    if kind == "pack":
        return _pack_items(path, cache_dir, max_short_side, max_frames, exclude)
    raise ValueError(f"unknown source kind {kind!r} in {spec!r}; use video:, frames:, yuv:, images:, pack:, skimage, "
                     "gradio")


def load_sources(
    specs: list[str], cache_dir: str | Path, exclude: tuple[str, ...] = (), max_short_side: int = 480,
    max_frames: int = 300,
) -> list[ClipItem]:
    """Items of every spec, without those whose key contains one of `exclude` (and never evaluation data)."""
    items = [item for spec in specs
             for item in load_source(spec, Path(cache_dir).expanduser(), max_short_side, max_frames, exclude)]
    if not items:
        raise ValueError(f"no training items found in {specs}")
    return items
