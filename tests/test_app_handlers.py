"""The app's handler functions on tiny clips: input checks, run streaming, frame views, exports, sessions, CLI."""
from __future__ import annotations

import json
import re
import shutil
import threading
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from app import engine, handlers, session
from app.inputs import InputError, load_clip
from app.model_slot import ModelSlot
from app.settings import Limits, sample_clips
from model.codec import FrameResult
from model.video_io import read_video, write_mp4, write_y4m

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

    def encode_file(self, path: Path, frames: np.ndarray, rate: int, fps: float, on_frame=None) -> list[FrameResult]:
        self.frames = np.asarray(frames) // 2 * 2
        results = []
        for t, frame in enumerate(self.frames):  # frame by frame, as the model reports them
            results.append(FrameResult(t, "P", frame, 1600.0 * (rate + 1) / len(frames)))
            if on_frame is not None:
                on_frame(results[-1])
        Path(path).write_bytes(bytes(200 * (rate + 1)))
        return results

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
    assert "fake" in text and "rate points q0, q1, q2, q3," in text and "[" not in text  # no Python list
    assert "cpu" in text and "fp32" in text and "1.2 M parameters" in text
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
    first = states[0]  # shown at once, before the model loads: the page never waits without a word
    assert handlers.records(first) == [] and first["activity"] == "loading the S2VC model (once per server)"
    counts = [len(handlers.records(s)) for s in states]  # a snapshot for every step started or finished
    assert sorted(set(counts)) == [0, 1, 2] and counts == sorted(counts) and states[-1]["done"]
    assert any("HEVC (x265) @ 200 kbps: encoding" in s["activity"] for s in states[1:])
    assert [s["steps"] for s in states[-2:]] == ["3 of 3 steps done"] * 2 and states[-1]["activity"] == "done"
    assert seen[-1] == (1.0, "done") and any("x265" in d for _, d in seen)
    assert any("S2VC @ 200 kbps: decoder check" in d for _, d in seen)
    shown = next(s for s in states if "S2VC" in list(handlers.results_table(s)["codec"]))
    pending = handlers.results_table(shown).set_index("codec").loc["S2VC"]
    assert (pending["decode s"], pending["decoder check"]) == ("check pending", "pending")  # no made-up time
    state = states[-1]
    s2vc, x265 = handlers.records(state)  # in the run's order, whichever finished first
    assert s2vc["codec"] == "s2vc" and s2vc["bits"] == 800 * 8 and engine.preset_of(s2vc) == "q3"
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
    figure = Path(state["dir"], "figures", "rd_psnr_rgb.html").read_text()  # opens offline: plotly.js beside it
    assert re.findall(r"<script[^>]*\bsrc=[^>]*>", figure) == ['<script charset="utf-8" src="plotly.min.js">']
    assert "Plotly.newPlot" in figure and "figures/plotly.min.js" in zipfile.ZipFile(exports["zip"]).namelist()
    assert Path(state["dir"], "figures", "plotly.min.js").stat().st_size > 1_000_000


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


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The page, built once: its event functions by name and its components by elem_id."""
    from app.settings import Settings
    from app.ui import build

    settings = Settings(temp_root=tmp_path_factory.mktemp("page"))
    demo = build(settings, ModelSlot(device="cpu"))
    fns: dict[str | None, list] = {}
    for fn in demo.fns.values():
        fns.setdefault(fn.fn.__name__ if fn.fn else None, []).append(fn)
    ids = {block.elem_id: block for block in demo.blocks.values() if getattr(block, "elem_id", None)}
    return SimpleNamespace(demo=demo, settings=settings, fns=fns, ids=ids)


def test_page_builds(page: SimpleNamespace) -> None:
    from app.ui import launch_options

    assert page.demo.title == "S2VC Studio"
    assert "s2vc-players" in launch_options(page.settings)["head"]
    assert "load_model" in page.fns and "on_open_initial" not in page.fns  # the model loads with the page


def test_open_shows_a_saved_run_without_loading_the_model(finished_run: dict, tmp_path: Path) -> None:
    from app.settings import Settings
    from app.ui import build

    slot = ModelSlot(device="cpu")
    demo = build(Settings(temp_root=tmp_path, open_path=finished_run["exports"]["zip"]), slot)
    names = {fn.fn.__name__ for fn in demo.fns.values() if fn.fn}
    assert "on_open_initial" in names and "load_model" not in names and not slot.loaded


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


class GatedS2VC(FakeS2VC):
    """A stand-in whose encode holds after its first frame until `gate` is set (the page closes meanwhile)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate, self.coded = threading.Event(), 0

    def encode_file(self, path: Path, frames: np.ndarray, rate: int, fps: float, on_frame=None) -> list[FrameResult]:
        def each(result: FrameResult) -> None:
            self.coded += 1
            assert self.gate.wait(20), "the test did not open the gate"
            if on_frame is not None:
                on_frame(result)

        return super().encode_file(path, frames, rate, fps, each)


def test_closing_the_session_stops_the_run_mid_encode_and_leaves_nothing(clip_file: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    model = GatedS2VC()
    folder = session.session_dir(tmp_path / "sessions", "closing")
    clip = handlers.prepare_clip(str(clip_file), None, 0, 0, 0, 0, 3, "original size", LIMITS, folder)
    run = handlers.run_comparison(clip, [100.0, 200.0], ["s2vc", "x265"], {"x265": "ultrafast"}, ["psnr_rgb"],
                                  folder, _slot(model, monkeypatch))
    first = next(s for s in run if handlers.records(s))  # x265's first result; S2VC holds inside its encode
    assert [r["codec"] for r in handlers.records(first)] == ["x265"]
    session.close(folder)
    model.gate.set()
    assert list(run) == []  # no more results for a closed page
    deadline = time.time() + 20
    while folder.exists() and time.time() < deadline:  # the lanes stop, then their files go
        time.sleep(0.1)
    assert model.coded == 1, "S2VC's encode went on after the page closed"  # it stopped at its next frame
    assert not folder.exists() and session.session_dir(tmp_path / "sessions", "closing") == folder
    assert not folder.exists(), "a closed session's folder was made again"
    with pytest.raises(session.SessionClosed):
        session.run_dir(folder, "late")


def test_a_too_large_clip_gets_a_downscale_that_fits(clip_file: Path) -> None:
    with pytest.raises(InputError, match='Choose the downscale "1/2", then press "Load clip"'):  # 3072 px; 1/2: 768
        load_clip(clip_file, Limits(max_pixels=1000), count=2)
    with pytest.raises(InputError, match='Choose the downscale "fit the limit"'):  # even 1/4 (16x12) is too large
        load_clip(clip_file, Limits(max_pixels=150), count=2, downscale="1/4")
    fitted = load_clip(clip_file, Limits(max_pixels=1000), count=2, downscale="fit the limit")
    assert fitted.size == (36, 26) and 36 * 26 <= 1000 and "downscaled to 36x26" in fitted.describe()
    assert load_clip(clip_file, LIMITS, count=2, downscale="fit the limit").size == (64, 48)  # fits already


def test_session_files_are_served_in_place_and_uploads_go_with_the_session(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import gradio as gr

    from app.__main__ import use_temp_root
    from app.settings import Settings

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "elsewhere"))  # restored after the test
    settings = Settings(temp_root=tmp_path / "root")
    use_temp_root(settings)
    video = gr.Video()
    folder = session.session_dir(settings.sessions_root, "abc")
    preview = folder / "run-1" / "previews" / "x265.mp4"
    preview.parent.mkdir(parents=True)
    preview.write_bytes(b"not copied")
    assert video.move_resource_to_block_cache(preview) == str(preview)  # no copy in a cache of its own
    source = tmp_path / "clip.mp4"
    source.write_bytes(b"upload")
    upload = Path(video.move_resource_to_block_cache(source))  # where Gradio keeps an upload
    assert upload.is_relative_to(settings.temp_root) and upload.is_file()
    session.note_upload(folder, upload)
    session.note_upload(folder, source)  # not in the cache: never deleted
    other = session.session_dir(settings.sessions_root, "other-tab")  # the same clip uploaded in another tab:
    session.note_upload(other, video.move_resource_to_block_cache(source))  # Gradio keeps one copy for both
    session.close(folder)
    assert not folder.exists() and upload.is_file(), "closing one tab deleted the upload another tab uses"
    session.close(other)
    assert not other.exists() and not upload.exists() and not upload.parent.exists() and source.is_file()


def test_page_events_clear_old_results_follow_the_frame_box_and_keep_progress_in_the_status(
        page: SimpleNamespace) -> None:
    demo, fns, ids = page.demo, page.fns, page.ids
    per_frame = next(b for b in demo.blocks.values() if getattr(b, "label", None) == "per frame")
    for reset in fns["on_reset"] + fns["on_reset_for_run"]:  # a new run (or a saved one) clears the old results
        assert {ids["s2vc-table"], ids["s2vc-bd"], per_frame, ids["s2vc-slides"]} <= set(reset.outputs)
    (run,) = fns["on_run"]
    assert [b.elem_id for b in run.show_progress_on] == ["s2vc-status"]  # not over the A/B dropdowns
    assert run.show_progress == "minimal"  # the status text carries the progress; no bar laid over it
    frame_events = {event for view in fns["on_view"] for target, event in view.targets
                    if target == ids["s2vc-frame"]._id}
    assert "change" in frame_events  # typing a frame number and Enter fires change, not release
    assert list(ids["s2vc-table"].value["headers"])[:2] == ["codec", "preset"]  # no "1 2 3" when empty


def test_limits_allow_1080p_for_the_official_model_on_cuda(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app import __main__ as cli
    from app.settings import GPU_LIMITS, Limits

    official = tmp_path / "release"
    (official / "I_ckpts").mkdir(parents=True)
    (official / "P_ckpts").mkdir()
    monkeypatch.setattr(cli, "pick_device", lambda device: "cuda" if device == "auto" else device)  # a GPU
    settings, _ = cli.parse_args(["--checkpoint", str(official)])
    assert settings.limits == GPU_LIMITS and settings.limits.max_pixels == 1920 * 1080
    assert "1920x1080" in settings.limits.describe()
    assert cli.parse_args(["--checkpoint", str(official), "--device", "cpu"])[0].limits == Limits()
    assert cli.parse_args([])[0].limits == Limits()  # the bundled tiny model stays at CPU limits on a GPU
    assert cli.parse_args(["--preset", "official", "--max-pixels", "1000"])[0].limits.max_pixels == 1000
    monkeypatch.setenv("S2VC_MAX_FRAMES", "12")
    assert cli.parse_args(["--preset", "official"])[0].limits == Limits(12, 1920 * 1080, GPU_LIMITS.max_file_mb)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """S2VC (stand-in) and x265 at 200 kbps on 4 frames, finished, with its downloads written (made once for the
    tests that read it; none changes it)."""
    root = tmp_path_factory.mktemp("finished")
    clip_file = write_y4m(root / "tiny.y4m", _frames(), 25.0)
    with pytest.MonkeyPatch.context() as monkeypatch:
        slot = _slot(FakeS2VC(), monkeypatch)
        folder = session.session_dir(root / "sessions", "live")
        clip = handlers.prepare_clip(str(clip_file), None, 0, 0, 0, 0, 4, "original size", LIMITS, folder)
        state = list(handlers.run_comparison(clip, [200.0], ["s2vc", "x265"], {"x265": "ultrafast"},
                                             ["psnr_rgb", "psnr_yuv611"], folder, slot))[-1]
    return state | {"exports": handlers.export_files(state)}


def test_the_exported_zip_opens_again_as_it_was_shown(finished_run: dict, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import model as model_package

    monkeypatch.setattr(model_package, "load_model", None, raising=False)  # opening must not need the model
    live = finished_run
    zip_path = Path(live["exports"]["zip"])
    folder = session.session_dir(tmp_path / "sessions", "talk")
    clip, state = handlers.open_run(zip_path, folder)
    assert state["done"] and clip["count"] == 4 and (clip["width"], clip["height"]) == (64, 48)
    assert Path(clip["frames"]).parent == folder / "input" and Path(clip["preview"]).is_file()
    assert [r["key"] for r in handlers.player_records(state)] == [r["key"] for r in handlers.player_records(live)]
    for opened, shown in zip(handlers.records(state), handlers.records(live)):
        assert np.array_equal(handlers.load_frames(opened["decoded"]), handlers.load_frames(shown["decoded"]))
        assert opened["per_frame"] == shown["per_frame"] and opened["decoder_check"] == shown["decoder_check"]
        assert Path(opened["bitstream"]).read_bytes() == Path(shown["bitstream"]).read_bytes()
        assert Path(opened["bitstream"]).is_relative_to(folder)
    assert np.array_equal(handlers.load_frames(clip["frames"]), handlers.load_frames(live["clip"]["frames"]))
    assert handlers.results_table(state).equals(handlers.results_table(live))
    assert state["conditions"]["opened from"] == zip_path.name
    pair, _, diff = handlers.frame_views(clip, state, handlers.ORIGINAL, state["results"]["records"][0]["key"],
                                         3, 0.5, 0.5, 2)
    assert pair[0].shape == (48, 64, 3) and diff.max() <= 4
    assert Path(handlers.export_files(state)["zip"]).is_file()  # and it can be exported again
    again = list(handlers.run_comparison(clip, [300.0], ["x265"], {"x265": "ultrafast"}, ["psnr_rgb"], folder,
                                         ModelSlot(device="cpu")))[-1]  # its clip can be coded anew
    assert [r["target_kbps"] for r in handlers.records(again)] == [300.0] and Path(clip["frames"]).is_file()
    saved = json.loads(Path(live["dir"], "results.json").read_text())
    assert all(not Path(r["bitstream"]).is_absolute() for r in saved["records"])  # no server paths in it


def test_a_comparisons_run_folder_opens_with_the_baselines_decoded(clip_file: Path, tmp_path: Path) -> None:
    from comparisons.codecs import get_codec
    from comparisons.runner import run_comparison

    frames, _ = read_video(clip_file, frames=4)
    out = tmp_path / "cmp"
    run_comparison(frames, 25.0, [get_codec("x265", preset="ultrafast")], [150.0, 300.0], out, ["psnr_rgb"],
                   clip={"path": str(clip_file), "start": 0}, log=lambda line: None)
    clip, state = handlers.open_run(out, session.session_dir(tmp_path / "sessions", "cmp"))
    (shown,) = handlers.player_records(state)  # one tile per codec: its first bitrate
    assert shown["target_kbps"] == 150.0 and len(handlers.records(state)) == 2
    decoded = handlers.load_frames(shown["decoded"])
    assert decoded.shape == (4, 48, 64, 3) and np.array_equal(handlers.load_frames(clip["frames"]), frames)
    mse = np.mean((decoded.astype(float) - frames) ** 2, axis=(1, 2, 3))
    assert np.allclose(10 * np.log10(255 ** 2 / mse), shown["per_frame"]["psnr_rgb"])  # the frames it measured
    assert len(handlers.rd_figures(state)["psnr_rgb"].data[0].x) == 2
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no results.json"):
        handlers.open_run(tmp_path / "empty", tmp_path / "s2")
    suite = tmp_path / "suite"
    for name in ("seqA", "seqB"):
        shutil.copytree(out, suite / "hevc_b" / name)
    with pytest.raises(InputError, match="holds 2 runs; pick one: hevc_b/seqA, hevc_b/seqB"):
        handlers.open_run(suite, session.session_dir(tmp_path / "sessions", "suite"))
    _, picked = handlers.open_run(suite, session.session_dir(tmp_path / "sessions", "suite"), "hevc_b/seqB")
    assert len(handlers.records(picked)) == 2
    zipped = shutil.make_archive(str(tmp_path / "suite"), "zip", suite)
    assert handlers.saved_run_names(zipped) == ["hevc_b/seqA", "hevc_b/seqB"]
    clip, picked = handlers.open_run(zipped, session.session_dir(tmp_path / "sessions", "zipped"), "hevc_b/seqA")
    assert len(handlers.records(picked)) == 2 and clip["count"] == 4
    bad = tmp_path / "notes.zip"
    bad.write_text("not a zip")
    with pytest.raises(InputError, match="neither a zip exported by S2VC Studio nor a results folder"):
        handlers.open_run(bad, tmp_path / "s3")


def _video_facts(path: Path) -> tuple[str, int, int, int, float]:
    """(codec, frames, width, height, seconds) of an MP4, read with PyAV."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(stream))
        return (stream.codec_context.name, count, stream.codec_context.width, stream.codec_context.height,
                float(container.duration / 1e6))


def _tiny(state: dict) -> dict:
    """The run as if S2VC were the bundled tiny model."""
    records = [r | {"version": "S2VC preset=tiny, rate_names=[...]"} if r["codec"] == "s2vc" else r
               for r in state["results"]["records"]]
    return {**state, "results": {**state["results"], "records": records}}


def _labels_fit(plan) -> list[int]:
    """Every drawn label line inside its tile (and the canvas); returns the spare pixels beside each line."""
    width, height = plan.canvas
    spare = []
    for tile, text, (left, top, right, bottom) in plan.texts:
        outer = (0, 0, width, height) if tile < 0 else plan.tiles[tile]
        assert outer[0] <= left and right <= outer[2] and outer[1] <= top and bottom <= outer[3], (text, outer)
        spare.append(min(left - outer[0], outer[2] - right))
    return spare


def test_slide_media(finished_run: dict, tmp_path: Path) -> None:
    from app import compose, slides

    state = _tiny(finished_run)
    s2vc, x265 = (r["key"] for r in handlers.player_records(state))
    grid = slides.side_by_side(state, "grid", tmp_path / "grid.mp4")  # original, S2VC, x265 as 2x2, each 64x48
    assert _video_facts(grid)[:4] == ("h264", 4, 1920, 1080) and abs(_video_facts(grid)[4] - 4 / 25) < 0.01
    plan = slides.side_by_side_layout(state, "grid")
    assert [t for _, t, _ in plan.texts] == ["original", "S2VC (small CPU demo model) · q3 · 40.0 kbps", x265]
    assert plan.scale == 9 and plan.picture == (576, 432) and plan.text_px == 32  # 64x48 x9 fills a 2x2 cell
    _labels_fit(plan)
    row = slides.side_by_side_layout(state, "row")
    assert row.scale == 9 and row.picture == (576, 432) and row.text_px == 30  # a little smaller, on one line
    _labels_fit(row)
    assert len(row.texts) == 3
    narrow = compose.tiles((64, 48), [["a long label · that cannot · fit a narrow tile · at all"]] * 6, "row")
    assert len(narrow.texts) == 12 and narrow.text_px >= compose.SMALLEST_TEXT  # wrapped onto two lines, not cut
    assert min(_labels_fit(narrow)) >= 0
    big = slides.side_by_side_layout(state, "grid", "3840x2160")
    assert big.canvas == (3840, 2160) and big.scale == 19 and big.text_px == 64
    wipe = slides.wipe_video(state, s2vc, tmp_path / "wipe.mp4", "1280x720")
    assert _video_facts(wipe)[:4] == ("h264", 4, 1280, 720)
    with pytest.raises(ValueError, match="not among the shown results"):
        slides.wipe_video(state, "VVC · nothing", tmp_path / "no.mp4")
    with pytest.raises(ValueError, match="slide size must be one of 1280x720, 1920x1080, 3840x2160"):
        slides.side_by_side(state, "grid", tmp_path / "no.mp4", "1000x1000")

    figure = Image.open(slides.crop_figure(state, 2, 0.5, 0.5, 4, ["psnr_rgb", "psnr_yuv611"], tmp_path / "c.png"))
    assert figure.size == (1920, 1080)
    crop, _ = slides.crop_layout(state, 2, 0.5, 0.5, 4, ["psnr_rgb", "psnr_yuv611"])
    texts = [t for _, t, _ in crop.texts]
    assert crop.scale >= 20 and crop.picture == (round(16 * crop.scale), round(12 * crop.scale))  # a 16x12 crop
    assert "S2VC (small CPU demo model) · q3 · 40.0 kbps" in texts and any(t.startswith("PSNR (RGB): ") for t in texts)
    assert any("PSNR (YUV 6:1:1) (higher is better): PSNR (6*Y + Cb + Cr)/8" in t for t in texts)  # footnote
    assert min(_labels_fit(crop)) >= 0
    with pytest.raises(ValueError, match="one or two metrics"):
        slides.crop_layout(state, 2, 0.5, 0.5, 4, ["psnr_rgb", "psnr_yuv611", "vmaf"])
    unmeasured = {**state, "results": {**state["results"], "metrics": {**state["results"]["metrics"],
                                                                       "vmaf": {"variant": "VMAF"}}}}
    with pytest.raises(ValueError, match="vmaf was not measured in this run"):  # requested, but no record has it
        slides.crop_layout(unmeasured, 2, 0.5, 0.5, 4, ["vmaf"])
    plots = slides.rd_slides(state, tmp_path / "rd")
    assert [p.name for p in plots] == ["rd_psnr_rgb.png", "rd_psnr_rgb.svg", "rd_psnr_yuv611.png",
                                       "rd_psnr_yuv611.svg"]
    assert Image.open(plots[0]).size == (1920, 1080) and 'width="1920"' in plots[1].read_text()
    assert "S2VC (small CPU demo model) · q3" in plots[1].read_text()  # the legend names the model


def test_wipe_puts_each_source_where_it_belongs() -> None:
    from app import compose

    black, white = np.zeros((20, 40, 3), np.uint8), np.full((20, 40, 3), 255, np.uint8)
    plan, labels = compose.wipe_layout((40, 20), ("a", "b"), (1280, 720))
    assert plan.scale == 31 and plan.picture == (1240, 620)  # the whole factor: 31.75 would keep little more
    frame = compose.wipe(plan, labels, black, white, 0.25)
    left, top, right, bottom = plan.pictures[0]
    assert frame.shape == (720, 1280, 3)
    assert (frame[bottom - 2, left:left + 300] == 0).all() and (frame[bottom - 2, left + 320:right] == 255).all()
    assert (frame[bottom - 2, left + 310] == compose.SPLIT).all()  # split at a quarter of 1240 px
    assert [t for _, t, _ in plan.texts] == ["a", "b"]
    long = "S2VC (small CPU demo model) · q3 · 40.0 kbps"  # on a narrow picture: wrapped, each on its own half
    plan, labels = compose.wipe_layout((30, 40), ("original", long), (1280, 720))
    compose.wipe(plan, labels, black[:, :30], white[:, :30], 0.5)
    left, top, right, bottom = plan.pictures[0]
    middle = (left + right) // 2
    assert len(plan.texts) > 2 and all(t.strip() for _, t, _ in plan.texts)
    for side, text, (x0, y0, x1, y1) in plan.texts:
        assert top <= y0 and y1 <= bottom and (left <= x0 and x1 <= middle if side == 0 else middle <= x0
                                                and x1 <= right), (text, (x0, x1), (left, middle, right))
    assert compose.grid_shape(4, "grid") == (2, 2) and compose.grid_shape(5, "grid") == (2, 3)
    assert compose.grid_shape(5, "row") == (1, 5)
    with pytest.raises(ValueError, match="layout must be one of grid, row"):
        compose.grid_shape(2, "column")
    assert 0.44 < compose.tiles((1920, 1080), [["x"]] * 4, "grid").scale < 0.45  # 1080p tiles reduced to fit 2x2


def test_tiny_model_note_off_target_flags_and_matching_the_baselines(finished_run: dict) -> None:
    state = finished_run
    s2vc, x265 = handlers.records(state)
    assert handlers.demo_model_note(state) == ""  # the stand-in is not the bundled tiny model
    tiny = {**state, "results": {**state["results"], "records": [s2vc | {"version": "S2VC preset=tiny, ..."}, x265]}}
    assert "not the paper's" in handlers.demo_model_note(tiny) and "--checkpoint" in handlers.demo_model_note(tiny)
    assert s2vc["kbps"] == 40.0 and not s2vc["within_tolerance"]  # the stand-in's highest rate point
    (note,) = handlers.off_target_notes(state)
    assert note.startswith("S2VC cannot reach 200 kbps on this clip: its nearest rate point (q3) gives 40.0 "
                           "kbps, 80% below the target") and "5.00x S2VC's bits" in note
    assert handlers.tile_label(s2vc) == "S2VC · q3 · 40.0 kbps ⚠️ target was 200"  # short: it sits on one line
    assert handlers.tile_label(x265) == x265["key"]
    assert handlers.can_match(state)
    matched = list(handlers.match_s2vc(state, Path(state["dir"]).parent))[-1]
    shown = handlers.player_records(matched)
    assert [r["codec"] for r in shown] == ["s2vc", "x265"] and shown[0] is not None
    assert shown[1]["target_kbps"] == 40.0 and abs(shown[1]["kbps"] / 40.0 - 1) <= 0.05
    assert len(handlers.records(matched)) == 3 and not handlers.can_match(matched)  # the 200 kbps x265 stays
    assert len(handlers.rd_figures(matched)["psnr_rgb"].data[1].x) == 2  # x265 now has a curve


def test_tables_titles_and_report_read_well(finished_run: dict) -> None:
    state = finished_run
    bd = handlers.bd_table(state)  # one bitrate: no curves
    assert list(bd.columns) == ["note"] and len(bd) == 1 and bd["note"][0].startswith("no BD-rate")
    assert list(handlers.results_table(None).columns) == handlers.TABLE_COLUMNS
    figure = handlers.rd_figures(state)["psnr_rgb"]
    assert figure.layout.title.text == "PSNR (RGB), higher is better"  # the plain name and its direction
    subtitle = figure.layout.title.subtitle.text  # the exact variant, wrapped to the plot's width
    assert subtitle.replace("<br>", " ").startswith("psnr_rgb: PSNR on 8-bit RGB")
    assert all(len(line) <= 90 for line in subtitle.split("<br>"))
    assert [t.name for t in figure.data] == ["S2VC · q3", "HEVC (x265) · ultrafast"]  # as the page names results
    per_frame = handlers.per_frame_figure(state, "psnr_rgb")
    assert [t.name for t in per_frame.data] == [r["key"] for r in handlers.player_records(state)]  # as the players
    tiny = {**state, "results": {**state["results"], "records": [
        r | {"version": "S2VC preset=tiny, ..."} if r["codec"] == "s2vc" else r for r in state["results"]["records"]]}}
    assert handlers.rd_figures(tiny, handlers.s2vc_name(tiny))["psnr_rgb"].data[0].name == \
        "S2VC (small CPU demo model) · q3"
    assert engine.s2vc_name(state["results"], {"model checkpoint": "s2vc_official"}) == "S2VC (s2vc_official)"
    assert engine.s2vc_name(state["results"], {"model checkpoint": "bundled default (assets/models)"}) == "S2VC"
    report = Path(state["exports"]["report"]).read_text()
    assert state["dir"] not in report and "bitstreams/x265_200kbps" in report  # relative to the download
    from app.report import inline_markdown

    note = inline_markdown(handlers.DEMO_MODEL_NOTE)  # the report's tiny-model note: HTML, no raw Markdown
    assert "**" not in note and "`" not in note and "<code>python -m app --checkpoint" in note
    assert "grid-template-columns:repeat(3,1fr)" in report  # original + 2 codecs in one row


def test_cli_open_checks_the_saved_run_before_starting(finished_run: dict, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    from app.__main__ import parse_args

    zip_path = finished_run["exports"]["zip"]
    settings, _ = parse_args(["--open", zip_path])
    assert settings.open_path == zip_path and settings.open_sequence is None
    for name in ("a", "b"):
        shutil.copytree(finished_run["dir"], tmp_path / "two" / name)
    assert parse_args(["--open", str(tmp_path / "two"), "--sequence", "b"])[0].open_sequence == "b"
    for argv, message in ((["--open", str(tmp_path / "gone.zip")], "no such file or folder"),
                          (["--open", str(Path(finished_run["dir"]) / "results.csv")], "not a saved run"),
                          (["--open", str(tmp_path / "two")], "holds 2 runs; pick one with --sequence: a, b")):
        with pytest.raises(SystemExit) as stop:
            parse_args(argv)
        assert stop.value.code == 2 and message in capsys.readouterr().err


def test_frame_views_are_files_of_the_session_and_do_not_pile_up(tmp_path: Path) -> None:
    image = np.zeros((8, 8, 3), np.uint8)
    made = [handlers.save_views(tmp_path, {"a": image, "diff": image + 9}) for _ in range(handlers.KEPT_VIEWS + 3)]
    assert all(Path(p).parent == tmp_path / "views" for views in made for p in views.values())
    kept = sorted((tmp_path / "views").glob("*.png"))
    assert len(kept) == 2 * (handlers.KEPT_VIEWS + 1) and all(Path(p).is_file() for p in made[-1].values())
    assert not Path(made[0]["a"]).exists()
    assert np.array_equal(np.asarray(Image.open(made[-1]["diff"])), image + 9)


def test_new_runs_reset_the_lists_with_their_values_and_a_saved_run_brings_back_its_settings(
        page: SimpleNamespace, finished_run: dict) -> None:
    import gradio as gr

    (reset,), (clip,), (match,) = page.fns["on_reset_for_run"], page.fns["on_clip_for_run"], page.fns["on_match"]
    # a run resets the A/B lists first: the frame box's events that the clip step fires carry no removed codec
    assert reset.trigger_after is None and page.demo.fns[clip.trigger_after] is reset
    assert page.demo.fns[match.trigger_after] is page.fns["on_reset_choices"][0]
    for name in ("on_reset", "on_reset_for_run", "on_reset_choices"):  # a list is never left holding a value
        for fn in page.fns[name]:                                     # that its new choices lack
            updates = fn.fn()
            shared = [u for u in updates if isinstance(u, dict) and sum(u is v for v in updates) > 1]
            assert not shared, shared  # Gradio pops "value" from an update as it applies it: one dict per output
            for block, update in zip(fn.outputs, updates):
                if isinstance(block, gr.Dropdown) and isinstance(update, dict) and "choices" in update:
                    assert update["value"] in (update["choices"] or [None]), (block.label, update)
    assert handlers.run_settings(finished_run) == {"kbps": 200.0, "sweep": [], "codecs": ["s2vc", "x265"],
                                                   "presets": {"x265": "ultrafast"},
                                                   "metrics": ["psnr_rgb", "psnr_yuv611"]}
    (on_open,) = page.fns["on_open"]
    values = on_open.fn(finished_run["exports"]["zip"], None, gr.Request(session_hash="reopened"), gr.Progress())
    shown = dict(zip(on_open.outputs, values))
    presets = {b.label: b for b in page.demo.blocks.values() if str(getattr(b, "label", "")).endswith(" preset")}
    assert shown[page.ids["s2vc-kbps"]] == 200.0 and shown[page.ids["s2vc-codecs"]] == ["s2vc", "x265"]
    assert shown[page.ids["s2vc-metrics"]] == ["psnr_rgb", "psnr_yuv611"]
    assert shown[presets["HEVC (x265) preset"]]["value"] == "ultrafast"
    assert "Opened s2vc_studio_results.zip" in shown[page.ids["s2vc-status"]]
    session.close(page.settings.sessions_root / "reopened")
