"""Per-session temporary folders: one per browser session, removed when the session ends or grows too old.

A closed session (its tab closed, or its state expired) stays closed: its runs are told to stop, and whatever a
run was still writing is removed once that run has stopped (`discard_if_closed`). Files Gradio keeps for a session
outside its folder (uploads) are listed in the folder's `UPLOADS` file and removed with it, unless another
session lists the same file: Gradio keeps one copy of identical uploads, so two tabs may share one.
"""
from __future__ import annotations

import contextlib
import shutil
import threading
import time
from pathlib import Path

UPLOADS = "uploads.txt"
_closed: set[str] = set()
_stops: dict[str, list[threading.Event]] = {}
_lock = threading.Lock()


def session_dir(root: Path, session_hash: str) -> Path:
    """The folder of one browser session (created when missing, unless the session is closed), named after
    Gradio's session hash."""
    safe = "".join(ch for ch in session_hash if ch.isalnum() or ch in "-_") or "anonymous"
    path = Path(root) / safe
    if not is_closed(path):
        path.mkdir(parents=True, exist_ok=True)
    return path


class SessionClosed(RuntimeError):
    """The browser session ended; its work stops and writes nothing more."""


def run_dir(session: Path, name: str) -> Path:
    """A fresh sub-folder for one run inside a session folder (older runs of the session are removed)."""
    if is_closed(session):
        raise SessionClosed(f"session {Path(session).name} is closed")
    for old in Path(session).glob("run-*"):
        shutil.rmtree(old, ignore_errors=True)
    path = Path(session) / f"run-{name}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def remove(path: str | Path | None) -> None:
    """Delete a session folder and the uploads it alone lists (one another session lists too stays)."""
    if not path:
        return
    folder = Path(path).resolve()
    cache = folder.parent.parent  # the app's temp root, Gradio's cache: nothing outside it goes
    with _lock:  # no other session notes an upload between the check and the deletion
        shared = uploads_of_others(folder)
        for upload in _uploads(folder):
            if upload.is_relative_to(cache) and str(upload) not in shared:
                upload.unlink(missing_ok=True)
                with contextlib.suppress(OSError):  # Gradio keeps each upload in a folder of its own
                    upload.parent.rmdir()
        shutil.rmtree(folder, ignore_errors=True)


def _uploads(folder: Path) -> list[Path]:
    """The uploads a session folder lists."""
    listed = folder / UPLOADS
    return [Path(line) for line in listed.read_text(encoding="utf-8").splitlines()] if listed.is_file() else []


def uploads_of_others(folder: Path) -> set[str]:
    """The uploads listed by the other session folders beside `folder`."""
    return {str(upload) for other in folder.parent.glob(f"*/{UPLOADS}") if other.parent != folder
            for upload in _uploads(other.parent)}


def note_upload(session: Path, upload: str | Path) -> None:
    """Remember a file Gradio stored for this session elsewhere, so that it goes with the session (once no other
    session lists it)."""
    upload = Path(upload).resolve()
    with _lock:
        if upload not in _uploads(Path(session)):
            with open(Path(session) / UPLOADS, "a", encoding="utf-8") as f:
                f.write(f"{upload}\n")


def close(path: str | Path | None) -> None:
    """End a session: stop its runs, remove its folder, and keep it closed (used as the state's
    `delete_callback` and from `demo.unload`)."""
    if not path:
        return
    key = str(Path(path).resolve())
    with _lock:
        _closed.add(key)
        stops = _stops.pop(key, [])
    for stop in stops:
        stop.set()
    remove(path)


def watch(path: str | Path, stop: threading.Event) -> None:
    """Set `stop` when the session at `path` closes (at once if it is closed already)."""
    key = str(Path(path).resolve())
    with _lock:
        if key not in _closed:
            _stops.setdefault(key, []).append(stop)
            return
    stop.set()


def is_closed(path: str | Path) -> bool:
    with _lock:
        return str(Path(path).resolve()) in _closed


def discard_if_closed(path: str | Path) -> None:
    """Remove what a stopped run left in a session that closed meanwhile."""
    if is_closed(path):
        remove(path)


def sweep(root: Path, max_age_s: float, now: float | None = None) -> list[Path]:
    """Remove session folders untouched for longer than `max_age_s`; returns what was removed."""
    now = time.time() if now is None else now
    removed = []
    if not Path(root).is_dir():
        return removed
    for path in Path(root).iterdir():
        if path.is_dir() and now - _last_touched(path) > max_age_s:
            remove(path)
            removed.append(path)
    return removed


def _last_touched(path: Path) -> float:
    times = [path.stat().st_mtime]
    times += [p.stat().st_mtime for p in path.rglob("*") if p.exists()]
    return max(times)
