"""The report's pages: ``index.html`` (the command line as run, what ran — `tables.sweep_scope`
—, the leaderboard, the summary table, figures with captions, the skipped cells by reason and
every skipped or failed cell) and ``summary.md`` (the same in Markdown).

The page is laid out for a window of 1,400 px: one column of at most 1,200 px, in which every
figure (at most `gradest.plotting.style.MAX_WIDTH_IN` wide) is shown at its own size."""
from __future__ import annotations

import datetime as _dt
import html
import math
from pathlib import Path

import pandas as pd

CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, sans-serif; margin: 2em auto; max-width: 1300px;
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
h3 { margin: 1.6em 0 0.4em 0; }
h3.source { font-size: 1.05em; text-transform: uppercase; letter-spacing: 0.04em; color: #555;
            border-top: 2px solid #bbb; padding-top: 0.6em; margin-top: 2.2em; }
h3 .meta { font-weight: normal; font-size: 0.8em; margin-left: 0.6em; }
.scroll { overflow-x: auto; max-width: 100%; }
.board { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
.board table { margin: 0; font-size: 0.82em; } .board td, .board th { padding: 0.2em 0.45em; }
.board caption { text-align: left; font-weight: 600; padding-bottom: 0.3em; font-size: 1.1em; }
aside.notes { font-size: 0.88em; color: #333; background: #fafaf2; border-left: 3px solid #d8c56a;
               padding: 0.4em 0.8em; margin: 0.3em 0 0.8em 0; max-width: 70em; }
aside.notes ul { margin: 0.2em 0; padding-left: 1.1em; } aside.notes li { margin: 0.2em 0; }
td.best { background: #cdeccd; font-weight: 700; } td.tied { background: #eaf6ea; }
.swatch { display: inline-block; width: 0.8em; height: 0.8em; border-radius: 2px; margin-right: 0.4em;
          vertical-align: -0.05em; }
.badge { display: inline-block; font-size: 0.78em; padding: 0 0.35em; margin-left: 0.35em; border-radius: 3px;
         border: 1px solid #999; color: #333; white-space: nowrap; }
.badge.u { border-color: #2a7d2a; color: #1e5e1e; } .badge.phi { border-color: #7a5aa8; color: #4e3578; }
.interval { color: #666; font-size: 0.9em; white-space: nowrap; }
.key { font-size: 0.9em; color: #444; }
"""


def fmt(value) -> str:
    """3 significant digits; integers as they are; NaN as an empty cell."""
    if value is None or value is pd.NA or value is pd.NaT:
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
    return (f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            f"</div>{more}")


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
                sources: list, manifests: list, problems: list | None = None, boards: list | None = None,
                palette=None, cells: pd.DataFrame | None = None, table: dict | None = None) -> Path:
    """Write index.html and summary.md into ``out``; ``boards``: (title, source kind "run" or
    "asv", leaderboard frame) per source of gradient statistics; ``cells``: the rows the
    "Published vs measured" section of presets' runs reads (`gradest.reports.published`);
    ``table``: the "Table" and "Paired comparisons" sections (`table_sections_html`)."""
    from gradest.reports.published import preset_records, section_html, section_markdown
    from gradest.reports.tables import reason_summary, sweep_scope

    presets = preset_records(manifests)
    boards = [b for b in boards or [] if b[2] is not None and not b[2].empty]
    out = Path(out)
    now = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    srcs = ", ".join(html.escape(s) for s in sources)
    runs = []
    for m in manifests:
        if m.get("command"):
            backends = ", ".join(m.get("backends") or [])
            runs.append(f"{html.escape(m['source'])}: <code>{html.escape(command_as_run(m))}</code> on "
                        f"{html.escape(str(m.get('machine', '?')))} ({html.escape(str(m.get('platform', '')))}); "
                        f"backends {html.escape(backends)}; {m.get('cells', '?')} cells, written "
                        f"{html.escape(str(m.get('written_at', '?')))}")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>gradest report</title>"
             f"<style>{CSS}</style></head><body>",
             "<h1>gradest report</h1>",
             f"<p class='meta'>Built {now} from {srcs}.</p>"]
    if runs:
        parts.append("<ul class='meta'>" + "".join(f"<li>{r}</li>" for r in runs) + "</ul>")
    scope = sweep_scope(cells, manifests)
    if scope:
        parts.append("<section id='scope' class='key'><strong>What ran.</strong><ul>"
                     + "".join(f"<li>{html.escape(line)}</li>" for line in scope) + "</ul></section>")
    if figures or boards or presets:
        parts.append("<nav>" + ("<a href='#published'>Published vs measured</a>" if presets else "")
                     + ("<a href='#leaderboard'>Leaderboard</a>" if boards else "")
                     + "".join(f"<a href='#{f.name}'>{html.escape(f.title)}</a>" for f in figures)
                     + ("<a href='#summary'>Summary table</a>" if summary is not None and not summary.empty else "")
                     + ("<a href='#table'>Table</a><a href='#paired'>Paired comparisons</a>" if table else "")
                     + "</nav>")
    for message in problems or []:
        parts.append(f"<p class='problem'><strong>Problem:</strong> {html.escape(message)}</p>")
    if presets:
        parts.append(section_html(presets, cells, html_table))
    if boards:
        parts.append(leaderboard_html(boards, palette))
    if summary is not None and not summary.empty:
        parts.append("<h2 id='summary'>Summary</h2>")
        parts.append("<p>Per task and estimator, ranked as the leaderboard ranks them (the column ranked by says "
                     "on what: MSE, or the work-normalized variance where the task has no exact gradient): gradient "
                     "statistics against the exact gradient at θ₀ at the task's reference number of samples S (mean "
                     "over seeds and backends), then per backend the work-normalized variance (variance × seconds per estimate) "
                     "and the seconds per estimate, and each training run's final headline metric, as its metric column names it (a VAE's "
                     "test −ELBO, a toy's exact loss; mean over seeds and backends).</p>")
        parts.append(html_table(summary))
    parts.append(table_sections_html(table))
    for fig in figures:
        parts.append(f"<h2 id='{fig.name}'>{html.escape(fig.title)}</h2>")
        parts.append(f"<figure><a href='{fig.svg}'><img src='{fig.png}' alt='{html.escape(fig.title)}'></a>"
                     f"<figcaption>{html.escape(fig.caption)} <a href='{fig.svg}'>SVG</a></figcaption></figure>")
    if not counts.empty:
        parts.append("<h2>Cells</h2>")
        parts.append(html_table(counts))
        reasons = reason_summary(skipped)
        if not reasons.empty:
            parts.append(f"<h3>Skipped cells by reason</h3><p class='key'>{len(skipped)} planned cells did not "
                         f"apply; '…' stands for the estimator and task names, the last column is one full "
                         f"message with the fix it names.</p>{html_table(reasons)}")
        parts.append(f"<details><summary>Every skipped cell ({len(skipped)}): estimator × task combinations that "
                     f"do not apply</summary>{html_table(skipped)}</details>")
        parts.append(f"<details{' open' if len(failed) else ''}><summary>Failed cells ({len(failed)})</summary>"
                     f"{html_table(failed)}</details>")
    if asv_missing is not None and not asv_missing.empty:
        total = int(asv_missing["points"].sum()) if "points" in asv_missing.columns else len(asv_missing)
        parts.append(f"<details><summary>asv measurements failed or skipped ({total}), by likely reason</summary>"
                     f"<p class='key'>asv stores no reason with a skipped or failed value; the reasons are inferred "
                     f"from what the measurements have in common (a device, backend or estimator never measured, "
                     f"an estimator × task never measured).</p>{html_table(asv_missing)}</details>")
    parts.append("</body></html>")
    index = out / "index.html"
    _write(index, "\n".join(parts))

    md = ["# gradest report", "", f"Built {now} from {', '.join(sources)}.", "",
          *[f"`{command_as_run(m)}`\n" for m in manifests if m.get("command")],
          *([f"What ran:\n", *[f"* {line}" for line in scope], ""] if scope else []),
          *[f"**Problem:** {message}\n" for message in problems or []]]
    md += section_markdown(presets, cells, markdown_table)
    if boards:
        md += [leaderboard_markdown(boards)]
    md += ["## Summary", "", markdown_table(summary), ""]
    md += table_sections_markdown(table)
    for fig in figures:
        md += [f"## {fig.title}", "", f"![{fig.title}]({fig.png})", "", fig.caption, ""]
    if not counts.empty:
        md += ["## Cells", "", markdown_table(counts), ""]
        if len(skipped):
            md += ["### Skipped cells by reason", "", markdown_table(reason_summary(skipped)), ""]
        if len(failed):
            md += ["### Failed cells", "", markdown_table(failed), ""]
    _write(out / "summary.md", "\n".join(md))
    return index


def command_as_run(manifest: dict) -> str:
    """The command line a run was started with (``command_line`` of its manifest; older
    manifests: the command and ``--quick``)."""
    if manifest.get("command_line"):
        return str(manifest["command_line"])
    return str(manifest.get("command", "")) + (" --quick" if manifest.get("quick") else "")


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


# ---- the table and its paired comparisons -------------------------------------------------

_TABLE_TEXT = ("Per task, estimator and number of samples S (and backend), each metric the cell kinds declare: "
               "its mean over seeds ± the half-width of its 95% t-interval, as `gradest table RESULTS` prints it "
               "(--format latex for a paper, csv for the long form).")


def _paired_text() -> str:
    from gradest.reports.verdicts import TESTS

    return ("The best of each column of the Table against its runner-up and every entry tied with it (†), judged on "
            "the differences best − other of the cells paired by seed (same seed: same initialization and noise): "
            "the mean difference with its 95% t-interval, and the tests: " + TESTS + ". Verdict on \"the best "
            "beats the other\": holds, separated (the interval excludes 0 on the claimed side); holds, not "
            "separated (the mean has the claimed sign, the interval contains 0); reversed (, separated); equal "
            "(every pair gave the same number). Two intervals that overlap may still be separated here: the pairs "
            "share their noise.")


def table_sections_html(table: dict | None) -> str:
    """The "Table" (``table["html"]``) and "Paired comparisons" (``table["paired"]``) sections."""
    if not table:
        return ""
    paired = table.get("paired")
    return "\n".join(["<h2 id='table'>Table</h2>", f"<p>{html.escape(_TABLE_TEXT)}</p>",
                      f"<div class='scroll'>{table['html']}</div>",
                      "<h2 id='paired'>Paired comparisons</h2>", f"<p class='key'>{html.escape(_paired_text())}</p>",
                      html_table(paired) if paired is not None and not paired.empty
                      else "<p><em>No column has two entries to compare.</em></p>"])


def table_sections_markdown(table: dict | None) -> list[str]:
    if not table:
        return []
    paired = table.get("paired")
    return ["## Table", "", _TABLE_TEXT, "", table["markdown"], "", "## Paired comparisons", "", _paired_text(), "",
            markdown_table(paired) if paired is not None and not paired.empty else "_none_", ""]


# ---- the leaderboard ------------------------------------------------------------------------


def _num(value) -> str:
    """A statistic: 0 as 0, else 3 significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return "0" if value == 0 else f"{float(value):.3g}"


def _interval(low, high) -> str:
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return ""
    return f"<span class='interval'>[{_num(low)}, {_num(high)}]</span>"


def _estimator_cell(row, palette) -> str:
    swatch = f"<span class='swatch' style='background:{palette.hex(row.estimator)}'></span>" if palette else ""
    badges = ""
    if _true(row.unbiased):
        badges += ("<span class='badge u' title='claims E[g] = ∇L (checked by gradest&#39;s conformance z-test)'>"
                   "✓</span>")
    if _true(row.learned):
        steps = row.phi_warmup_steps
        text = (f"φ {int(steps)}" if steps is not None and not pd.isna(steps) and steps > 0
                else ("φ at init" if steps is not None and not pd.isna(steps) else "φ ?"))
        badges += (f"<span class='badge phi' title='learned estimator: measured with φ after this warm-up'>{text}"
                   f"</span>")
    return f"<td class='text'>{swatch}{html.escape(str(row.estimator))}{badges}</td>"


def _ranked_cell(row, q: str) -> str:
    cls = "best" if getattr(row, f"{q}_best") else ("tied" if getattr(row, f"{q}_tied") else "")
    title = {"best": "best", "tied": "95% interval overlaps the best's", "": ""}[cls]
    value = getattr(row, q)
    return (f"<td class='{cls}' title='{title}'>{_num(value)} "
            f"{_interval(getattr(row, f'{q}_low'), getattr(row, f'{q}_high'))}</td>")


def _true(value) -> bool:
    """True for True (Python's or numpy's), False for False, None and NaN."""
    return value is not None and not (isinstance(value, float) and math.isnan(value)) and bool(value)


def _records(frame: pd.DataFrame) -> list:
    """The rows of ``frame`` as objects with its columns as attributes (any column name)."""
    from types import SimpleNamespace

    return [SimpleNamespace(**{str(k): v for k, v in rec.items()}) for rec in frame.to_dict("records")]


def _rank(value) -> str:
    return "" if value is None or pd.isna(value) else str(int(value))


def board_tables(board: pd.DataFrame, task, palette=None) -> str:
    """The two rankings of ``task``: by MSE and by work-normalized variance."""
    from gradest.reports.leaderboard import by

    out = []
    mse = by(board, task, "mse_rank")
    if len(mse) == 1:  # one estimator: its numbers, no ranking
        r = _records(mse)[0]
        return ("<table><caption>one estimator measured: nothing to rank</caption><thead><tr>"
                "<th class='text'>estimator</th><th>MSE [95%]</th><th>of it bias²</th><th>variance × s [95%]</th>"
                f"<th>s / estimate</th></tr></thead><tbody><tr>{_estimator_cell(r, palette)}"
                f"<td>{_num(r.mse)} {_interval(r.mse_low, r.mse_high)}</td><td>{_num(r.bias_sq)}</td>"
                f"<td>{_num(r.wnv)} {_interval(r.wnv_low, r.wnv_high)}</td><td>{_num(r.seconds_per_estimate)}</td>"
                "</tr></tbody></table>")
    if mse["mse"].notna().any():
        rows = "".join(f"<tr><td>{_rank(r.mse_rank)}</td>{_estimator_cell(r, palette)}{_ranked_cell(r, 'mse')}"
                       f"<td>{_num(r.bias_sq)}</td></tr>" for r in _records(mse))
        out.append("<table><caption>by MSE against the exact gradient</caption><thead><tr><th>#</th>"
                   "<th class='text'>estimator</th><th>MSE [95%]</th>"
                   "<th title='MSE = bias² + variance'>of it bias²</th></tr></thead>"
                   f"<tbody>{rows}</tbody></table>")
    wnv = by(board, task, "wnv_rank")
    if wnv["wnv"].notna().any():
        backend = wnv["wnv_backend"].dropna().iloc[0]
        rows = "".join(f"<tr><td>{_rank(r.wnv_rank)}</td>{_estimator_cell(r, palette)}{_ranked_cell(r, 'wnv')}"
                       f"<td>{_num(r.seconds_per_estimate)}</td></tr>" for r in _records(wnv))
        out.append(f"<table><caption>by work-normalized variance on {html.escape(str(backend))}</caption><thead><tr>"
                   f"<th>#</th><th class='text'>estimator</th><th>variance × s [95%]</th><th>s / estimate</th>"
                   f"</tr></thead><tbody>{rows}</tbody></table>")
    return "".join(out)


def leaderboard_html(boards: list, palette=None) -> str:
    from gradest.reports.leaderboard import task_notes

    parts = ["<h2 id='leaderboard'>Leaderboard</h2>",
             "<p>Per task, the estimators ranked by MSE = E‖g − ∇L‖² against the exact gradient at θ₀ (mean over "
             "seeds and backends) and by work-normalized variance, variance × seconds per estimate — the variance "
             "at equal compute — on one backend (timings of two frameworks are not equal compute). Both at the "
             "task's reference number of samples S; lower is better; the exact gradient is the reference and is "
             "not ranked.</p>",
             "<p class='key'>Key: <span class='badge u'>✓</span> unbiased: the estimator claims E[g] = ∇L (gradest's "
             "conformance tests check it by a z-test); <span class='badge phi'>φ n</span> a learned "
             "estimator, measured after n steps of φ training at θ₀ (φ ?: not recorded); "
             "<span style='background:#cdeccd;font-weight:700;padding:0 0.3em'>best</span> rank 1; <span style='background:#eaf6ea;padding:0 "
             "0.3em'>tied</span> its 95% interval overlaps the best's (not distinguishable at these replicates); "
             "[low, high]: 95% interval; 0: zero up to rounding. Colours are those of the figures.</p>"]
    for title, source, board in boards:
        if len(boards) > 1 or source == "asv":
            parts.append(f"<h3 class='source'>{html.escape(title)}</h3>")
        for task in sorted(board["task"].unique()):
            part = board[board["task"] == task]
            meta = []
            S = part["S"].dropna()
            meta.append(f"S = {int(S.iloc[0])}" if len(S) else "S: the asv grid's")
            if "seeds" in part.columns and part["seeds"].notna().any():
                meta.append(f"{int(part['seeds'].max())} seed{'s' if part['seeds'].max() > 1 else ''}")
            if "num_replicates" in part.columns and part["num_replicates"].notna().any():
                meta.append(f"R = {int(part['num_replicates'].max())} replicates")
            backends = sorted({b for text in part["backends"] for b in str(text).split(", ") if b})
            from gradest.plotting.frames import ordered_backends

            meta.append("backends " + ", ".join(ordered_backends(backends)))
            notes = task_notes(board, task, source)
            aside = ("<aside class='notes'><strong>Read with care</strong><ul>"
                     + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul></aside>") if notes else ""
            anchor = f"lb-{source}-{task}"
            parts.append(f"<h3 id='{html.escape(anchor)}'>{html.escape(str(task))}<span class='meta'>"
                         f"{html.escape(' · '.join(meta))}</span></h3>")
            parts.append(f"{aside}<div class='board'>{board_tables(board, task, palette)}</div>")
    return "\n".join(parts)


def leaderboard_markdown(boards: list) -> str:
    from gradest.reports.leaderboard import task_notes

    md = ["## Leaderboard", "",
          "Per task: rank by MSE against the exact gradient and by work-normalized variance (variance × seconds "
          "per estimate, on one backend); **bold**: the best; [low, high]: 95% interval; ✓: claims to be "
          "unbiased; φ n: a learned estimator measured after n φ steps.", ""]
    for title, source, board in boards:
        if len(boards) > 1 or source == "asv":
            md += [f"### {title}", ""]
        for task in sorted(board["task"].unique()):
            part = board[board["task"] == task]
            md += [f"#### {task}", ""]
            lines = ["| MSE # | estimator | MSE [95%] | work-norm. # | variance × s [95%] |",
                     "| --: | :-- | --: | --: | --: |"]
            one = len(part) == 1  # its numbers, no ranking of one
            if one:
                md += ["One estimator measured: nothing to rank.", ""]
            for r in _records(part):
                label = str(r.estimator) + (" ✓" if _true(r.unbiased) else "")
                if _true(r.learned) and r.phi_warmup_steps is not None and not pd.isna(r.phi_warmup_steps):
                    label += f" (φ {int(r.phi_warmup_steps)})"
                mse = _num(r.mse) + (f" [{_num(r.mse_low)}, {_num(r.mse_high)}]" if not pd.isna(r.mse_low) else "")
                wnv = _num(r.wnv) + (f" [{_num(r.wnv_low)}, {_num(r.wnv_high)}]" if not pd.isna(r.wnv_low) else "")
                mse = f"**{mse}**" if r.mse_best and mse and not one else mse
                wnv = f"**{wnv}**" if r.wnv_best and wnv and not one else wnv
                lines.append(f"| {'' if one else _rank(r.mse_rank)} | {label.replace('|', '/')} | {mse} "
                             f"| {'' if one else _rank(r.wnv_rank)} | {wnv} |")
            md += lines + [""] + [f"> {n}\n" for n in task_notes(board, task, source)]
    return "\n".join(md)
