"""The app's handler functions on tiny clips: input checks, run streaming, frame views, exports, sessions, CLI."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from app import engine, handlers, session
from app.inputs import InputError, load_clip
from app.model_slot import ModelSlot
from app.settings import Limits, sample_clips
from model.codec import FrameResult
from model.video_io import write_mp4, write_y4m

LIMITS = Limits(max_frames=16, max_pixels=96 * 64, max_file_mb=5)
METRICS = ["psnr_rgb", "ms_ssim_rgb"]  # MS-SSIM does not apply below 161 px: reported, not shown


def _frames(t: int = 6, h: int = 48, w: int = 64) -> np.ndarray:
    """A small moving gradient with some texture (deterministic)."""
    y, x = np.mgrid[0:h, 0:w]
    out = np.stack([np.stack([(x * 4 + 9 * i) % 256, (y * 5 + 3 * i) % 256, ((x + y) * 3 - 7 * i) % 256], -1)
                    for i in range(t)])
    return out.astype(np.uint8)


@pytest.fixture
def clip_file(tmp_path: Path) -> Path:
    return write_y4m(tmp_path / "tiny.y4m", _frames(), 25.0)


class FakeS2VC:
    """Stands in for the model package's S2VC: real bytes whose length grows with the rate point; reconstructions
    (and their decode) drop the lowest bit."""

    rate_names = ["q0", "q1", "q2", "q3"]

    def __init__(self) -> None:
        self.frames: np.ndarray | None = None

    def describe(self) -> dict:
        return {"preset": "fake", "rate_names": self.rate_names, "device": "cpu", "precision": "fp32",
                "parameters": {"intra": 1_000_000, "inter": 234_000}}

    def estimate_kbps(self, frames: np.ndarray, rate: int, fps: float, max_frames: int | None = None) -> float:
        return 200 * (rate + 1) * 8 * fps / len(frames) / 1000

    def encode_file(self, path: Path, frames: np.ndarray, rate: int, fps: float) -> list[FrameResult]:
        self.frames = np.asarray(frames) // 2 * 2
        Path(path).write_bytes(bytes(200 * (rate + 1)))
        return [FrameResult(t, "P", frame, 1600.0 * (rate + 1) / len(frames)) for t, frame in enumerate(self.frames)]

    def decompress(self, source: Path) -> tuple[np.ndarray, float]:
        return self.frames.copy(), 25.0


def _slot(model: object | None, monkeypatch: pytest.MonkeyPatch) -> ModelSlot:
    import model as model_package

    calls = []

    def load_model(checkpoint=None, preset=None, device="cpu"):
        calls.append(device)
        if model is None:
            raise FileNotFoundError("no checkpoint here")
        return model

    monkeypatch.setattr(model_package, "load_model", load_model, raising=False)
    slot = ModelSlot(device="cpu")
    slot.calls = calls  # type: ignore[attr-defined]
    return slot


# ---------------------------------------------------------------- input checks


def test_loads_trims_and_downscales(clip_file: Path) -> None:
    clip = load_clip(clip_file, LIMITS, start=1, count=4)
    assert clip.frames.shape == (4, 48, 64, 3) and clip.fps == 25.0 and clip.start == 1
    half = load_clip(clip_file, LIMITS, count=3, downscale="1/2")
    assert half.frames.shape == (3, 24, 32, 3) and "downscaled 1/2" in half.describe()


@pytest.mark.parametrize("content, suffix, message", [
    (b"", ".mp4", r"empty \(0 bytes\)"),
    (b"this is not a video at all" * 10, ".mp4", "could not be read as a video"),
    (b"x" * 10, ".txt", "unsupported file type"),
])
def test_bad_files_get_clear_messages(tmp_path: Path, content: bytes, suffix: str, message: str) -> None:
    path = tmp_path / f"clip{suffix}"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        load_clip(path, LIMITS)


def test_limits_and_trims_are_enforced(clip_file: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="the limit is 0 MB"):
        load_clip(clip_file, Limits(max_file_mb=0))
    with pytest.raises(InputError, match="limit is 16"):
        load_clip(clip_file, LIMITS, count=17)
    with pytest.raises(InputError, match="limit is 100"):
        load_clip(clip_file, Limits(max_pixels=100))
    assert load_clip(clip_file, Limits(max_pixels=32 * 24), count=2, downscale="1/2").size == (32, 24)
    with pytest.raises(InputError, match="past its end"):
        load_clip(clip_file, LIMITS, start=6)
    with pytest.raises(InputError, match="only 1 frame"):
        load_clip(clip_file, LIMITS, start=5)
    with pytest.raises(InputError, match="No clip given"):
        load_clip(None, LIMITS)
    with pytest.raises(InputError, match="could not be found"):
        load_clip(tmp_path / "gone.mp4", LIMITS)


def test_one_frame_mp4_is_refused(tmp_path: Path) -> None:
    path = write_mp4(tmp_path / "one.mp4", _frames(1), 25.0)
    with pytest.raises(InputError, match="only 1 frame"):
        load_clip(path, LIMITS)


def test_raw_yuv_needs_size_and_fps(tmp_path: Path) -> None:
    from model.video_io import rgb_to_yuv420

    y, cb, cr = rgb_to_yuv420(_frames(3))
    path = tmp_path / "tiny.yuv"
    path.write_bytes(np.concatenate([y.reshape(3, -1), cb.reshape(3, -1), cr.reshape(3, -1)], 1).tobytes())
    with pytest.raises(InputError, match="width, height and fps"):
        load_clip(path, LIMITS, raw_size=(0, 0), raw_fps=0)
    with pytest.raises(InputError, match="not a whole number"):
        load_clip(path, LIMITS, raw_size=(62, 48), raw_fps=30)
    clip = load_clip(path, LIMITS, raw_size=(64, 48), raw_fps=30)
    assert clip.frames.shape == (3, 48, 64, 3) and clip.fps == 30


def test_reloading_the_same_clip_reuses_it_and_old_inputs_are_pruned(clip_file: Path, tmp_path: Path) -> None:
    def load(count: int, current: dict | None = None) -> dict:
        return handlers.prepare_clip(str(clip_file), None, 0, 0, 0, 0, count, "original size", LIMITS, tmp_path,
                                     current)

    first = load(4)
    assert load(4, first) is first
    loads = [load(n, first) for n in (2, 3, 5)]
    assert loads[-1]["count"] == 5 and loads[-1] is not first
    kept = sorted((tmp_path / "input").glob("frames-*.npy"))
    assert len(kept) == handlers.KEPT_INPUTS and Path(loads[-1]["frames"]) in kept
    assert len(list((tmp_path / "input").glob("original-*.mp4"))) == handlers.KEPT_INPUTS


def test_sample_clip_is_bundled_and_small() -> None:
    clips = sample_clips()
    assert clips, "assets/clips holds no sample clip"
    assert all(p.stat().st_size < 400_000 for p in clips.values())
    clip = load_clip(next(iter(clips.values())), Limits(), count=3)
    assert len(clip.frames) == 3


def test_rates_and_bpp() -> None:
    assert handlers.parse_rates(100, False, "1,2") == [100.0]
    assert handlers.parse_rates(100, True, "50; 200, 100,") == [100.0, 50.0, 200.0]
    with pytest.raises(InputError, match="positive"):
        handlers.parse_rates(0, False, "")
    with pytest.raises(InputError, match="numbers in kbps"):
        handlers.parse_rates(100, True, "50, fast")
    clip = {"width": 400, "height": 250, "fps": 10.0}
    assert "0.1000 bpp" in handlers.bpp_text(100, clip)


# ---------------------------------------------------------------- model slot


def test_model_slot_loads_once_and_reports_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeS2VC()
    slot = _slot(fake, monkeypatch)
    assert "not loaded yet" in handlers.model_markdown(slot)
    assert slot.get() is fake and slot.get() is fake and slot.calls == ["cpu"]
    text = handlers.model_markdown(slot)
    assert "fake" in text and "q0" in text and "cpu" in text and "fp32" in text and "1.2 M parameters" in text
    broken = _slot(None, monkeypatch)
    assert broken.get() is None and broken.get() is None and broken.calls == ["cpu"]
    assert "S2VC model not available" in handlers.model_markdown(broken) and "no checkpoint" in broken.error


# ---------------------------------------------------------------- run, views, exports


def test_run_streams_results_and_exports(clip_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    slot = _slot(FakeS2VC(), monkeypatch)
    folder = session.session_dir(tmp_path / "sessions", "abc123")
    clip = handlers.prepare_clip(str(clip_file), None, 0, 0, 0, 0, 4, "original size", LIMITS, folder)
    assert Path(clip["preview"]).stat().st_size > 0 and clip["count"] == 4
    seen = []
    states = list(handlers.run_comparison(clip, [200.0], ["s2vc", "x265"], {"x265": "ultrafast"}, METRICS, folder,
                                          slot, lambda f, d: seen.append((f, d))))
    counts = [len(handlers.records(s)) for s in states]  # S2VC, x265 (either first), S2VC's decoder check, done
    assert len(counts) == 4 and counts[0] == 1 and counts[-2:] == [2, 2] and states[-1]["done"]
    assert seen[-1] == (1.0, "done") and any("x265" in d for _, d in seen)
    assert any("S2VC @ 200 kbps: decoder check" in d for _, d in seen)
    shown = next(s for s in states if "S2VC" in list(handlers.results_table(s)["codec"]))
    pending = handlers.results_table(shown).set_index("codec").loc["S2VC"]
    assert (pending["decode s"], pending["decoder check"]) == ("check pending", "pending")  # no made-up time
    state = states[-1]
    s2vc, x265 = handlers.records(state)  # in the run's order, whichever finished first
    assert s2vc["codec"] == "s2vc" and s2vc["bits"] == 800 * 8 and engine.preset_of(s2vc) == "rate q3"
    assert s2vc["decoder_check"] == "bit-exact" and s2vc["decode_seconds"] >= 0 and x265["decoder_check"] is None
    assert list(handlers.results_table(state)["decoder check"]) == ["bit-exact", "–"]
    assert engine.preset_of(x265) == "ultrafast" and x265["kbps"] > 0 and Path(x265["bitstream"]).stat().st_size > 0
    assert set(s2vc["metrics"]) == set(x265["metrics"]) == {"psnr_rgb"} and len(x265["per_frame"]["psnr_rgb"]) == 4
    assert any("161" in m for m in state["messages"])

    table = handlers.results_table(state)
    assert list(table["codec"]) == ["S2VC", "HEVC (x265)"] and "encode s" in table and "within 5%" in table
    assert handlers.comparison_choices(state)[0] == handlers.ORIGINAL and len(handlers.comparison_choices(state)) == 3
    assert "ultrafast" in handlers.conditions_markdown(state)

    pair, crop, diff = handlers.frame_views(clip, state, handlers.ORIGINAL, s2vc["key"], 2, 0.9, 0.1, 4)
    assert pair[0].shape == pair[1].shape == (48, 64, 3) and diff.shape == (48, 64, 3)
    assert crop[0].shape == (48, 64, 3) and diff.max() <= 4  # the fake decode differs by at most 1 per channel

    exports = handlers.export_files(state)
    names = {Path(p).name for p in exports["files"]}
    assert {"results.json", "results.csv", "per_frame.csv", "report.html"} <= names
    assert any(n.endswith(".s2vc") for n in names) and any(n.endswith(".265") for n in names)
    assert any(n.endswith(".png") for n in names) and any(n.endswith(".mkv") for n in names)
    report = Path(exports["report"]).read_text()
    assert "S2VC" in report and "data:image/png;base64" in report and "plotly" in report.lower()
    assert Path(exports["zip"]).stat().st_size > 0


def test_run_without_model_still_runs_baselines(clip_file: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    slot = _slot(None, monkeypatch)
    clip = handlers.prepare_clip(str(clip_file), None, 0, 0, 0, 0, 3, "original size", LIMITS, tmp_path)
    state = list(handlers.run_comparison(clip, [150.0], ["s2vc", "x265"], {"x265": "ultrafast"}, METRICS, tmp_path,
                                           slot))[-1]
    assert [r["codec"] for r in handlers.records(state)] == ["x265"]
    assert state["messages"][0] == "S2VC model not available: FileNotFoundError: no checkpoint here"
    with pytest.raises(InputError, match="at least one codec"):
        next(handlers.run_comparison(clip, [150.0], [], {}, METRICS, tmp_path, slot))


def test_a_failed_decoder_check_flags_the_shown_result(clip_file: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    model = FakeS2VC()
    monkeypatch.setattr(model, "decompress", lambda source: (model.frames + 1, 25.0))
    clip = handlers.prepare_clip(str(clip_file), None, 0, 0, 0, 0, 3, "original size", LIMITS, tmp_path)
    state = list(handlers.run_comparison(clip, [150.0], ["s2vc"], {}, METRICS, tmp_path,
                                         _slot(model, monkeypatch)))[-1]
    (record,) = handlers.records(state)
    assert record["decoder_check"].startswith("failed: s2vc: decoder output differs from the encoder's "
                                              "reconstruction at frame 0 ")
    assert record["decode_seconds"] is None and handlers.results_table(state)["decode s"][0] == "–"
    assert any(m.startswith("S2VC @ 150 kbps: decoder check failed:") for m in state["messages"])


def test_lanes_run_side_by_side_and_stop_on_errors() -> None:
    import threading

    from app.lanes import run_lanes

    ready, stopped = threading.Event(), threading.Event()

    def waits(post, stop) -> None:  # finishes only once the other lane has run: the lanes overlap
        post("waiting")
        assert ready.wait(10), "the other lane did not run meanwhile"
        post("done waiting")

    def signals(post, stop) -> None:
        ready.set()
        post("signalled")

    assert sorted(run_lanes({"a": waits, "b": signals})) == ["done waiting", "signalled", "waiting"]

    def fails(post, stop) -> None:
        raise ValueError("lane broke")

    def long(post, stop) -> None:
        stopped.set() if stop.wait(10) else None

    with pytest.raises(ValueError, match="lane broke"):
        list(run_lanes({"fails": fails, "long": long}))
    assert stopped.wait(10), "the other lane was not told to stop"


# ---------------------------------------------------------------- sessions and CLI


def test_session_folders_are_named_swept_and_removed(tmp_path: Path) -> None:
    folder = session.session_dir(tmp_path, "a/../b!c")
    assert folder.parent == tmp_path and folder.name == "abc"
    (folder / "x.bin").write_bytes(b"1")
    fresh = session.session_dir(tmp_path, "fresh")
    assert session.sweep(tmp_path, 60, now=time.time() + 120) == [folder, fresh] or \
        set(session.sweep(tmp_path, 60)) == set()
    assert not folder.exists()
    other = session.session_dir(tmp_path, "other")
    session.remove(str(other))
    assert not other.exists()


def test_cli_reads_environment_then_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.__main__ import parse_args

    monkeypatch.setenv("S2VC_CHECKPOINT", "/models/official")
    monkeypatch.setenv("S2VC_MAX_FRAMES", "12")
    settings, args = parse_args([])
    assert settings.checkpoint == "/models/official" and settings.limits.max_frames == 12 and args.port == 7860
    settings, args = parse_args(["--checkpoint", "/other", "--port", "9000", "--host", "0.0.0.0"])
    assert settings.checkpoint == "/other" and (args.host, args.port) == ("0.0.0.0", 9000)


def test_page_builds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from app.settings import Settings
    from app.ui import build, launch_options

    settings = Settings(temp_root=tmp_path)
    demo = build(settings, ModelSlot(device="cpu"))
    assert demo.title == "S2VC Studio"
    assert "s2vc-players" in launch_options(settings)["head"]


def test_sweep_gives_curves_and_bd_rates(clip_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    slot = _slot(FakeS2VC(), monkeypatch)
    clip = handlers.prepare_clip(str(clip_file), None, 0, 0, 0, 0, 4, "original size", LIMITS, tmp_path)
    rates = handlers.parse_rates(25, True, "45, 100")
    state = list(handlers.run_comparison(clip, rates, ["s2vc", "x265"], {"x265": "ultrafast"}, ["psnr_rgb"],
                                         tmp_path, slot))[-1]
    assert len(handlers.records(state)) == 6 and len(handlers.player_records(state)) == 2
    figure = handlers.rd_figures(state)["psnr_rgb"]
    # the stand-in S2VC reaches 20, 40 and 40 kbps for 25/45/100: one repeated point is drawn once
    assert [len(trace.x) for trace in figure.data] == [2, 3]
    bd = handlers.bd_table(state)
    assert list(bd["codec"]) == ["s2vc"] and {"bd_rate_percent", "note"} <= set(bd.columns)
    assert handlers.per_frame_figure(state, "psnr_rgb") is not None


def test_closing_the_session_stops_the_run_and_leaves_nothing(clip_file: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    model = FakeS2VC()
    encode = model.encode_file
    monkeypatch.setattr(model, "encode_file", lambda *a: (time.sleep(1.0), encode(*a))[1])  # the tab closes meanwhile
    folder = session.session_dir(tmp_path / "sessions", "closing")
    clip = handlers.prepare_clip(str(clip_file), None, 0, 0, 0, 0, 3, "original size", LIMITS, folder)
    run = handlers.run_comparison(clip, [100.0, 200.0], ["s2vc", "x265"], {"x265": "ultrafast"}, ["psnr_rgb"],
                                  folder, _slot(model, monkeypatch))
    first = next(run)  # x265's first result (S2VC is still encoding)
    assert len(handlers.records(first)) == 1
    session.close(folder)
    assert list(run) == []  # no more results for a closed page
    deadline = time.time() + 20
    while folder.exists() and time.time() < deadline:  # S2VC's encode in flight finishes, then its files go
        time.sleep(0.1)
    assert not folder.exists() and session.session_dir(tmp_path / "sessions", "closing") == folder
    assert not folder.exists(), "a closed session's folder was made again"
    with pytest.raises(session.SessionClosed):
        session.run_dir(folder, "late")
