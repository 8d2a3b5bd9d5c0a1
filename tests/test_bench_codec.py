"""bench/bench_codec.py's helpers: the baseline export (--baseline REV) and the entropy-coding report line."""
from __future__ import annotations

import subprocess

import pytest

from bench.baseline_tree import REPO, baseline_tree
from bench.entropy_1080p import report


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def head() -> str:
    try:
        return _git("rev-parse", "HEAD").strip()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")


def test_baseline_tree_exports_the_commit_and_removes_it(head: str) -> None:
    with baseline_tree(head) as (root, name):
        assert name == head[:7]
        assert (root / "model" / "bitstream.py").read_text() == _git("show", f"{head}:model/bitstream.py")
        assert not (root / ".git").exists()
    assert not root.exists()


def test_baseline_tree_refuses_an_unknown_revision(head: str) -> None:
    with pytest.raises(SystemExit, match="--baseline no-such-rev: not a commit of"):
        with baseline_tree("no-such-rev"):
            pass


def _frame(encode: float, decode: float, latents: str) -> dict:
    return {"encode": encode, "encode coder": encode / 2, "decode": decode, "decode coder": decode / 4,
            "bytes": 100, "sha256": "s", "latents": latents}


def test_report_ends_with_the_averaged_ratio_line(capsys: pytest.CaptureFixture[str]) -> None:
    new = {"I": _frame(0.1, 0.2, "a"), "P": _frame(0.05, 0.05, "b")}
    old = {"I": _frame(0.6, 0.9, "a"), "P": _frame(0.2, 0.3, "c")}
    report(new, old, "abc1234", 2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "entropy coding 1080p: 200 ms per frame against 1000 ms (5.00x)"
    assert "I-frame encode:     100 ms (distributions    50, coder    50) against     600 ms" in lines[1]
    assert lines[1].endswith(": 6.00x")
    assert "decoded latents the same as the baseline's" in lines[3]
    assert "decoded latents DIFFERENT" in lines[6]
