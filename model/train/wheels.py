"""Make a wheel smaller for carrying to a machine with a size limit: the same wheel without some of its files
(their RECORD lines removed too, so pip installs it as usual).

    python -m model.train.wheels stlpips_pytorch-0.0.2-py3-none-any.whl -o .whl --drop '*/vgg_shift_tolerant.pth'

stlpips-pytorch's wheel is 61 MiB, almost all of it VGG weights that the training loss (AlexNet) never loads.
"""
from __future__ import annotations

import argparse
import fnmatch
import sys
import zipfile
from pathlib import Path


def slim_wheel(wheel: Path, out_dir: Path, drop: list[str]) -> tuple[Path, list[str]]:
    """Copy `wheel` into `out_dir` without the members matching a pattern of `drop`; returns (copy, dropped)."""
    out = out_dir / wheel.name
    if out.resolve() == wheel.resolve():
        raise ValueError(f"{out} would overwrite the wheel it is made from")
    with zipfile.ZipFile(wheel) as src:
        names = src.namelist()
        dropped = [n for n in names if any(fnmatch.fnmatch(n, pattern) for pattern in drop)]
        if not dropped:
            raise ValueError(f"no member of {wheel.name} matches {drop}")
        out_dir.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
            for info in src.infolist():
                if info.filename in dropped:
                    continue
                data = src.read(info)
                if info.filename.endswith(".dist-info/RECORD"):
                    lines = data.decode().splitlines(keepends=True)
                    data = "".join(line for line in lines if line.split(",")[0] not in dropped).encode()
                dst.writestr(info, data)
    return out, dropped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.train.wheels", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("wheel")
    parser.add_argument("-o", "--out", required=True, help="folder for the smaller wheel (same file name)")
    parser.add_argument("--drop", nargs="+", required=True, help="glob patterns of the members to leave out")
    args = parser.parse_args(argv)
    try:
        out, dropped = slim_wheel(Path(args.wheel), Path(args.out), args.drop)
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{out}: {out.stat().st_size / (1 << 20):.2f} MiB without {', '.join(dropped)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
