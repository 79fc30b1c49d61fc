"""Writing figures: standalone HTML always, PNG/SVG through kaleido when a Chromium is present.

Kaleido ≥ 1 renders static images by driving a Chromium-family browser. mechsel looks for one
(``BROWSER_PATH``, ``PATH``, the typical install locations, or kaleido's own download from
``kaleido.get_chrome_sync()``) and, when none is found, logs once that static images are skipped
and writes the HTML only — a missing browser never fails a run. Debian's ``chromium`` package
(``/usr/bin/chromium``, found on ``PATH``) works; ``scripts/setup.sh`` installs it when run as
root on a machine with ``apt-get``.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from mechsel.errors import ConfigError
from mechsel.paths import atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["chromium_path", "static_export_available", "save_figure", "PlotlyJS"]

logger = logging.getLogger(__name__)

PlotlyJS = Literal["directory", "embed", "cdn"]
"""How an HTML file gets plotly.js: ``directory`` — one ``plotly.min.js`` written beside the
figures and referenced by each file (offline, small); ``embed`` — inlined in every file (one
self-contained file of ~4.5 MB); ``cdn`` — loaded from the plotly CDN (needs the network)."""
STATIC_FORMATS = ("png", "svg")


@functools.lru_cache(maxsize=1)
def chromium_path() -> str | None:
    """Path of a Chromium-family browser kaleido can drive, or ``None`` when there is none."""
    try:
        from choreographer.browsers.chromium import Chromium
    except ImportError:  # kaleido < 1 or not installed
        return None
    try:
        return Chromium.find_browser(skip_local=False)
    except Exception as exc:  # noqa: BLE001 - detection is best effort by design
        logger.debug("Chromium detection failed: %s", exc)
        return None


def static_export_available() -> bool:
    """Whether PNG/SVG export can run (kaleido importable and a Chromium found)."""
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return False
    return chromium_path() is not None


@functools.lru_cache(maxsize=1)
def _warn_no_static() -> None:
    logger.info(
        "No Chromium found for kaleido: writing HTML figures only (PNG/SVG skipped). For PNG/SVG install one: "
        "`apt-get install chromium` (scripts/setup.sh does this when run as root on a machine with apt), "
        "`kaleido_get_chrome` (downloads one), or set BROWSER_PATH to a Chromium/Chrome binary."
    )


def _div_id(stem: Path) -> str:
    return "mechsel-" + re.sub(r"[^A-Za-z0-9_-]", "-", stem.name)


def _write_plotlyjs(folder: Path) -> None:
    from plotly.offline import get_plotlyjs

    target = folder / "plotly.min.js"
    if not target.exists():
        atomic_write_text(target, get_plotlyjs())


def save_figure(
    fig: go.Figure,
    path_stem: str | Path,
    *,
    formats: Sequence[str] = STATIC_FORMATS,
    plotlyjs: PlotlyJS = "directory",
    scale: float = 2.0,
) -> list[Path]:
    """Write ``fig`` to ``<path_stem>.html`` and, when possible, ``.png`` / ``.svg``.

    The HTML has a fixed div id derived from the file name, so the same figure always gives the
    same bytes. Writes are atomic.

    Args:
        fig: the plotly figure.
        path_stem: output path without extension; parent folders are created.
        formats: static formats wanted besides HTML (a subset of ``png``, ``svg``); skipped with
            one log message when no Chromium is available.
        plotlyjs: how the HTML gets plotly.js (see :data:`PlotlyJS`).
        scale: resolution multiplier of PNG output.

    Returns:
        The files written.
    """
    bad = [f for f in formats if f not in STATIC_FORMATS]
    if bad:
        raise ConfigError(f"Unknown figure format(s) {bad}; choose from {list(STATIC_FORMATS)} (HTML is always written).")
    if plotlyjs not in ("directory", "embed", "cdn"):
        raise ConfigError(f"plotlyjs must be 'directory', 'embed' or 'cdn', got {plotlyjs!r}.")
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    include: str | bool = {"directory": "directory", "embed": True, "cdn": "cdn"}[plotlyjs]
    if plotlyjs == "directory":
        _write_plotlyjs(stem.parent)
    html = fig.to_html(include_plotlyjs=include, full_html=True, div_id=_div_id(stem))
    written = [stem.with_suffix(".html")]
    atomic_write_text(written[0], html)
    if formats:
        if static_export_available():
            for fmt in formats:
                path = stem.with_suffix(f".{fmt}")
                atomic_write_bytes(path, fig.to_image(format=fmt, scale=scale if fmt == "png" else 1))
                written.append(path)
        else:
            _warn_no_static()
    logger.debug("Wrote %s", ", ".join(str(p) for p in written))
    return written
