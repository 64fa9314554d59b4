"""Full-page screenshot of the dashboard for the README: ``make screenshot``.

Usage: python scripts/screenshot.py [PAGE] [PNG]   (default: reports/dashboard.html,
docs/dashboard.png). Headless Chromium with every network route closed loads the page twice:
once to measure its height once plotly has drawn, once to take the picture at that height.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

from journey_analytics.figure_export import OFFLINE_CHROMIUM_FLAGS, find_browser

WIDTH = 1280
# Written after the page's own scripts: on load (plotly draws while the page loads), the
# height of the whole document.
_MEASURE = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const pre = document.createElement("pre");
  pre.id = "page-height";
  pre.textContent = String(document.documentElement.scrollHeight);
  document.body.appendChild(pre);
}, 500));
</script>
"""


def _chromium(profile: Path, *args: str) -> str:
    command = [
        str(find_browser()),
        *OFFLINE_CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",
        "--hide-scrollbars",
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    if result.returncode != 0:
        sys.exit(f"chromium failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return result.stdout


def screenshot(page: Path, png: Path) -> int:
    """Writes a ``WIDTH``-pixel-wide picture of the whole page; returns its height."""
    with tempfile.TemporaryDirectory() as tmp:
        measured = Path(tmp) / "measured.html"
        text = page.read_text(encoding="utf-8")
        measured.write_text(text.replace("</body>", _MEASURE + "</body>", 1), encoding="utf-8")
        dom = _chromium(
            Path(tmp) / "profile", f"--window-size={WIDTH},1000", "--dump-dom", measured.as_uri()
        )
        found = re.search(r'<pre id="page-height">(\d+)</pre>', dom)
        if found is None:
            sys.exit(f"could not measure the height of {page}")
        height = int(found.group(1))
        png.parent.mkdir(parents=True, exist_ok=True)
        _chromium(
            Path(tmp) / "profile",
            f"--window-size={WIDTH},{height}",
            f"--screenshot={png.resolve()}",
            page.resolve().as_uri(),
        )
    return height


def main() -> None:
    page = Path(sys.argv[1] if len(sys.argv) > 1 else "reports/dashboard.html")
    png = Path(sys.argv[2] if len(sys.argv) > 2 else "docs/dashboard.png")
    if not page.is_file():
        sys.exit(f"{page} does not exist: run `make run` first")
    height = screenshot(page, png)
    print(f"screenshot: {png} ({WIDTH} x {height} px)")


if __name__ == "__main__":
    main()
