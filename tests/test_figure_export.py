"""Static PNG and PDF images of figures (kaleido in the machine's Chromium), and
``journey dashboard --images``."""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
import pytest
from typer.testing import CliRunner

from journey_analytics import dashboards, jobs
from journey_analytics.cli import app
from journey_analytics.errors import BrowserNotFoundError, FigureExportError
from journey_analytics.figure_export import _renderable, export_figures

from ._browser import PNG_SIGNATURE, png_size
from ._project import project, run_all
from .test_dashboard_browser import _data as dashboard_data

runner = CliRunner()


def _figures() -> dict[str, go.Figure]:
    # Like the dashboard's Sankey: a hidden trace and a menu that shows it instead
    bar = go.Figure(
        [
            go.Bar(x=["web", "store"], y=[3, 5], uid="shown"),
            go.Bar(x=["web", "store"], y=[9, 1], uid="hidden", visible=False),
        ],
        layout={
            "height": 300,
            "updatemenus": [{"buttons": [{"label": "other", "method": "restyle", "args": []}]}],
        },
    )
    line = go.Figure(go.Scatter(x=[1, 2, 3], y=[2, 1, 3]))  # no height: plotly's 500
    return {"bar": bar, "line": line}


def test_a_still_image_shows_the_visible_traces_without_menus() -> None:
    spec = _renderable(_figures()["bar"])
    assert [trace["uid"] for trace in spec["data"]] == ["shown"]
    assert "updatemenus" not in spec["layout"]


@pytest.mark.browser
def test_each_figure_is_written_as_png_and_pdf(chromium: str, tmp_path: Path) -> None:
    figures = _figures()
    before = {name: figure.to_dict() for name, figure in figures.items()}
    folder = tmp_path / "figures"  # created by the export

    written = export_figures(figures, folder, width=400, scale=2)

    assert written == [
        folder / "bar.png",
        folder / "bar.pdf",
        folder / "line.png",
        folder / "line.pdf",
    ]
    assert sorted(path.name for path in folder.iterdir()) == sorted(p.name for p in written)
    # PNG: width * scale pixels wide; the height is the figure's own (or 500), times scale.
    assert png_size(folder / "bar.png") == (800, 600)
    assert png_size(folder / "line.png") == (800, 1000)
    for name in ("bar", "line"):
        assert (folder / f"{name}.png").read_bytes()[:8] == PNG_SIGNATURE
        assert (folder / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
    # The caller's figures are untouched.
    assert {name: figure.to_dict() for name, figure in figures.items()} == before


@pytest.mark.browser
def test_a_given_height_and_scale_and_an_explicit_browser(chromium: str, tmp_path: Path) -> None:
    written = export_figures(
        {"bar": _figures()["bar"]},
        tmp_path,
        formats=("png",),
        width=300,
        height=200,
        scale=1,
        browser=Path(chromium),
    )
    assert written == [tmp_path / "bar.png"]
    assert png_size(tmp_path / "bar.png") == (300, 200)


@pytest.mark.browser
def test_figures_plotly_cannot_draw_are_named_and_the_others_written(
    chromium: str, tmp_path: Path
) -> None:
    # plotly.js throws "Invalid array length" on a Sankey with no node at all.
    empty = go.Figure(go.Sankey(node={"label": []}, link={"source": [], "target": []}))
    with pytest.raises(FigureExportError) as error:
        export_figures({"empty": empty, **_figures()}, tmp_path, formats=("png",))
    assert str(error.value) == (
        f"1 of 3 images in {tmp_path} could not be rendered:\n"
        "  - empty.png: KaleidoError: Error 525: Invalid array length"
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bar.png", "line.png"]


def test_no_browser_on_path_is_a_project_error_saying_how_to_install_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(BrowserNotFoundError) as error:
        export_figures(_figures(), tmp_path / "figures")
    assert str(error.value) == (
        "static images need Chrome or Chromium, and none is on PATH (looked for chromium, "
        "chromium-browser, google-chrome, google-chrome-stable, chrome): install one: "
        "apt-get install chromium (Debian/Ubuntu)"
    )
    assert not (tmp_path / "figures").exists()  # nothing was started or written
    missing = tmp_path / "bin" / "chromium"
    with pytest.raises(BrowserNotFoundError) as error:
        export_figures(_figures(), tmp_path / "figures", browser=missing)
    assert str(error.value) == (
        f"static images need Chrome or Chromium, and {missing} is not a file: "
        "install one: apt-get install chromium (Debian/Ubuntu)"
    )


def test_no_figures_need_no_browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert export_figures({}, tmp_path / "figures") == []
    assert not (tmp_path / "figures").exists()


def test_bad_names_formats_and_sizes_are_listed_together(tmp_path: Path) -> None:
    figures = {"../sankey": go.Figure(), "ok": go.Figure()}
    with pytest.raises(ValueError) as error:
        export_figures(figures, tmp_path, formats=("png", "gif"), width=0, scale=2)
    assert str(error.value) == (
        "figure name '../sankey': expected letters, digits, '_' or '-' (it becomes a file "
        "name); format 'gif': expected one of png, pdf, svg, jpeg, webp; size: expected "
        "width, height and scale above 0, found 0, None, 2"
    )


@pytest.mark.browser
def test_dashboard_command_writes_the_figures_only_with_images(
    chromium: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = project(tmp_path, {})
    run_all(settings)
    # The marts of the browser test instead of the empty ones of this project: with no
    # journey the Sankey has no node, and plotly.js cannot draw that (test above).
    monkeypatch.setattr(jobs, "read_dashboard_data", lambda _settings: dashboard_data())
    config = str(tmp_path / "journey.toml")
    folder = tmp_path / "reports" / "figures"

    result = runner.invoke(app, ["dashboard", "--config", config])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "reports" / "dashboard.html").is_file()
    assert not folder.exists()

    result = runner.invoke(app, ["dashboard", "--config", config, "--images"])
    assert result.exit_code == 0, result.output
    names = list(dashboards.build_figures(dashboard_data()))
    assert sorted(path.name for path in folder.iterdir()) == sorted(
        f"{name}.{fmt}" for name in names for fmt in ("png", "pdf")
    )
    assert png_size(folder / "funnel.png")[0] == 2400  # 1200 CSS px at scale 2
    assert f"figures:   {folder} ({2 * len(names)} files)" in result.output


def test_dashboard_command_without_a_browser_writes_the_page_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_all(project(tmp_path, {}))
    monkeypatch.setattr(jobs, "read_dashboard_data", lambda _settings: dashboard_data())
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    config = str(tmp_path / "journey.toml")
    result = runner.invoke(app, ["dashboard", "--config", config, "--images"])
    assert result.exit_code == 2
    assert "none is on PATH" in result.output
    assert "apt-get install chromium" in result.output
    assert (tmp_path / "reports" / "dashboard.html").is_file()
    assert not (tmp_path / "reports" / "figures").exists()
