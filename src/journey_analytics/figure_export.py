"""Static images of the dashboard's figures (PNG for slides, PDF for print), with kaleido.

Input: plotly figures keyed by name, as :func:`journey_analytics.dashboards.build_figures`
returns them (keyed by section id). Output: one file per figure and format,
``<folder>/<name>.<format>``. The images are the same figures as the HTML page, so they carry
the same aggregates and no identifier.

kaleido 1.x renders in a Chrome or Chromium installed on the machine (Debian's ``chromium``),
found on ``PATH`` here and handed to kaleido by path, so kaleido never looks for, nor downloads,
a browser of its own (its ``get_chrome`` is never called). Nothing is fetched while rendering:
plotly.js is the copy inside the plotly package, MathJax (which kaleido loads from a CDN by
default) is off, and the browser's proxy is a closed local port. All figures are rendered in one
browser session: starting Chromium costs more than rendering a figure.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import kaleido
import plotly
import plotly.graph_objects as go
from choreographer.errors import BrowserFailedError
from kaleido.errors import JavascriptError, KaleidoError

from journey_analytics.errors import BrowserNotFoundError, FigureExportError, format_problems

# Looked for on PATH in this order: Debian's name first, then the other usual ones.
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FORMATS = ("png", "pdf", "svg", "jpeg", "webp")

_PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
_CLOSED_PROXY = "http://127.0.0.1:9"  # the discard port: any fetch fails at once
# Headless Chromium as DESIGN.md section 9 starts it, with no network at all (a proxy on a
# closed port, no name resolves): for pages opened outside kaleido (screenshots, tests).
OFFLINE_CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    f"--proxy-server={_CLOSED_PROXY}",
    "--proxy-bypass-list=<-loopback>",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_INSTALL_HINT = "install one: apt-get install chromium (Debian/Ubuntu)"


def find_browser() -> Path:
    """The first Chrome or Chromium on ``PATH`` (:data:`BROWSER_NAMES`, in order).

    Raises:
        BrowserNotFoundError: None is installed; the message says how to install one.
    """
    for name in BROWSER_NAMES:
        found = shutil.which(name)
        if found is not None:
            return Path(found)
    msg = (
        f"static images need Chrome or Chromium, and none is on PATH "
        f"(looked for {', '.join(BROWSER_NAMES)}): {_INSTALL_HINT}"
    )
    raise BrowserNotFoundError(msg)


def _renderable(figure: go.Figure) -> dict[str, Any]:
    """A copy of the figure as a still image shows it: its hidden traces (the Sankey's other
    segments) and its menus left out, since an image cannot switch between them."""
    spec: dict[str, Any] = figure.to_dict()  # a deep copy
    spec["data"] = [trace for trace in spec.get("data", []) if trace.get("visible", True) is True]
    spec.get("layout", {}).pop("updatemenus", None)
    return spec


def _check_options(
    figures: Mapping[str, go.Figure],
    formats: tuple[str, ...],
    *,
    width: int,
    height: int | None,
    scale: float,
) -> None:
    problems = [
        f"figure name {name!r}: expected letters, digits, '_' or '-' (it becomes a file name)"
        for name in figures
        if not _NAME.fullmatch(name)
    ]
    problems += [
        f"format {fmt!r}: expected one of {', '.join(FORMATS)}"
        for fmt in formats
        if fmt not in FORMATS
    ]
    if not formats:
        problems.append("formats: expected at least one")
    if width < 1 or (height is not None and height < 1) or scale <= 0:
        problems.append(
            f"size: expected width, height and scale above 0, found {width}, {height}, {scale}"
        )
    if problems:
        raise ValueError("; ".join(problems))


def export_figures(
    figures: Mapping[str, go.Figure],
    folder: Path,
    *,
    formats: tuple[str, ...] = ("png", "pdf"),
    width: int = 1200,
    height: int | None = None,
    scale: float = 2,
    browser: Path | None = None,
) -> list[Path]:
    """Writes each figure as ``<folder>/<name>.<format>``, all in one headless browser session.

    Args:
        figures: Figures by name (letters, digits, ``_``, ``-``); not modified.
        folder: Where the files go; created if missing. Existing files are overwritten.
        formats: Any of ``png``, ``pdf``, ``svg``, ``jpeg``, ``webp``.
        width: Layout width in CSS pixels; a PNG is ``width * scale`` pixels wide.
        height: Layout height in CSS pixels; ``None`` keeps each figure's own height (the
            dashboard sizes each chart to its content), else plotly's default of 500.
        scale: Pixel density of raster images (2 for sharp slides); PDF and SVG are vectors.
        browser: The Chrome or Chromium executable; default: :func:`find_browser`.

    Returns:
        The files written, figure by figure, each in the order of ``formats``.

    Raises:
        BrowserNotFoundError: No browser on ``PATH``, or ``browser`` is not a file.
        FigureExportError: The browser did not start, or plotly.js failed on some figures
            (each is named; the others are written).
        ValueError: A figure name, format or size is not usable (all problems listed).

    Example::

        figures = build_figures(data, min_group_size=5)
        export_figures(figures, Path("reports/figures"))  # [.../sankey.png, .../sankey.pdf, ...]
    """
    _check_options(figures, formats, width=width, height=height, scale=scale)
    if not figures:
        return []
    if browser is None:
        browser = find_browser()
    elif not browser.is_file():
        msg = f"static images need Chrome or Chromium, and {browser} is not a file: {_INSTALL_HINT}"
        raise BrowserNotFoundError(msg)
    folder.mkdir(parents=True, exist_ok=True)
    size: dict[str, float] = {"width": width, "scale": scale}
    if height is not None:
        size["height"] = height
    specs = {name: _renderable(figure) for name, figure in figures.items()}
    jobs = [
        (folder / f"{name}.{fmt}", spec, {"format": fmt, **size})
        for name, spec in specs.items()
        for fmt in formats
    ]
    # kaleido is asyncio; a thread of its own gives it a fresh event loop even where one is
    # running already (a notebook).
    with ThreadPoolExecutor(max_workers=1) as pool:
        problems = pool.submit(asyncio.run, _render(jobs, browser)).result()
    if problems:
        title = f"{len(problems)} of {len(jobs)} images in {folder} could not be rendered"
        raise FigureExportError(format_problems(title, problems))
    return [path for path, _, _ in jobs]


async def _render(
    jobs: list[tuple[Path, dict[str, Any], dict[str, Any]]], browser: Path
) -> list[str]:
    """Renders the images one after the other in one browser; the failures, by file name."""
    problems: list[str] = []
    try:
        async with kaleido.Kaleido(
            path=str(browser), plotlyjs=_PLOTLY_JS, mathjax=False, proxy_server=_CLOSED_PROXY
        ) as renderer:
            for path, figure, options in jobs:
                try:
                    await renderer.write_fig_from_object(
                        {"fig": figure, "path": path, "opts": options}, cancel_on_error=True
                    )
                except (KaleidoError, JavascriptError, TimeoutError) as error:
                    problems.append(f"{path.name}: {type(error).__name__}: {error}")
    except BrowserFailedError as error:
        msg = f"{browser} did not start to render the figures: {error}"
        raise FigureExportError(msg) from error
    return problems
