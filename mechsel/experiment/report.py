"""The one-page report of a run (``<run>/report.html``): the verdict, the summary table, every
figure and links to the result tables.

The page is self-contained: plotly.js is inlined once in its head and every figure's data in its
body, so it opens offline, from any folder, by double-click; only the links to the tables and to
the figure files (relative, resolved from the page's folder) point outside it. It is built from
the saved result tables alone (no model), by :func:`write_report`, which ``mechsel run`` /
``mechsel demo`` call after writing the figures and ``mechsel figures`` calls after rewriting them.
Every text that reaches the page is escaped with :func:`html.escape`; no template engine.
"""

from __future__ import annotations

import html
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd

from mechsel.experiment.figures import build_figures
from mechsel.experiment.results import load_results
from mechsel.paths import atomic_write_text

__all__ = ["REPORT", "write_report", "build_report"]

logger = logging.getLogger(__name__)

REPORT = "report.html"
"""File name of the report in a run directory."""
FIGURE_FORMATS = ("html", "png", "svg")
"""Figure files linked under each figure when they exist."""
FIGURE_HEIGHT = "520px"
"""Height of a figure whose layout sets none (plotly's default is tied to the window)."""
_OUTCOMES = {"holds": "HOLDS", "does_not_hold": "DOES NOT HOLD", "inconclusive": "INCONCLUSIVE"}
_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1280px;
       padding: 1rem 2rem 4rem; color: #1f2933; line-height: 1.45; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 1px solid #d9e2ec; padding-bottom: 0.2rem; margin-top: 2.5rem; }
.meta { color: #52606d; font-size: 0.9rem; margin: 0.1rem 0; }
nav { font-size: 0.95rem; } nav ul { columns: 2; }
.outcome { display: inline-block; font-weight: 700; padding: 0.25rem 0.8rem; border-radius: 4px; color: #fff; }
.outcome-holds { background: #2f855a; } .outcome-does_not_hold { background: #c53030; }
.outcome-inconclusive { background: #b7791f; } .outcome-unknown { background: #52606d; }
.verdict-text { white-space: pre-wrap; }
pre { background: #f5f7fa; padding: 0.8rem; overflow-x: auto; font-size: 0.8rem; line-height: 1.3; }
table.frame { border-collapse: collapse; font-size: 0.8rem; margin: 0.5rem 0; }
table.frame th, table.frame td { border: 1px solid #d9e2ec; padding: 0.2rem 0.45rem; text-align: right; }
table.frame th { background: #f0f4f8; }
figure { margin: 1.5rem 0 2.5rem; } figcaption { font-size: 0.85rem; color: #52606d; }
.plot { overflow-x: auto; }
"""


def write_report(
    run_dir: str | Path,
    path: str | Path | None = None,
    *,
    tables: Mapping[str, Any] | None = None,
    figures_dir: str | Path | None = None,
) -> Path:
    """Write the report of the finished run in ``run_dir`` and return its path.

    Args:
        run_dir: the run directory (its ``results/`` must hold the result tables).
        path: where the page goes; default ``<run_dir>/report.html``. Links are relative to
            its folder.
        tables: the result tables and ``verdict`` when already in memory (else read from
            ``results/``).
        figures_dir: the folder of the run's figure files, linked under each figure; default
            ``<run_dir>/figures``.
    """
    run_dir = Path(run_dir)
    target = Path(path) if path is not None else run_dir / REPORT
    tables = tables if tables is not None else load_results(run_dir)
    page = build_report(run_dir, tables, base=target.parent, figures_dir=Path(figures_dir) if figures_dir else run_dir / "figures")
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, page)
    logger.info("Wrote the run report %s", target)
    return target


def build_report(run_dir: Path, tables: Mapping[str, Any], *, base: Path, figures_dir: Path) -> str:
    """The report page of ``run_dir`` as one HTML string (see the module docstring).

    Args:
        run_dir: the run directory (its manifest, when readable, gives the model and versions).
        tables: the result tables and ``verdict``.
        base: the folder the page will be written to (links are relative to it).
        figures_dir: the folder of the figure files.
    """
    from plotly.offline import get_plotlyjs

    verdict: Mapping[str, Any] = tables["verdict"]
    figures = build_figures(tables)
    sections = [
        ("verdict", "Verdict", _verdict_section(verdict)),
        ("summary", "Summary", _summary_section(verdict, tables)),
        ("figures", "Figures", _figures_section(figures, base, figures_dir)),
        ("tables", "Result tables", _tables_section(run_dir / "results", base, tables)),
    ]
    figure_nav = "".join(f'<li><a href="#{_anchor(stem)}">{html.escape(stem)}</a></li>' for stem in figures)
    nav = "".join(
        f'<li><a href="#{key}">{html.escape(title)}</a>' + (f"<ul>{figure_nav}</ul>" if key == "figures" and figure_nav else "") + "</li>"
        for key, title, _ in sections
    )
    body = "\n".join(f'<section id="{key}">\n<h2>{html.escape(title)}</h2>\n{content}\n</section>' for key, title, content in sections)
    title = f"mechsel run report — {run_dir.resolve().name}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n"
        f'<script type="text/javascript">{get_plotlyjs()}</script>\n'
        "</head>\n<body>\n"
        f"<header>\n<h1>{html.escape(title)}</h1>\n{_meta(run_dir)}\n</header>\n"
        f"<nav><ol>{nav}</ol></nav>\n{body}\n</body>\n</html>\n"
    )


def _anchor(stem: str) -> str:
    return "figure-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in stem)


def _href(target: Path, base: Path) -> str:
    """A relative, URL-quoted link from a page in ``base`` to ``target``."""
    rel = os.path.relpath(target.resolve(), base.resolve())
    return html.escape(quote(Path(rel).as_posix()))


def _meta(run_dir: Path) -> str:
    """Model, versions, command and start of the run, from its manifest when it has a readable one."""
    from mechsel.experiment.rundir import MANIFEST

    lines = [f"run folder: {run_dir.resolve()}"]
    try:
        manifest = json.loads((run_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = None
    if isinstance(manifest, dict):
        model = (manifest.get("model") or {}).get("loaded") or {}
        if model.get("name"):
            lines.append(f"model: {model['name']}" + (f" ({model['dtype']}, {model.get('device', '?')})" if model.get("dtype") else ""))
        versions = manifest.get("versions") or {}
        if versions:
            lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
        if manifest.get("command"):
            lines.append(f"command: {manifest['command']}")
        if manifest.get("created"):
            lines.append(f"started: {manifest['created']}")
    return "\n".join(f'<p class="meta">{html.escape(line)}</p>' for line in lines)


def _verdict_section(verdict: Mapping[str, Any]) -> str:
    outcome = str(verdict.get("outcome", "unknown"))
    label = _OUTCOMES.get(outcome, outcome.upper())
    css = outcome if outcome in _OUTCOMES else "unknown"
    decided = verdict.get("decided_by")
    decided_by = f' <span class="meta">decided by {html.escape(str(decided))}</span>' if decided else ""
    parts = verdict.get("parts") or {}
    part_lines = "".join(
        f"<li>{html.escape(str(name))}: {html.escape(_OUTCOMES.get(str(p.get('outcome')), str(p.get('outcome'))))}</li>"
        for name, p in parts.items()
        if isinstance(p, Mapping)
    )
    return (
        f'<p><span class="outcome outcome-{css}" data-outcome="{html.escape(outcome)}">{html.escape(label)}</span>{decided_by}</p>\n'
        f'<p class="verdict-text">{html.escape(str(verdict.get("text", "")))}</p>\n' + (f"<ul>{part_lines}</ul>" if part_lines else "")
    )


def _frame_html(frame: pd.DataFrame) -> str:
    """``frame`` as an escaped HTML table, numbers to four significant digits."""
    return frame.to_html(
        index=False, escape=True, border=0, classes="frame", na_rep="", float_format=lambda v: f"{v:.4g}", justify="center"
    )


def _summary_section(verdict: Mapping[str, Any], tables: Mapping[str, Any]) -> str:
    out = []
    if verdict.get("table"):
        out.append(f'<pre class="summary-table">{html.escape(str(verdict["table"]))}</pre>')
    for name in ("summary", "summary_sae"):
        frame = tables.get(name)
        if isinstance(frame, pd.DataFrame) and not frame.empty:
            out.append(
                f"<details><summary>{html.escape(name)}.parquet as a table ({len(frame)} rows, every column)</summary>\n"
                f"{_frame_html(frame)}\n</details>"
            )
    return "\n".join(out) or "<p>No summary table in this run's results.</p>"


def _figures_section(figures: Mapping[str, Any], base: Path, figures_dir: Path) -> str:
    if not figures:
        return "<p>No figures: the run's results hold nothing to draw.</p>"
    out = []
    for stem, fig in figures.items():
        title = fig.layout.title.text or stem
        plot = fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=_anchor(stem) + "-plot",
            default_width="100%",
            default_height=FIGURE_HEIGHT,
        )
        files = [
            f'<a href="{_href(figures_dir / f"{stem}.{fmt}", base)}">{fmt}</a>'
            for fmt in FIGURE_FORMATS
            if (figures_dir / f"{stem}.{fmt}").is_file()
        ]
        caption = f"<code>{html.escape(stem)}</code>" + (f" — files: {', '.join(files)}" if files else "")
        out.append(
            f'<figure id="{_anchor(stem)}" data-figure="{html.escape(stem)}">\n<h3>{html.escape(str(title))}</h3>\n'
            f'<div class="plot">{plot}</div>\n<figcaption>{caption}</figcaption>\n</figure>'
        )
    return "\n".join(out)


def _tables_section(results_dir: Path, base: Path, tables: Mapping[str, Any]) -> str:
    items = []
    for path in sorted(results_dir.glob("*.parquet")):
        frame = tables.get(path.stem)
        shape = f" — {len(frame):,} rows × {len(frame.columns)} columns" if isinstance(frame, pd.DataFrame) else ""
        items.append(f'<li><a href="{_href(path, base)}">{html.escape(path.name)}</a>{html.escape(shape)}</li>')
    for name, what in (
        ("README.md", "what every column means"),
        ("verdict.json", "the verdict with every part"),
        ("summary.txt", "the printed summary"),
    ):
        if (results_dir / name).is_file():
            items.append(f'<li><a href="{_href(results_dir / name, base)}">{html.escape(name)}</a> — {html.escape(what)}</li>')
    if not items:
        return f"<p>No result files in {html.escape(str(results_dir))}.</p>"
    return f"<p>Every table is a parquet file (pandas: <code>pd.read_parquet</code>).</p>\n<ul>{''.join(items)}</ul>"
