"""Splitting a training result into a few bounded files and joining it back, verified."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model.train.transfer import join, main, split


@pytest.fixture
def result(tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    (folder / "final").mkdir(parents=True)
    rng = np.random.default_rng(0)
    (folder / "final" / "model.safetensors").write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    (folder / "recipe.json").write_text('{"stages": []}\n')
    return folder


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_split_and_join_round_trip(tmp_path: Path, result: Path) -> None:
    parts = split(result, tmp_path / "out", part_bytes=8192, max_files=8)
    total = sum(p.stat().st_size for p in parts)  # tar: 512-byte headers, 10 KiB records
    assert total % 10240 == 0 and len(parts) == -(-total // 8192) >= 2
    assert [p.name for p in parts] == [f"result.tar.part{i:02d}" for i in range(len(parts))]
    assert all(p.stat().st_size == 8192 for p in parts[:-1]) and 0 < parts[-1].stat().st_size <= 8192
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [p.name for p in parts] + ["result.tar.sha256"]
    back = join(tmp_path / "out", tmp_path / "back")
    assert _files(back) == _files(result)
    with pytest.raises(FileExistsError):
        join(tmp_path / "out", tmp_path / "back")


def test_a_damaged_or_missing_part_is_refused(tmp_path: Path, result: Path) -> None:
    parts = split(result, tmp_path / "out", part_bytes=4096, max_files=8)
    assert len(parts) >= 3
    data = bytearray(parts[1].read_bytes())
    data[100] ^= 1
    parts[1].write_bytes(bytes(data))
    with pytest.raises(ValueError, match="SHA-256 mismatch"):
        join(tmp_path / "out", tmp_path / "back")
    parts[2].unlink()
    with pytest.raises(ValueError, match=f"{len(parts) - 1} joined parts"):
        join(tmp_path / "out", tmp_path / "back")
    assert not (tmp_path / "back").exists()


def test_too_large_a_result_is_refused_before_writing(tmp_path: Path, result: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ValueError, match="more than 3 files"):
        split(result, tmp_path / "out", part_bytes=2048, max_files=3)
    assert not list((tmp_path / "out").iterdir())
    assert main(["join", str(tmp_path / "out"), "-o", str(tmp_path / "back")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert main(["split", str(result), "-o", str(tmp_path / "cli"), "--part-mib", "1"]) == 0
    assert main(["join", str(tmp_path / "cli"), "-o", str(tmp_path / "cli-back")]) == 0
    assert _files(tmp_path / "cli-back" / "result") == _files(result)
