"""A wheel without some members, its RECORD kept consistent."""
from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from model.train.wheels import main, slim_wheel

RECORD = "pkg-1.0.dist-info/RECORD"


@pytest.fixture
def wheel(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "pkg-1.0-py3-none-any.whl"
    path.parent.mkdir()
    members = {"pkg/__init__.py": b"x = 1\n", "pkg/weights/big.pth": b"\0" * 4096, "pkg/weights/small.pth": b"s"}
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
        z.writestr(RECORD, "".join(f"{n},sha256=h,{len(d)}\n" for n, d in members.items()) + f"{RECORD},,\n")
    return path


def test_slim_wheel_drops_members_and_their_record_lines(tmp_path: Path, wheel: Path) -> None:
    out, dropped = slim_wheel(wheel, tmp_path / "out", ["*/big.pth"])
    assert out == tmp_path / "out" / wheel.name and dropped == ["pkg/weights/big.pth"]
    with zipfile.ZipFile(out) as z, zipfile.ZipFile(wheel) as original:
        assert z.namelist() == ["pkg/__init__.py", "pkg/weights/small.pth", RECORD]
        assert z.read("pkg/weights/small.pth") == original.read("pkg/weights/small.pth")
        assert z.read(RECORD).decode().splitlines() == [
            "pkg/__init__.py,sha256=h,6", "pkg/weights/small.pth,sha256=h,1", f"{RECORD},,"]


def test_slim_wheel_refuses_what_it_cannot_do(tmp_path: Path, wheel: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ValueError, match="no member"):
        slim_wheel(wheel, tmp_path / "out", ["*/vgg.pth"])
    with pytest.raises(ValueError, match="overwrite"):
        slim_wheel(wheel, wheel.parent, ["*/big.pth"])
    assert main([str(tmp_path / "absent.whl"), "-o", str(tmp_path / "o"), "--drop", "*"]) == 1
    assert capsys.readouterr().err.startswith("error: ")
