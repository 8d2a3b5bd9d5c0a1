"""A temporary export of this repository at another revision, for benchmarks that compare against it in one run.

    with baseline_tree("03340b0") as (root, name): ...   # root: a plain directory tree of that commit (git archive)
"""
from __future__ import annotations

import contextlib
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def resolve(rev: str) -> str:
    """The full commit id of `rev` in this repository; SystemExit with one line when it names no commit."""
    found = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
                           capture_output=True, text=True)
    if found.returncode:
        raise SystemExit(f"--baseline {rev}: not a commit of {REPO}")
    return found.stdout.strip()


@contextlib.contextmanager
def baseline_tree(rev: str) -> Iterator[tuple[Path, str]]:
    """(directory holding the files of commit `rev`, its short id); the directory is removed afterwards."""
    commit = resolve(rev)
    with tempfile.TemporaryDirectory(prefix="s2vc-baseline-") as tmp:
        archive = subprocess.Popen(["git", "-C", str(REPO), "archive", commit], stdout=subprocess.PIPE)
        unpack = subprocess.run(["tar", "-x", "-C", tmp], stdin=archive.stdout, capture_output=True)
        archive.stdout.close()
        if archive.wait() or unpack.returncode:
            raise SystemExit(f"--baseline {rev}: could not export it ({unpack.stderr.decode().strip()})")
        yield Path(tmp), commit[:7]
