"""Plotly rate-distortion-perception figures: one per metric (traditional codecs dashed) and per-frame plots."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from comparisons.bdrate import curve


def _codecs(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in results["records"]:
        out.setdefault(r["codec"], {"label": r["label"], "traditional": r.get("traditional", True),
                                    "preset": r["settings"].get("preset")})
    return out


def rd_figure(results: dict[str, Any], metric: str) -> go.Figure:
    """Real kbps against the clip value of `metric`, one line per codec; the axis names the exact variant."""
    info = results["metrics"][metric]
    fig = go.Figure()
    for codec, meta in _codecs(results).items():
        kbps, values = curve(results, codec, metric)
        name = f"{meta['label']} ({meta['preset']})" if meta["preset"] else meta["label"]
        fig.add_trace(go.Scatter(x=kbps, y=values, mode="lines+markers", name=name,
                                 line={"dash": "dash" if meta["traditional"] else "solid"}))
    arrow = "higher is better" if info["higher_is_better"] else "lower is better"
    unit = f" [{info['unit']}]" if info.get("unit") else ""
    fig.update_layout(title=f"{metric}: {info['variant']}", title_font_size=12, template="plotly_white",
                      xaxis_title="bitrate [kbps] (real bitstream size)", yaxis_title=f"{metric}{unit} ({arrow})",
                      width=760, height=480, legend={"orientation": "h", "y": -0.2})
    return fig


def per_frame_figure(results: dict[str, Any], metric: str) -> go.Figure:
    """Per-frame values of `metric` for every encode."""
    info = results["metrics"][metric]
    fig = go.Figure()
    for r in results["records"]:
        values = r["per_frame"].get(metric)
        if values:
            fig.add_trace(go.Scatter(y=values, mode="lines", name=f"{r['label']} {r['kbps']:.1f} kbps",
                                     line={"dash": "dash" if r.get("traditional", True) else "solid"}))
    fig.update_layout(title=f"{metric} per frame: {info['variant']}", title_font_size=12, template="plotly_white",
                      xaxis_title="frame", yaxis_title=metric, width=760, height=420)
    return fig


def save_figures(results: dict[str, Any], out_dir: str | Path, png: bool = True) -> tuple[list[Path], str | None]:
    """``rd_<metric>.html`` (and ``.png`` through kaleido) for every metric with values.

    Returns the files written and, when PNG export failed, why (the HTML files are written regardless).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    png_error = None
    for metric in results["metrics"]:
        if not any(metric in r["metrics"] for r in results["records"]):
            continue
        fig = rd_figure(results, metric)
        fig.write_html(out / f"rd_{metric}.html", include_plotlyjs="cdn")
        written.append(out / f"rd_{metric}.html")
        if png and png_error is None:
            try:
                fig.write_image(out / f"rd_{metric}.png", scale=2)
                written.append(out / f"rd_{metric}.png")
            except Exception as exc:  # kaleido missing or unable to render: keep the HTML figures
                png_error = f"PNG export failed ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
    return written, png_error
