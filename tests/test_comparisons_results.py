"""Results JSON round trip into pandas, BD-rate on curves with known answers, plots and the CLI."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from comparisons.__main__ import main
from comparisons.bdrate import BDRateError, bd, bd_table
from comparisons.plots import rd_figure, save_figures
from comparisons.results import load_results, per_frame_table, records_table, save_results
from comparisons.runner import new_results
from model.video_io import write_y4m
from tests.test_video_io import clip


def synthetic_results(scale: float = 0.9) -> dict:
    """Two codecs: 'b' needs `scale` x the bits of 'a' for the same PSNR and ST-LPIPS."""
    frames = clip(t=2, h=16, w=16)
    results = new_results({"path": "synthetic"}, frames, 25.0, [100, 200, 400, 800], ["psnr_rgb", "st_lpips_alex"])
    for codec, factor in (("a", 1.0), ("b", scale)):
        for i, kbps in enumerate([100.0, 200.0, 400.0, 800.0]):
            results["records"].append({
                "codec": codec, "label": codec.upper(), "traditional": codec == "a", "version": "v", "settings": {},
                "command": "", "bitstream": "", "bits": 1, "frames": 2, "fps": 25.0, "width": 16, "height": 16,
                "kbps": kbps * factor, "bpp": 0.1, "target_kbps": kbps, "within_tolerance": True, "trials": [],
                "encode_seconds": 1.0, "decode_seconds": 0.1,
                "metrics": {"psnr_rgb": 30.0 + 3 * i, "st_lpips_alex": 0.4 / (i + 1)},
                "per_frame": {"psnr_rgb": [30.0 + 3 * i, math.inf]}, "metric_seconds": {}, "metric_errors": {}})
    return results


def test_json_round_trip_into_pandas(tmp_path: Path) -> None:
    results = synthetic_results()
    path = save_results(results, tmp_path / "results.json")
    assert '"inf"' in path.read_text()  # strict JSON: non-finite values as strings
    back = load_results(path)
    assert back["records"][0]["per_frame"]["psnr_rgb"][1] == math.inf
    table = records_table(back)
    assert len(table) == 8 and {"psnr_rgb", "st_lpips_alex", "kbps", "encode_seconds"} <= set(table.columns)
    frames = per_frame_table(back)
    assert len(frames) == 16 and np.isinf(frames.value).sum() == 8
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="schema"):
        load_results(tmp_path / "bad.json")


def test_bd_rate_known_answers() -> None:
    table = bd_table(synthetic_results(0.9), anchor="a").set_index("metric")
    assert table.loc["psnr_rgb", "bd_rate_percent"] == pytest.approx(-10.0, abs=1e-6)
    assert table.loc["st_lpips_alex", "bd_rate_percent"] == pytest.approx(-10.0, abs=1e-6)  # lower is better
    assert table.loc["psnr_rgb", "bd_quality"] > 0 and table.loc["st_lpips_alex", "bd_quality"] < 0
    rates = np.array([100.0, 200.0, 400.0])
    assert bd(rates, np.array([30.0, 33, 36]), 1.25 * rates, np.array([30.0, 33, 36]))[0] == pytest.approx(25.0)


def test_bd_rate_messages() -> None:
    rates = np.array([100.0, 200.0, 400.0])
    with pytest.raises(BDRateError, match="do not overlap"):
        bd(rates, np.array([30.0, 33, 36]), rates, np.array([40.0, 43, 46]), label="b vs a")
    with pytest.raises(BDRateError, match="non-finite"):
        bd(rates, np.array([30.0, 33, math.inf]), rates, np.array([30.0, 33, 36]))
    with pytest.raises(BDRateError, match="anchor"):
        bd_table(synthetic_results(), anchor="zzz")


def test_plots_html_and_png(tmp_path: Path) -> None:
    results = synthetic_results()
    fig = rd_figure(results, "psnr_rgb")
    assert [t.line.dash for t in fig.data] == ["dash", "solid"] and "PSNR on 8-bit RGB" in fig.layout.title.text
    written, error = save_figures({**results, "metrics": {"psnr_rgb": results["metrics"]["psnr_rgb"]}}, tmp_path)
    assert error is None
    assert {p.name for p in written} == {"rd_psnr_rgb.html", "rd_psnr_rgb.png"}
    assert (tmp_path / "rd_psnr_rgb.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_run_and_bdrate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_y4m(tmp_path / "c.y4m", clip(t=6, h=48, w=64), 25)
    out = tmp_path / "out"
    assert main(["run", "--clip", str(tmp_path / "c.y4m"), "--codecs", "x264,svtav1", "--kbps", "100,200,400",
                 "--preset", "x264=ultrafast,svtav1=12", "--metrics", "psnr_rgb,ssim_rgb", "--out", str(out),
                 "--no-png"]) == 0
    results = load_results(out / "results.json")
    assert len(results["records"]) == 6 and results["test_conditions"]["frames"] == 6
    assert {"results.csv", "per_frame.csv", "plots"} <= {p.name for p in out.iterdir()}
    assert main(["bdrate", str(out / "results.json"), "--anchor", "x264", "--metric", "psnr_rgb"]) == 0
    printed = capsys.readouterr().out
    assert "svtav1" in printed and "PSNR on 8-bit RGB" in printed
    assert main(["run", "--clip", str(tmp_path / "missing.mp4"), "--kbps", "100", "--out", str(out)]) == 2
    assert "no such file" in capsys.readouterr().err
