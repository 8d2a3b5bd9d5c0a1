"""The sequences of a suite, by dataset: from a folder tree or from a manifest file (JSON or YAML).

Folder: every sub-folder of SOURCE is a dataset and every entry in it a sequence (a video file, ``.y4m``, raw
``.yuv`` / ``.i420`` with its size, and optionally its fps, in the name as the standard test sets write it, or a
folder of PNG frames); sequences directly in SOURCE form a dataset named after SOURCE.

Manifest::

    datasets:
      HEVC-B:
        - path: ${S2VC_SHARED}/data/video/BasketballPass_416x240_100f_png   # or just the path as a string
          fps: 50            # where the file cannot say (PNG folders, raw yuv without it in the name)
          size: 416x240      # raw yuv without the size in the name
          name: BasketballPass   # default: the file name without its suffix

Paths expand environment variables (``$S2VC_SHARED`` defaults to ``../shared`` next to the repository, as
everywhere in the project) and ``~``; relative paths are relative to the manifest's folder.
"""
from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.video_io import RAW_SUFFIXES, VideoReadError, probe_video, raw_name_hints

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".webm", ".avi", ".y4m", *RAW_SUFFIXES)
MANIFEST_SUFFIXES = (".json", ".yaml", ".yml")
DEFAULT_SHARED = Path(__file__).resolve().parents[2].parent / "shared"


class SourceError(ValueError):
    """The suite's input cannot be used; one line naming the file or entry and the problem."""


@dataclass(frozen=True)
class Sequence:
    """One test sequence: where it is, what it is called, and the size/fps its file cannot state."""

    dataset: str
    name: str
    path: str  # absolute
    fps: float | None = None
    size: tuple[int, int] | None = None

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.name}"


def load_sequences(source: str | Path, fps: float | None = None,
                   size: tuple[int, int] | None = None) -> list[Sequence]:
    """Every sequence of a folder tree or manifest, each probed (readable, fps known); ``fps`` / ``size`` are the
    defaults for sequences that state neither. Raises SourceError naming every unusable one."""
    p = Path(source).expanduser()
    if not p.exists():
        raise SourceError(f"{p}: no such folder or manifest file")
    if p.is_file():
        if p.suffix.lower() not in MANIFEST_SUFFIXES:
            raise SourceError(f"{p}: a manifest must be .json, .yaml or .yml (or pass a folder of datasets)")
        sequences = _from_manifest(p, fps, size)
    else:
        sequences = _from_folder(p, fps, size)
    if not sequences:
        raise SourceError(f"{p}: no sequences found (video files, .y4m, raw .yuv/.i420 or PNG folders)")
    duplicates = sorted(key for key, n in Counter(s.key for s in sequences).items() if n > 1)
    if duplicates:
        raise SourceError(f"{p}: sequence names repeat within a dataset: {', '.join(duplicates)} (give each a name)")
    problems = []
    for seq in sequences:
        try:
            probe_video(seq.path, size=seq.size, fps=seq.fps)
        except VideoReadError as exc:
            problems.append(f"{seq.key}: {exc}")
    if problems:
        raise SourceError(f"{len(problems)} sequence(s) cannot be read: " + "; ".join(problems))
    return sequences


def _is_sequence(p: Path) -> bool:
    if p.is_dir():
        return any(p.glob("*.png"))
    return p.suffix.lower() in VIDEO_SUFFIXES


def _defaults(p: Path, fps: float | None, size: tuple[int, int] | None) -> dict[str, Any]:
    """The suite-wide fps / size for a sequence that cannot state its own (PNG folders, raw yuv not named with
    it); a file's own frame rate is never overridden by the default."""
    raw = p.suffix.lower() in RAW_SUFFIXES
    named_size, named_fps = raw_name_hints(p) if raw else (None, None)
    return {"fps": fps if (p.is_dir() or (raw and named_fps is None)) else None,
            "size": size if (raw and named_size is None) else None}


def _sequence_name(p: Path) -> str:
    return p.name if p.is_dir() else p.stem


def _from_folder(root: Path, fps: float | None, size: tuple[int, int] | None) -> list[Sequence]:
    sequences = []
    for entry in sorted(root.iterdir()):
        if _is_sequence(entry):
            sequences.append(Sequence(root.name, _sequence_name(entry), str(entry.resolve()),
                                      **_defaults(entry, fps, size)))
        elif entry.is_dir():
            sequences += [Sequence(entry.name, _sequence_name(e), str(e.resolve()), **_defaults(e, fps, size))
                          for e in sorted(entry.iterdir()) if _is_sequence(e)]
    return sequences


def _read_manifest(path: Path) -> Any:
    import yaml

    try:
        text = path.read_text()
        return json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SourceError(f"{path}: not a readable {path.suffix[1:].upper()} manifest "
                          f"({' '.join(str(exc).split())[:200]})") from None


def _expand(text: str, base: Path) -> Path:
    env = dict(os.environ)
    env.setdefault("S2VC_SHARED", str(DEFAULT_SHARED))
    expanded = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m[1] or m[2], m[0]), text)
    if "$" in expanded:
        raise SourceError(f"{text}: environment variable not set ({expanded})")
    p = Path(expanded).expanduser()
    return p if p.is_absolute() else (base / p)


def _parse_size(value: Any, where: str) -> tuple[int, int] | None:
    if value is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", str(value).lower())
    if not match:
        raise SourceError(f"{where}: size must be WIDTHxHEIGHT, got {value!r}")
    return int(match[1]), int(match[2])


def _from_manifest(path: Path, fps: float | None, size: tuple[int, int] | None) -> list[Sequence]:
    data = _read_manifest(path)
    datasets = data.get("datasets") if isinstance(data, dict) else None
    if not isinstance(datasets, dict) or not datasets:
        raise SourceError(f"{path}: a manifest needs a 'datasets' mapping: dataset name -> list of sequences")
    sequences = []
    for dataset, entries in datasets.items():
        if not isinstance(entries, list):
            raise SourceError(f"{path}: dataset {dataset!r} must be a list of sequences")
        for i, entry in enumerate(entries):
            where = f"{path}: {dataset}[{i}]"
            item = {"path": entry} if isinstance(entry, str) else entry
            if not isinstance(item, dict) or "path" not in item:
                raise SourceError(f"{where}: a sequence is a path or a mapping with 'path'")
            unknown = set(item) - {"path", "name", "fps", "size"}
            if unknown:
                raise SourceError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} "
                                  "(known: path, name, fps, size)")
            seq_path = _expand(str(item["path"]), path.parent).resolve()
            seq_fps = item.get("fps")
            if seq_fps is not None and (not isinstance(seq_fps, (int, float)) or seq_fps <= 0):
                raise SourceError(f"{where}: fps must be a positive number, got {seq_fps!r}")
            default = _defaults(seq_path, fps, size)
            sequences.append(Sequence(str(dataset), str(item.get("name") or _sequence_name(seq_path)), str(seq_path),
                                      float(seq_fps) if seq_fps is not None else default["fps"],
                                      _parse_size(item.get("size"), where) or default["size"]))
    return sequences
