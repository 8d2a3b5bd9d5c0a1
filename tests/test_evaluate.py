"""`comparisons evaluate`: the S2VC release's protocol on PNG folders, its frame pairing and its tables' layout."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from comparisons.__main__ import main
from comparisons.evaluate import EvaluateError, evaluate, find_sequences, release_psnr
from tests.test_comparisons_metrics import distorted
from tests.test_metric_weights import cached, weight_home  # noqa: F401 (fixtures)
from tests.test_video_io import clip


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_pngs(folder: Path, frames: np.ndarray, names: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for frame, name in zip(frames, names):
        Image.fromarray(frame).save(folder / name)
    return folder


def release_names(n: int, bpp: list[float] | None = None) -> list[str]:
    return [f"im{i:05d}.png" if bpp is None else f"im{i:05d}_bpp_{bpp[i - 1]:.6f}.png" for i in range(1, n + 1)]


def dataset(root: Path, sequences: dict[str, int], h: int = 48, w: int = 64) -> tuple[Path, Path]:
    """GT and reconstruction folders in the release's layout: <root>/gt/<seq>/im00001.png and
    <root>/rec/<seq>/q1/im00001_bpp_0.100000.png."""
    for k, (name, t) in enumerate(sequences.items()):
        ref = clip(t=t, h=h, w=w, seed=k)
        write_pngs(root / "gt" / name, ref, release_names(t))
        write_pngs(root / "rec" / name / "q1", distorted(ref, 10 + 5 * k), release_names(t, [0.1 * (i + 1) for i in range(t)]))
    return root / "gt", root / "rec"


def test_pairing_by_release_names_and_by_sorted_order(tmp_path: Path) -> None:
    gt, rec = dataset(tmp_path, {"A": 3, "B": 2})
    seqs = find_sequences(gt, rec, "q1")
    assert [s.name for s in seqs] == ["A", "B"] and [len(s.gt) for s in seqs] == [3, 2]
    assert seqs[0].bpp == pytest.approx([0.1, 0.2, 0.3]) and seqs[0].recon[2].name == "im00003_bpp_0.300000.png"
    frames = clip(t=3)
    write_pngs(tmp_path / "x", frames, ["f9.png", "f10.png", "f100.png"])
    write_pngs(tmp_path / "y", frames, ["a.png", "b.png", "c.png"])
    (seq,) = find_sequences(tmp_path / "x", tmp_path / "y")
    assert [p.name for p in seq.gt] == ["f9.png", "f10.png", "f100.png"] and np.isnan(seq.bpp).all()  # no bpp


def test_bad_folders_get_one_line(tmp_path: Path) -> None:
    gt, rec = dataset(tmp_path, {"A": 3})
    (rec / "A" / "q1" / "im00002_bpp_0.200000.png").unlink()
    with pytest.raises(EvaluateError, match="without gaps"):
        find_sequences(gt, rec, "q1")
    with pytest.raises(EvaluateError, match="no reconstruction folder for sequence A"):
        find_sequences(gt, rec, "q9")
    write_pngs(tmp_path / "x", clip(t=2), ["a.png", "b.png"])
    write_pngs(tmp_path / "y", clip(t=1), ["a.png"])
    with pytest.raises(EvaluateError, match="2 ground-truth PNGs .* but 1 reconstructions"):
        find_sequences(tmp_path / "x", tmp_path / "y")
    write_pngs(tmp_path / "z", clip(t=1, h=40), ["a.png"])
    write_pngs(tmp_path / "z", clip(t=1), ["b.png"])
    with pytest.raises(EvaluateError, match="b.png: 64x48, but a.png is 64x40"):
        evaluate(find_sequences(tmp_path / "z", tmp_path / "x"), "d", tmp_path / "out", ["psnr_rgb"], log=lambda s: None)


def test_release_psnr_floors_the_error() -> None:
    ref = clip(t=2)
    assert release_psnr(ref, ref) == pytest.approx([100.0, 100.0])
    test = ref.copy()
    test[0, 0, 0, 0] ^= 1  # one value off by 1/255
    assert release_psnr(ref, test)[0] == pytest.approx(-10 * np.log10((1 / 255) ** 2 / ref[0].size))


def test_tables_have_the_release_layout_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no weights (and offline: conftest)
    gt, rec = dataset(tmp_path, {"A": 3, "B": 2})
    out = tmp_path / "out"
    paths = evaluate(find_sequences(gt, rec, "q1"), "toy", out, ["psnr_rgb", "lpips_alex", "dists", "flolpips_raft"],
                     log=lambda s: None)
    assert {"detail/toy_A_detail.csv", "detail/toy_B_detail.md", "toy_detail.csv", "toy_detail.md",
            "toy_summary.csv", "toy_summary.md", "toy_variants.md"} <= {str(p.relative_to(out)) for p in paths.values()}
    frame = pd.read_csv(out / "detail" / "toy_A_detail.csv")
    assert list(frame.columns) == ["lpips", "dists", "psnr", "flolpips", "bpp"] and len(frame) == 3
    assert frame["bpp"].tolist() == pytest.approx([0.1, 0.2, 0.3]) and frame["lpips"].isna().all()
    sequences = pd.read_csv(out / "toy_detail.csv")
    assert list(sequences.columns) == ["name", "psnr", "lpips", "dists", "flolpips", "bpp"]
    assert sequences["name"].tolist() == ["A", "B"] and sequences.loc[0, "psnr"] == pytest.approx(frame["psnr"].mean())
    summary = pd.read_csv(out / "toy_summary.csv")
    assert summary.loc[0, "name"] == "summary" and summary.loc[0, "psnr"] == pytest.approx(sequences["psnr"].mean())
    notes = (out / "toy_variants.md").read_text()
    assert "alexnet-owt-7be5be79.pth" in notes and "vgg16-397923af.pth" in notes and "S2VC_OFFLINE=1" in notes
    assert "| name" in (out / "toy_detail.md").read_text()


def test_flolpips_and_patch_fid_as_the_release_writes_them(cached, tmp_path: Path) -> None:  # noqa: F811
    gt, rec = dataset(tmp_path, {"A": 3, "B": 3}, h=128, w=128)  # 1 patch of 128 per frame
    out = tmp_path / "out"
    evaluate(find_sequences(gt, rec, "q1"), "toy", out, ["lpips_alex", "flolpips_raft", "fid_patch128"],
             log=lambda s: None)
    frame = pd.read_csv(out / "detail" / "toy_A_detail.csv")
    assert list(frame.columns) == ["lpips", "flolpips", "bpp"]
    assert frame.loc[0, "flolpips"] == 0 and frame.loc[2, "flolpips"] == 0 and frame.loc[1, "flolpips"] > 0
    sequences = pd.read_csv(out / "toy_detail.csv")
    assert sequences.loc[0, "flolpips"] == pytest.approx(frame.loc[1, "flolpips"])  # frames 2..N-1 only
    summary = pd.read_csv(out / "toy_summary.csv")
    assert list(summary.columns) == ["name", "lpips", "flolpips", "bpp", "fid"] and summary.loc[0, "fid"] > 0
    assert "pooled 6 patch pairs of 128x128" in (out / "toy_variants.md").read_text()  # 1 per frame, 6 frames


def test_cli_prints_the_summary(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no weights (and offline: conftest)
    gt, rec = dataset(tmp_path, {"A": 2})
    assert main(["evaluate", str(gt), str(rec), "--recon-subdir", "q1", "--out", str(tmp_path / "o"),
                 "--metrics", "psnr_rgb,dists", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "| name" in printed and "summary" in printed and (tmp_path / "o" / "gt_summary.csv").is_file()
    assert "dists: not computed: " in printed and "vgg16-397923af.pth" in printed  # offline, no weights
    with pytest.raises(SystemExit, match="unknown metric"):
        main(["evaluate", str(gt), str(rec), "--out", str(tmp_path / "o"), "--metrics", "psnr_rgb,nope"])
    with pytest.raises(SystemExit, match="rec/A: no PNG frames"):
        main(["evaluate", str(gt), str(rec), "--out", str(tmp_path / "o"), "--metrics", "psnr_rgb"])
