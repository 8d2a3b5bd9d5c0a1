"""comparisons.suite on tiny synthetic sequences (32x32, 2 frames, x265/x264 ultrafast, PSNR only): folder and
manifest input, jobs and their records, resume, a failing job, the model built once per worker, 2 local workers,
Dask's local cluster, the per-dataset tables, figures and the command line."""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from comparisons.__main__ import main
from comparisons.results import load_results
from comparisons.suite import jobs as suite_jobs
from comparisons.suite.engines import Dask, EngineError, InProcess, ProcessPool, open_engine
from comparisons.suite.execute import matched_follow_up, plan_jobs, run_jobs, suite_logger
from comparisons.suite.jobs import Job, ResumeError, Settings, finished
from comparisons.suite.report import build_report
from comparisons.suite.sources import Sequence, SourceError, load_sequences
from model.video_io import rgb_to_yuv420, write_png_folder, write_y4m
from tests.test_video_io import clip

FAST = Settings(frames=2, presets=(("x264", "ultrafast"), ("x265", "ultrafast")), metrics=("psnr_rgb",))
KBPS = [20.0, 40.0, 80.0]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Dataset "A": two y4m clips; dataset "B": a PNG folder and a raw yuv named as the test sets name them."""
    root = tmp_path_factory.mktemp("suite_source")
    (root / "A").mkdir()
    (root / "B").mkdir()
    write_y4m(root / "A" / "one.y4m", clip(t=2, h=32, w=32, seed=1), 25)
    write_y4m(root / "A" / "two.y4m", clip(t=2, h=32, w=32, seed=2), 25)
    (root / "A" / "LICENSE.txt").write_text("not a sequence")
    write_png_folder(root / "B" / "three", clip(t=2, h=32, w=32, seed=3))
    planes = rgb_to_yuv420(clip(t=2, h=32, w=32, seed=4))
    (root / "B" / "Four_32x32_30.yuv").write_bytes(b"".join(b"".join(p[i].tobytes() for p in planes) for i in range(2)))
    return root


def run(sequences: list[Sequence], out: Path, engine=None, codecs=("x265", "x264"), settings: Settings = FAST,
        **kwargs):
    jobs = plan_jobs(sequences, list(codecs), out, settings, kbps=KBPS)
    return jobs, run_jobs(jobs, engine or InProcess(), suite_logger(out / "suite.log"), progress=False, **kwargs)


# ------------------------------------------------------------------------------------------------------ input
def test_folder_input_datasets_sequences_and_names(source: Path) -> None:
    sequences = load_sequences(source, fps=25)
    assert [(s.key, s.fps) for s in sequences] == [("A/one", None), ("A/two", None), ("B/Four_32x32_30", None),
                                                   ("B/three", 25.0)]  # the default fps only where none is stated
    assert all(Path(s.path).is_absolute() for s in sequences)
    with pytest.raises(SourceError, match="B/three: .* pass fps"):  # a PNG folder stores no frame rate
        load_sequences(source)


def test_json_and_yaml_manifests(source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUITE_DATA", str(source))
    entries = {"datasets": {"mixed": [{"path": "${SUITE_DATA}/B/three", "fps": 50, "name": "png"},
                                      str(source / "A" / "one.y4m"),
                                      {"path": "raw.yuv", "size": "32x32", "fps": 30}]}}
    (tmp_path / "raw.yuv").write_bytes((source / "B" / "Four_32x32_30.yuv").read_bytes())  # relative to the manifest
    (tmp_path / "m.json").write_text(json.dumps(entries))
    import yaml

    (tmp_path / "m.yaml").write_text(yaml.safe_dump(entries))
    for manifest in ("m.json", "m.yaml"):
        got = load_sequences(tmp_path / manifest)
        assert [(s.key, s.fps, s.size) for s in got] == [("mixed/png", 50.0, None), ("mixed/one", None, None),
                                                         ("mixed/raw", 30.0, (32, 32))]
        assert got[2].path == str(tmp_path / "raw.yuv")


@pytest.mark.parametrize("text, message", [
    ("datasets: [a, b]", "needs a 'datasets' mapping"),
    ("datasets: {d: [{path: x.y4m, speed: 2}]}", "unknown key.*speed"),
    ("datasets: {d: [{path: x.y4m, fps: -1}]}", "fps must be a positive number"),
    ("datasets: {d: [{path: x.yuv, size: big}]}", "size must be WIDTHxHEIGHT"),
    ("datasets: {d: [\"${NO_SUCH_VARIABLE_S2VC}/a.y4m\"]}", "environment variable not set"),
    ("datasets: {d: [x/a.y4m, y/a.y4m]}", "names repeat within a dataset: d/a \\(give each a name\\)"),
    ("datasets: {d: [missing.y4m]}", "1 sequence\\(s\\) cannot be read: d/missing: .*no such file"),
    ("datasets: {d: [: x", "not a readable YAML manifest"),
])
def test_manifest_errors_name_the_entry(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "m.yaml").write_text(text)
    with pytest.raises(SourceError, match=message):
        load_sequences(tmp_path / "m.yaml")


# ------------------------------------------------------------------------------------------- jobs and records
def test_suite_records_report_and_tables(source: Path, tmp_path: Path) -> None:
    sequences = load_sequences(source, fps=25)
    jobs, summary = run(sequences, tmp_path)
    assert (summary.ran, summary.failed, summary.skipped, len(jobs)) == (24, 0, 0, 24)
    one = load_results(tmp_path / "sequences" / "A" / "one" / "jobs" / "x265_40kbps.json")
    assert len(one["records"]) == 1 and one["records"][0]["target_kbps"] == 40.0
    assert one["records"][0]["bitstream"].startswith(str(tmp_path / "sequences" / "A" / "one" / "bitstreams"))
    suite = build_report(tmp_path, anchor="x265", png=False)
    merged = load_results(tmp_path / "sequences" / "A" / "one" / "results.json")  # what `comparisons run` writes
    assert sorted((r["codec"], r["target_kbps"]) for r in merged["records"]) == sorted(
        (c, k) for c in ("x264", "x265") for k in KBPS)
    assert merged["test_conditions"]["targets_kbps"] == KBPS
    assert (merged["clip"]["width"], merged["clip"]["frames"]) == (32, 2)
    assert (tmp_path / "sequences" / "A" / "one" / "results.csv").is_file()
    assert list(suite["datasets"]) == ["A", "B"]
    a = suite["datasets"]["A"]
    assert a["sequences"] == ["one", "two"] and not a["fid"]["available"] and a["fid"]["reason"]
    points = pd.DataFrame(a["rate_points"])
    assert len(points) == 6 and set(points["sequences"]) == {2}
    one_x265 = sorted(r["metrics"]["psnr_rgb"] for r in merged["records"] if r["codec"] == "x265")
    two = load_results(tmp_path / "sequences" / "A" / "two" / "results.json")
    two_x265 = sorted(r["metrics"]["psnr_rgb"] for r in two["records"] if r["codec"] == "x265")
    mean = points[points.codec == "x265"].sort_values("rate_index")["psnr_rgb"].tolist()
    assert mean == pytest.approx([(x + y) / 2 for x, y in zip(one_x265, two_x265)])
    bd = a["bd_rate"]["x264"]["psnr_rgb"]
    assert bd["sequences"] + len(bd["undefined"]) == 2
    table = pd.read_csv(tmp_path / "tables" / "bd_rate.csv", comment="#")
    assert table.columns.tolist() == ["dataset", "codec", "psnr_rgb"]  # datasets as rows, metrics as columns
    assert table["dataset"].tolist() == ["A", "B"] and table["codec"].tolist() == ["x264 vs x265"] * 2
    markdown = (tmp_path / "tables" / "bd_rate.md").read_text()
    assert markdown.count("\n| A ") + markdown.count("\n| B ") == 2 and "psnr_rgb: PSNR on 8-bit RGB" in markdown
    latex = (tmp_path / "tables" / "bd_rate.tex").read_text()
    assert "\\begin{tabular}{llr}" in latex and "psnr\\_rgb" in latex and "(\\%)" in latex
    assert len(pd.read_csv(tmp_path / "tables" / "rate_points.csv", comment="#")) == 12
    assert sorted(p.name for p in (tmp_path / "plots").rglob("*.html")) == ["rd_psnr_rgb.html"] * 2
    log = (tmp_path / "suite.log").read_text()
    assert log.count(" done ") == 24 and "A/one x265_40kbps" in log


def test_rate_point_means_count_the_sequences_that_have_each_metric() -> None:
    from comparisons.suite.report import rate_points
    from tests.test_comparisons_results import synthetic_results

    full, partial = synthetic_results(), synthetic_results()
    for record in partial["records"]:
        record["kbps"] *= 2
        record["metrics"].pop("st_lpips_alex")  # e.g. a metric not defined at this frame size
    table = rate_points([full, partial]).set_index(["codec", "rate_index"])
    assert len(table) == 8 and set(table["sequences"]) == {2} and set(table["st_lpips_alex sequences"]) == {1}
    assert table.loc[("a", 0), "kbps"] == 150.0 and table.loc[("a", 1), "st_lpips_alex"] == pytest.approx(0.2)
    assert "psnr_rgb sequences" not in table


def test_indexed_records_number_each_codecs_points_from_its_lowest_rate() -> None:
    from comparisons.suite.report import indexed_records

    def record(codec: str, target: float | None, kbps: float) -> dict:
        return {"codec": codec, "target_kbps": target, "kbps": kbps}

    results = {"records": [record("x265", 200.0, 190.0), record("s2vc", None, 30.0), record("x265", 50.0, 60.0),
                           record("s2vc", None, 10.0), record("x265", 100.0, 95.0)]}
    got = [(codec, i, r["kbps"]) for codec, i, r in indexed_records(results)]
    assert got == [("x265", 0, 60.0), ("x265", 1, 95.0), ("x265", 2, 190.0), ("s2vc", 0, 10.0), ("s2vc", 1, 30.0)]


class Interrupted(InProcess):
    """Dies (as a killed run would) after ``after`` finished jobs."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after, self.submitted = after, []

    def submit(self, job: Job):
        self.submitted.append(job.name)
        return super().submit(job)

    def wait(self, futures: set) -> set:
        if self.after == 0:
            raise KeyboardInterrupt
        self.after -= 1
        return super().wait(futures)


def test_resume_after_a_kill_redoes_nothing(source: Path, tmp_path: Path) -> None:
    sequences = load_sequences(source, fps=25)[:1]
    with pytest.raises(KeyboardInterrupt):
        run(sequences, tmp_path, Interrupted(after=2))
    done = sorted(p.name for p in tmp_path.rglob("jobs/*.json"))
    assert done == ["x265_20kbps.json", "x265_40kbps.json"]
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("jobs/*.json")}
    again = Interrupted(after=99)
    _, summary = run(sequences, tmp_path, again)
    assert (summary.skipped, summary.ran) == (2, 4)
    assert sorted(again.submitted) == ["x264_20kbps", "x264_40kbps", "x264_80kbps", "x265_80kbps"]
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    jobs = list(tmp_path.rglob("jobs/*.json"))
    other = Interrupted(after=99)
    with pytest.raises(ResumeError, match="presets"):  # other settings into the same folder: refused before any runs
        run(load_sequences(source, fps=25)[:2], tmp_path, other,
            settings=Settings(frames=2, presets=(("x265", "medium"),), metrics=("psnr_rgb",)))
    assert other.submitted == [] and list(tmp_path.rglob("jobs/*.json")) == jobs


def test_failing_job_is_recorded_and_the_rest_run(source: Path, tmp_path: Path) -> None:
    sequences = load_sequences(source, fps=25)[:1]
    broken = Settings(frames=2, presets=(("x264", "ultrafast"), ("x265", "no-such-preset")), metrics=("psnr_rgb",))
    _, summary = run(sequences, tmp_path, settings=broken)
    assert (summary.ran, summary.failed) == (6, 3)
    failure = load_results(tmp_path / "sequences" / "A" / "one" / "jobs" / "x265_20kbps.json")
    assert failure["records"] == [] and failure["failures"][0]["codec"] == "x265"
    assert "Error" in failure["failures"][0]["error"]
    suite = build_report(tmp_path, anchor="x265", png=False)
    assert sorted(f["target_kbps"] for f in suite["failures"]) == KBPS
    assert load_results(tmp_path / "sequences" / "A" / "one" / "results.json")["failures"][0]["codec"] == "x265"
    assert suite["datasets"]["A"]["bd_rate"]["x264"]["psnr_rgb"]["bd_rate_percent"] is None
    again = Interrupted(after=99)
    _, summary = run(sequences, tmp_path, again, settings=broken)
    assert summary.skipped == 6 and again.submitted == []  # a recorded failure counts as done ...
    _, summary = run(sequences, tmp_path, again, settings=broken, retry_failed=True)
    assert sorted(again.submitted) == ["x265_20kbps", "x265_40kbps", "x265_80kbps"]  # ... unless retried


def test_codec_is_built_once_per_worker(source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import comparisons.codecs as codecs

    built = []
    real = codecs.get_codec
    monkeypatch.setattr(codecs, "get_codec", lambda name, **kw: built.append(name) or real(name, **kw))
    suite_jobs._codec.cache_clear()
    run(load_sequences(source, fps=25)[:2], tmp_path, codecs=("x265",))
    assert built == ["x265"]  # 6 jobs, one codec object (for S2VC: one model load)


def test_match_s2vc_codes_the_baselines_at_s2vcs_real_bitrates(tmp_path: Path) -> None:
    write_y4m(tmp_path / "src" / "d" / "a.y4m", clip(t=3, h=64, w=64, seed=5), 25)
    sequences = load_sequences(tmp_path / "src")
    settings = Settings(frames=3, presets=(("x265", "ultrafast"),), metrics=("psnr_rgb",), device="cpu")
    jobs = plan_jobs(sequences, ["s2vc", "x265"], tmp_path / "out", settings, rate_points=2)
    assert [j.name for j in jobs] == ["s2vc_rate0", "s2vc_rate1"]
    engine = Interrupted(after=99)
    summary = run_jobs(jobs, engine, suite_logger(tmp_path / "suite.log"), matched_follow_up(["s2vc", "x265"], 2),
                       progress=False)
    assert (summary.ran, summary.failed) == (4, 0)
    s2vc = [load_results(tmp_path / "out" / "sequences" / "d" / "a" / "jobs" / f"s2vc_rate{r}.json")["records"][0]
            for r in range(2)]
    assert [r["settings"]["rate_index"] for r in s2vc] == [0, 1]
    assert engine.submitted[2:] == [f"x265_{round(r['kbps'], 3):g}kbps" for r in s2vc]
    again = Interrupted(after=99)
    summary = run_jobs(jobs, again, suite_logger(tmp_path / "suite.log"), matched_follow_up(["s2vc", "x265"], 2),
                       progress=False)
    assert (summary.skipped, again.submitted) == (4, [])  # the matched jobs are found again from S2VC's records


# ---------------------------------------------------------------------------------------------------- engines
def _workers(out: Path) -> set[str]:
    return {load_results(p)["suite_job"]["worker"] for p in out.rglob("jobs/*.json")}


def test_two_local_workers(source: Path, tmp_path: Path) -> None:
    sequences = load_sequences(source, fps=25)[:2]
    _, summary = run(sequences, tmp_path, ProcessPool(2), codecs=("x265",))
    assert (summary.ran, summary.failed) == (6, 0)
    assert summary.engine == "local process pool, 2 workers"
    assert 1 <= len(_workers(tmp_path)) <= 2 and not any(w.endswith(f":{os.getpid()}") for w in _workers(tmp_path))
    assert len(build_report(tmp_path, anchor="x265", png=False)["datasets"]["A"]["rate_points"]) == 3


@pytest.fixture
def dask_scratch(tmp_path: Path) -> Iterator[Path]:
    """Dask workers' scratch space in the test's folder, not the system temp folder's dask-scratch-space."""
    import dask

    with dask.config.set({"temporary-directory": str(tmp_path / "dask")}):
        yield tmp_path / "dask"


@pytest.mark.usefixtures("dask_scratch")
def test_dask_local_cluster_two_workers(source: Path, tmp_path: Path) -> None:
    sequences = load_sequences(source, fps=25)[:2]
    _, summary = run(sequences, tmp_path, Dask(2), codecs=("x265",))
    assert (summary.ran, summary.failed) == (6, 0)
    assert summary.engine == "Dask local cluster, 2 worker processes"
    assert not any(w.endswith(f":{os.getpid()}") for w in _workers(tmp_path))


@pytest.mark.usefixtures("dask_scratch")
def test_dask_scheduler_address(source: Path, tmp_path: Path) -> None:
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:
        _, summary = run(load_sequences(source, fps=25)[:1], tmp_path, Dask(1, cluster.scheduler_address),
                         codecs=("x265",))
        assert (summary.ran, summary.failed) == (3, 0)
        assert summary.engine == f"Dask cluster at {cluster.scheduler_address}"


def test_engine_errors() -> None:
    with pytest.raises(EngineError, match="at least 1"):
        open_engine("local", 0)
    with pytest.raises(EngineError, match="--address is for --engine dask"):
        open_engine("local", 2, "tcp://127.0.0.1:1")
    assert isinstance(open_engine("local", 1), InProcess)


# -------------------------------------------------------------------------------------------- command line
def test_cli_suite_and_suite_report(source: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    args = ["suite", str(source), "--fps", "25", "--frames", "2", "--codecs", "x265,x264", "--kbps", "20,40,80",
            "--preset", "x265=ultrafast,x264=ultrafast", "--metrics", "psnr_rgb", "--no-png", "--no-progress",
            "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "24 jobs ran (0 failed, recorded), 0 already done" in printed and "| A " in printed
    assert main(args) == 0 and "0 jobs ran (0 failed, recorded), 24 already done" in capsys.readouterr().out
    (out / "tables" / "bd_rate.csv").unlink()
    assert main(["suite-report", str(out), "--no-png"]) == 0 and (out / "tables" / "bd_rate.csv").is_file()
    with pytest.raises(SystemExit, match="--anchor vvenc is not among --codecs"):
        main([*args, "--anchor", "vvenc"])
    with pytest.raises(SystemExit, match="no such folder or manifest"):
        main(["suite", str(tmp_path / "none"), "--kbps", "20", "--out", str(out)])
    with pytest.raises(SystemExit, match="no suite records"):
        main(["suite-report", str(tmp_path)])
    assert finished(plan_jobs(load_sequences(source, fps=25), ["x265"], out, Settings(
        frames=2, presets=(("x264", "ultrafast"), ("x265", "ultrafast")), metrics=("psnr_rgb",)), KBPS)[0]) is not None


def test_list_states_measured_metric_cost_with_date_and_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture) -> None:
    from comparisons import bench

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert main(["list"]) == 0
    assert "psnr_rgb" in (out := capsys.readouterr().out) and "cost not measured here (list --measure)" in out
    assert main(["list", "--measure", "psnr_rgb"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("metric psnr_rgb"))
    assert " s per 1080p frame (measured 20" in line
    cached = json.loads(bench.cost_cache().read_text())
    assert cached["machine"] == bench.machine() and cached["metrics"]["psnr_rgb"]["seconds_per_frame"] > 0
    monkeypatch.setattr(bench, "machine", lambda: "another machine")  # a figure from elsewhere is not shown
    assert bench.measured_costs() == {}
