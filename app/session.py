"""Per-session temporary folders: one per browser session, removed when the session ends or grows too old."""
from __future__ import annotations

import shutil
import time
from pathlib import Path


def session_dir(root: Path, session_hash: str) -> Path:
    """The folder of one browser session (created when missing), named after Gradio's session hash."""
    safe = "".join(ch for ch in session_hash if ch.isalnum() or ch in "-_") or "anonymous"
    path = Path(root) / safe
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_dir(session: Path, name: str) -> Path:
    """A fresh sub-folder for one run inside a session folder (older runs of the session are removed)."""
    for old in Path(session).glob("run-*"):
        shutil.rmtree(old, ignore_errors=True)
    path = Path(session) / f"run-{name}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def remove(path: str | Path | None) -> None:
    """Delete a session folder; used as `gr.State(delete_callback=...)` and from `demo.unload`."""
    if path:
        shutil.rmtree(path, ignore_errors=True)


def sweep(root: Path, max_age_s: float, now: float | None = None) -> list[Path]:
    """Remove session folders untouched for longer than `max_age_s`; returns what was removed."""
    now = time.time() if now is None else now
    removed = []
    if not Path(root).is_dir():
        return removed
    for path in Path(root).iterdir():
        if path.is_dir() and now - _last_touched(path) > max_age_s:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _last_touched(path: Path) -> float:
    times = [path.stat().st_mtime]
    times += [p.stat().st_mtime for p in path.rglob("*") if p.exists()]
    return max(times)
