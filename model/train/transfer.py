"""Carry a training result off a machine that hands back only a few files of limited size.

    python -m model.train.transfer split RESULT_DIR -o OUT        # RESULT_DIR as a tar archive in parts, + SHA-256
    python -m model.train.transfer join OUT -o runs/gpu-result    # joins the parts, verifies the hash, unpacks

`split` writes `NAME.tar.part00`, `.part01`, ... of at most `--part-mib` each and `NAME.tar.sha256` (the
`sha256sum` format), at most `--max-files` files in all, and refuses (before writing anything) a result that
would need more. `join` unpacks only after the hash matches.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import tarfile
import tempfile
from pathlib import Path

MIB = 1 << 20
CHUNK = 4 * MIB


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def split(folder: Path, out: Path, part_bytes: int, max_files: int, name: str = "result") -> list[Path]:
    """`folder` as `out/NAME.tar.partNN` files and `out/NAME.tar.sha256`; returns the parts."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / f"{name}.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(folder, arcname=name)
        size = archive.stat().st_size
        parts = max(1, -(-size // part_bytes))
        if parts + 1 > max_files:
            raise ValueError(f"{folder} makes a {size / MIB:.1f} MiB archive: {parts} parts of "
                             f"{part_bytes / MIB:.1f} MiB and a hash file, more than {max_files} files")
        written = []
        with open(archive, "rb") as src:
            for i in range(parts):
                part = out / f"{name}.tar.part{i:02d}"
                part.write_bytes(src.read(part_bytes))
                written.append(part)
        (out / f"{name}.tar.sha256").write_text(f"{sha256_of(archive)}  {name}.tar\n")
    return written


def join(folder: Path, out: Path, name: str = "result") -> Path:
    """Join `folder/NAME.tar.part*`, check the SHA-256, unpack into `out`; returns `out/NAME`."""
    hash_file = folder / f"{name}.tar.sha256"
    parts = sorted(folder.glob(f"{name}.tar.part*"))
    if not hash_file.is_file() or not parts:
        raise FileNotFoundError(f"{folder} holds no {name}.tar.part* files and {hash_file.name}")
    expected = hash_file.read_text().split()[0]
    if (out / name).exists():
        raise FileExistsError(f"{out / name} exists; choose another --out")
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / f"{name}.tar"
        with open(archive, "wb") as dst:
            for part in parts:
                dst.write(part.read_bytes())
        actual = sha256_of(archive)
        if actual != expected:
            raise ValueError(f"SHA-256 mismatch: the {len(parts)} joined parts hash to {actual}, "
                             f"{hash_file.name} says {expected} (a part is missing or damaged)")
        out.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(out, filter="data")
    return out / name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.train.transfer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    cut = sub.add_parser("split", help="a folder -> tar parts + SHA-256")
    cut.add_argument("folder")
    cut.add_argument("-o", "--out", required=True)
    cut.add_argument("--part-mib", type=float, default=15.0, help="largest part in MiB (default 15)")
    cut.add_argument("--max-files", type=int, default=8, help="parts + the hash file, at most (default 8)")
    glue = sub.add_parser("join", help="tar parts + SHA-256 -> the folder, verified")
    glue.add_argument("folder")
    glue.add_argument("-o", "--out", required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "split":
            if args.part_mib <= 0 or args.max_files < 2:
                parser.error("--part-mib must be positive and --max-files at least 2")
            parts = split(Path(args.folder), Path(args.out), int(args.part_mib * MIB), args.max_files)
            print(f"{len(parts)} parts and result.tar.sha256 in {args.out}")
        else:
            print(f"verified and unpacked into {join(Path(args.folder), Path(args.out))}")
    except (OSError, ValueError, tarfile.TarError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
