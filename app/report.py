"""A self-contained HTML report for talks: conditions, tables, interactive plots and key-frame comparisons.

One file, no network: plotly.js and the images are embedded.
"""
from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
.frames{display:grid;gap:8px}.frames figure{margin:0}
.frames img{width:100%;image-rendering:pixelated}
figcaption{font-size:12px;text-align:center}.note{border-left:4px solid #e0a000;padding-left:8px}.plots{display:grid;grid-template-columns:1fr 1fr;gap:8px}
"""


def write_report(state: dict, figures: dict[str, Any], table: pd.DataFrame, bd: pd.DataFrame, path: Path) -> Path:
    """Write the report for one run to `path`."""
    from app.handlers import demo_model_note, load_frames, player_records, public_command

    clip = state["clip"]
    records = player_records(state)
    results = state["results"]
    original = load_frames(clip["frames"])
    note = demo_model_note(state)
    parts = [f"<h1>S2VC Studio — {html.escape(clip['name'])}</h1>",
             f"<p>{inline_markdown(clip['description'])}</p>",
             f"<p class='note'>{inline_markdown(note)}</p>" if note else "",
             "<h2>Results</h2>", table.to_html(index=False, na_rep="–"),
             "<h2>BD-rates against x265</h2>", bd.to_html(index=False, na_rep="–"),
             "<h2>Rate–distortion–perception</h2><div class='plots'>"]
    for index, fig in enumerate(figures.values()):
        parts.append(fig.to_html(full_html=False, include_plotlyjs=index == 0))
    parts.append("</div><h2>Key frames</h2>")
    count = len(original)
    for frame in sorted({0, count // 2, count - 1}):
        tiles = [_figure(original[frame], f"original, frame {frame}")]
        tiles += [_figure(load_frames(r["decoded"])[frame], f"{r['key']}, frame {frame}") for r in records]
        columns = 2 if len(tiles) == 4 else min(len(tiles), 3)  # 2x2 for four tiles, else rows of three
        parts.append(f"<div class='frames' style='grid-template-columns:repeat({columns},1fr)'>{''.join(tiles)}"
                     "</div>")
    parts.append("<h2>Test conditions</h2><ul>")
    conditions = results["test_conditions"] | state["conditions"]
    parts += [f"<li><b>{html.escape(str(k))}</b>: {html.escape(str(v))}</li>" for k, v in conditions.items()]
    parts += [f"<li><b>{html.escape(m)}</b>: {html.escape(info['variant'])}</li>"
              for m, info in results["metrics"].items()]
    for r in records:
        settings = ", ".join(f"{k}: {v}" for k, v in r["settings"].items())
        parts.append(f"<li><b>{html.escape(r['label'])}</b> ({html.escape(r['version'])}): {html.escape(settings)}"
                     f"<br><code>{html.escape(public_command(r, state))}</code></li>")
    parts.append("</ul>")
    for message in state["messages"]:
        parts.append(f"<p><i>{html.escape(message)}</i></p>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>S2VC Studio report</title>"
            f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>")
    Path(path).write_text(page, encoding="utf-8")
    return Path(path)


def _figure(image: np.ndarray, caption: str) -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image)).save(buffer, format="PNG")
    data = base64.b64encode(buffer.getvalue()).decode()
    return (f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(caption)}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def inline_markdown(text: str) -> str:
    """The page's short Markdown (bold, code, list items) as HTML: no raw `**` or backticks in the report."""
    escaped = html.escape(text.replace("\n- ", "; "), quote=False)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", escaped)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
