"""The report's pages: ``index.html`` (figures with captions, the summary table, what was
skipped or failed) and ``summary.md`` (the same in Markdown)."""
from __future__ import annotations

import datetime as _dt
import html
import math
from pathlib import Path

import pandas as pd

CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, sans-serif; margin: 2em auto; max-width: 1200px;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
.meta { color: #666; font-size: 0.9em; }
figure { margin: 1.2em 0 2.5em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: 0.92em; max-width: 70em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.8em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f4f4f4; } td.text, th.text { text-align: left; }
details { margin: 1em 0; } summary { cursor: pointer; font-weight: 600; }
nav a { margin-right: 1em; } .problem { color: #a00; }
"""


def fmt(value) -> str:
    """3 significant digits; integers as they are; NaN as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value == int(value) and abs(value) < 1e6:
            return str(int(value))
        return f"{value:.3g}"
    return str(value)


def _is_text(series: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(series)


def html_table(frame: pd.DataFrame, max_rows: int = 500) -> str:
    if frame is None or frame.empty:
        return "<p><em>none</em></p>"
    text_cols = {c for c in frame.columns if _is_text(frame[c])}
    head = "".join(f'<th class="{"text" if c in text_cols else ""}">{html.escape(str(c))}</th>' for c in frame.columns)
    body = []
    for _, row in frame.head(max_rows).iterrows():
        cells = "".join(f'<td class="{"text" if c in text_cols else ""}">{html.escape(fmt(row[c]))}</td>'
                        for c in frame.columns)
        body.append(f"<tr>{cells}</tr>")
    more = f"<p><em>… {len(frame) - max_rows} more rows</em></p>" if len(frame) > max_rows else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}"


def markdown_table(frame: pd.DataFrame, max_rows: int = 500) -> str:
    if frame is None or frame.empty:
        return "_none_\n"
    cols = [str(c) for c in frame.columns]
    text_cols = {str(c) for c in frame.columns if _is_text(frame[c])}
    lines = ["| " + " | ".join(cols) + " |",
             "| " + " | ".join(":--" if c in text_cols else "--:" for c in cols) + " |"]
    for _, row in frame.head(max_rows).iterrows():
        lines.append("| " + " | ".join(fmt(row[c]).replace("|", "\\|") for c in frame.columns) + " |")
    if len(frame) > max_rows:
        lines.append(f"\n… {len(frame) - max_rows} more rows")
    return "\n".join(lines) + "\n"


def write_pages(out: Path, *, figures: list, summary: pd.DataFrame, counts: pd.DataFrame,
                skipped: pd.DataFrame, failed: pd.DataFrame, asv_missing: pd.DataFrame,
                sources: list, manifests: list, problems: list | None = None) -> Path:
    out = Path(out)
    now = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    srcs = ", ".join(html.escape(s) for s in sources)
    runs = []
    for m in manifests:
        if m.get("command"):
            quick = " --quick" if m.get("quick") else ""
            backends = ", ".join(m.get("backends") or [])
            runs.append(f"{html.escape(m['source'])}: <code>{html.escape(m['command'])}{quick}</code> on "
                        f"{html.escape(str(m.get('machine', '?')))} ({html.escape(str(m.get('platform', '')))}); "
                        f"backends {html.escape(backends)}; {m.get('cells', '?')} cells, written "
                        f"{html.escape(str(m.get('written_at', '?')))}")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>gradest report</title>"
             f"<style>{CSS}</style></head><body>",
             "<h1>gradest report</h1>",
             f"<p class='meta'>Built {now} from {srcs}.</p>"]
    if runs:
        parts.append("<ul class='meta'>" + "".join(f"<li>{r}</li>" for r in runs) + "</ul>")
    if figures:
        parts.append("<nav>" + "".join(f"<a href='#{f.name}'>{html.escape(f.title)}</a>" for f in figures)
                     + "<a href='#summary'>Summary table</a></nav>")
    for message in problems or []:
        parts.append(f"<p class='problem'><strong>Problem:</strong> {html.escape(message)}</p>")
    parts.append("<h2 id='summary'>Summary</h2>")
    parts.append("<p>Per task and estimator: gradient statistics against the exact gradient at θ₀ at the "
                 "reference number of samples S (mean over seeds and backends), seconds per estimate per "
                 "backend, and the final training loss (mean over seeds and backends).</p>")
    parts.append(html_table(summary))
    for fig in figures:
        parts.append(f"<h2 id='{fig.name}'>{html.escape(fig.title)}</h2>")
        parts.append(f"<figure><a href='{fig.svg}'><img src='{fig.png}' alt='{html.escape(fig.title)}'></a>"
                     f"<figcaption>{html.escape(fig.caption)} <a href='{fig.svg}'>SVG</a></figcaption></figure>")
    if not counts.empty:
        parts.append("<h2>Cells</h2>")
        parts.append(html_table(counts))
        parts.append(f"<details><summary>Skipped cells ({len(skipped)}): estimator × task combinations that "
                     f"do not apply</summary>{html_table(skipped)}</details>")
        parts.append(f"<details{' open' if len(failed) else ''}><summary>Failed cells ({len(failed)})</summary>"
                     f"{html_table(failed)}</details>")
    if asv_missing is not None and not asv_missing.empty:
        parts.append(f"<details><summary>asv measurements failed or skipped ({len(asv_missing)})</summary>"
                     f"{html_table(asv_missing)}</details>")
    parts.append("</body></html>")
    index = out / "index.html"
    _write(index, "\n".join(parts))

    md = ["# gradest report", "", f"Built {now} from {', '.join(sources)}.", "",
          *[f"**Problem:** {message}\n" for message in problems or []], "## Summary", "",
          markdown_table(summary), ""]
    for fig in figures:
        md += [f"## {fig.title}", "", f"![{fig.title}]({fig.png})", "", fig.caption, ""]
    if not counts.empty:
        md += ["## Cells", "", markdown_table(counts), ""]
        if len(failed):
            md += ["### Failed cells", "", markdown_table(failed), ""]
    _write(out / "summary.md", "\n".join(md))
    return index


def _write(path: Path, text: str) -> None:
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)
