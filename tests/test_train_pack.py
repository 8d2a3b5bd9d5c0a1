"""The travelling training data pack: build, size limit, read back as a source, refusals."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model.train.config import TrainConfig
from model.train.pack import MIB, PackSource, build_pack, byte_allowance, kept_frames, main
from model.train.sources import is_held_out, load_source, load_sources


def _smooth(h: int, w: int, shift: float, seed: int) -> np.ndarray:
    """A smooth colour pattern (JPEG keeps it within a few levels), moved by `shift` pixels."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    phase = np.random.default_rng(seed).uniform(0, 6, 3)
    channels = [127 + 100 * np.sin((x + shift) / (9 + 3 * c) + y / 13 + phase[c]) for c in range(3)]
    return np.stack(channels, axis=-1).round().astype(np.uint8)


@pytest.fixture
def sources(tmp_path: Path) -> list[PackSource]:
    clip = tmp_path / "data" / "clips" / "moving"
    stills = tmp_path / "data" / "stills"
    clip.mkdir(parents=True)
    stills.mkdir()
    for t in range(12):
        Image.fromarray(_smooth(80, 96, 1.5 * t, 0)).save(clip / f"f{t:03d}.png")
    for i in range(2):
        Image.fromarray(_smooth(72, 88, 0, i + 1)).save(stills / f"still{i}.png")
    Image.fromarray(_smooth(72, 88, 0, 9)).save(stills / "BasketballPass_f001.png")  # evaluation data: skipped
    return [PackSource(f"frames:{clip.parent}", "synthetic clip", "CC0"),
            PackSource(f"images:{stills}", "synthetic stills", "CC0")]


def _cfg(tmp_path: Path) -> TrainConfig:
    return TrainConfig(cache_dir=str(tmp_path / "cache"), val_fraction=0.5)


def test_pack_round_trip_keeps_keys_frames_and_split(tmp_path: Path, sources: list[PackSource]) -> None:
    cfg = _cfg(tmp_path)
    manifest = build_pack(tmp_path / "pack", sources, 10 * MIB, quality=95, cfg=cfg)
    originals = [it for s in sources for it in load_source(s.spec, tmp_path / "cache")]
    assert [it["key"] for it in manifest["items"]] == [it.key for it in originals] == [
        "moving/", "stills/still0.png", "stills/still1.png"]
    assert manifest["frames"] == 14 and [it["frames"] for it in manifest["items"]] == [12, 1, 1]
    assert [it["held_out"] for it in manifest["items"]] == [is_held_out(it.key, 0.5) for it in originals]
    assert manifest["items"][0]["licence"] == "CC0" and manifest["items"][1]["origin"] == "synthetic stills"
    on_disk = sum(p.stat().st_size for p in (tmp_path / "pack").rglob("*.jpg"))
    assert manifest["bytes"] == on_disk
    assert json.loads((tmp_path / "pack" / "manifest.json").read_text()) == manifest

    packed = load_sources([f"pack:{tmp_path / 'pack'}"], tmp_path / "cache2")
    for orig, item in zip(originals, packed):
        assert (item.key, item.still, item.frames.shape) == (orig.key, orig.still, orig.frames.shape)
        diff = np.abs(item.frames.astype(np.int16) - np.asarray(orig.frames).astype(np.int16))
        assert diff.mean() < 2.0
    assert [it.key for it in load_sources([f"pack:{tmp_path / 'pack'}"], tmp_path / "cache2", ("still1",))] == [
        "moving/", "stills/still0.png"]


def test_pack_cuts_clips_to_fit_the_budget(tmp_path: Path, sources: list[PackSource]) -> None:
    full = build_pack(tmp_path / "full", sources, 10 * MIB, cfg=_cfg(tmp_path))
    frame_bytes = [p.stat().st_size for p in sorted((tmp_path / "full" / "moving").iterdir())]
    stills = full["bytes"] - sum(frame_bytes)
    budget = stills + sum(frame_bytes[:5])  # room for exactly the first five frames of the clip
    cut = build_pack(tmp_path / "cut", sources, budget, min_frames=2, cfg=_cfg(tmp_path))
    assert [it["frames"] for it in cut["items"]] == [5, 1, 1] and cut["bytes"] <= budget
    assert cut["items"][0]["source_frames"] == 12
    assert len(load_source(f"pack:{tmp_path / 'cut'}", tmp_path / "cache")[0].frames) == 5
    with pytest.raises(ValueError, match="clips of 8 frames need"):
        build_pack(tmp_path / "tiny", sources, budget, min_frames=8, cfg=_cfg(tmp_path))
    with pytest.raises(ValueError, match="stills alone"):
        build_pack(tmp_path / "tinier", sources, 100, cfg=_cfg(tmp_path))
    with pytest.raises(FileExistsError):
        build_pack(tmp_path / "cut", sources, budget, cfg=_cfg(tmp_path))


def test_byte_allowance_is_the_largest_that_fits() -> None:
    clips = [[10, 10, 10], [1, 1, 1, 1]]
    assert byte_allowance(clips, 25, 1) == 29  # 2 + 4 frames: 24 bytes; a 30-byte allowance would take 34
    assert [kept_frames(c, 29, 1) for c in clips] == [2, 4]
    assert kept_frames([10, 10, 10], 5, 2) == 2 and kept_frames([10], 0, 8) == 1
    assert byte_allowance([], 0, 8) == 0


def test_a_damaged_or_foreign_pack_is_refused(tmp_path: Path, sources: list[PackSource]) -> None:
    build_pack(tmp_path / "pack", sources, 10 * MIB, cfg=_cfg(tmp_path))
    (tmp_path / "pack" / "moving" / "000011.jpg").unlink()
    with pytest.raises(ValueError, match="holds 11 frames, the manifest says 12"):
        load_source(f"pack:{tmp_path / 'pack'}", tmp_path / "cache")
    with pytest.raises(FileNotFoundError, match="not a data pack"):
        load_source(f"pack:{tmp_path / 'data'}", tmp_path / "cache")


def test_cli_prints_the_pack_or_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["-o", str(tmp_path / "p"), "--root", str(tmp_path / "absent")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "absent" in err and "\n" not in err and not (tmp_path / "p").exists()
    with pytest.raises(SystemExit):
        main(["-o", str(tmp_path / "p"), "--quality", "0"])
