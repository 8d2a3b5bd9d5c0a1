"""Stand-in for the parts of `comparisons` that have not landed yet (metric registry, plots, BD-rate, result
files); `app.engine` is its only user. Delete it once `comparisons` provides them.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

def rd_figure(records: list[dict], metric: str, higher_is_better: bool) -> go.Figure:
    fig = go.Figure()
    for codec in dict.fromkeys(r["codec"] for r in records):
        points = sorted((r for r in records if r["codec"] == codec), key=lambda r: r["kbps"])
        fig.add_trace(go.Scatter(x=[r["kbps"] for r in points], y=[r["metrics"][metric] for r in points],
                                 mode="lines+markers", name=f"{points[0]['label']} ({points[0]['preset']})",
                                 line={"dash": "solid" if codec == "s2vc" else "dash"}))
    arrow = "↑ better" if higher_is_better else "↓ better"
    fig.update_layout(title=f"Rate vs {metric}", xaxis_title="bitrate (kbps, measured)",
                      yaxis_title=f"{metric} ({arrow})",
                      height=320, margin={"l": 50, "r": 10, "t": 40, "b": 40}, legend={"orientation": "h"})
    return fig


def per_frame_figure(records: list[dict], metric: str) -> go.Figure:
    fig = go.Figure()
    for r in records:
        if r["per_frame"].get(metric) is None:
            continue
        fig.add_trace(go.Scatter(y=r["per_frame"][metric], mode="lines+markers",
                                 name=f"{r['label']} {r['kbps']:.1f} kbps"))
    fig.update_layout(title=f"{metric} per frame", xaxis_title="frame", yaxis_title=metric, height=320,
                      margin={"l": 50, "r": 10, "t": 40, "b": 40}, legend={"orientation": "h"})
    return fig


def bd_rates(records: list[dict], anchor: str, metric: str, higher_is_better: bool) -> pd.DataFrame:
    import bjontegaard as bd

    rows = []
    base = sorted((r for r in records if r["codec"] == anchor), key=lambda r: r["kbps"])
    for codec in dict.fromkeys(r["codec"] for r in records):
        if codec == anchor:
            continue
        test = sorted((r for r in records if r["codec"] == codec), key=lambda r: r["kbps"])
        row = {"codec": codec, "anchor": anchor, "metric": metric}
        if len(base) < 4 or len(test) < 4:
            row["BD-rate (%)"] = None
            row["note"] = "needs at least 4 rate points per codec (use the sweep)"
        else:
            try:
                sign = 1.0 if higher_is_better else -1.0  # bjontegaard expects higher-is-better quality
                row["BD-rate (%)"] = float(bd.bd_rate([r["kbps"] for r in base],
                                                      [sign * r["metrics"][metric] for r in base],
                                                      [r["kbps"] for r in test],
                                                      [sign * r["metrics"][metric] for r in test], method="pchip"))
                row["note"] = ""
            except Exception as exc:
                row["BD-rate (%)"], row["note"] = None, f"curves do not overlap ({exc})"
        rows.append(row)
    return pd.DataFrame(rows)


def write_results(records: list[dict], conditions: dict, out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    keep = [{k: v for k, v in r.items() if k not in ("decoded_frames",)} for r in records]
    json_path = out_dir / "results.json"
    json_path.write_text(json.dumps({"conditions": conditions, "results": keep}, indent=1, default=str))
    table = pd.DataFrame([{**{k: v for k, v in r.items() if not isinstance(v, (dict, list))},
                           **r["metrics"]} for r in keep])
    csv_path = out_dir / "results.csv"
    table.to_csv(csv_path, index=False)
    return [json_path, csv_path]


def figure_png(fig: go.Figure, path: Path) -> Path:
    import os

    import plotly
    from kaleido.scopes.plotly import PlotlyScope

    scope = PlotlyScope(plotlyjs=os.path.join(os.path.dirname(plotly.__file__), "package_data", "plotly.min.js"))
    Path(path).write_bytes(scope.transform(json.loads(fig.to_json()), format="png", width=800, height=450, scale=2))
    return Path(path)

