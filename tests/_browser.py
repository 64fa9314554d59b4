"""Headless Chromium with every network route closed, for the dashboard tests."""

from __future__ import annotations

import html
import json
import re
import struct
import subprocess
from pathlib import Path
from typing import Any

from journey_analytics.figure_export import OFFLINE_CHROMIUM_FLAGS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """Width and height in pixels, from the PNG's header chunk (IHDR, always first)."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE
    length, kind, width, height = struct.unpack(">I4sII", head[8:24])
    assert (length, kind) == (13, b"IHDR")
    return width, height


def run_chromium(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Runs headless Chromium with every network route closed (proxy to a dead port, no DNS)."""
    command = [
        chromium,
        *OFFLINE_CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


# Test code only: the product page never carries it. Put first in <head>, it runs before
# plotly.js and the page's own scripts, records every uncaught error, unhandled rejection,
# console.error call and Content-Security-Policy violation (a blocked fetch), then waits until
# plotly has drawn every figure and writes what it found as JSON into <pre id="probe">.
_PROBE = """<script>
(() => {
  const problems = [];
  window.addEventListener("error", (e) => problems.push(
    `uncaught: ${e.message} (${e.filename}:${e.lineno})`));
  window.addEventListener("unhandledrejection", (e) => problems.push(
    `unhandled rejection: ${e.reason}`));
  document.addEventListener("securitypolicyviolation", (e) => problems.push(
    `blocked by CSP: ${e.violatedDirective} ${e.blockedURI}`));
  const consoleError = console.error;
  console.error = (...args) => {
    problems.push(`console.error: ${args.map(String).join(" ")}`);
    consoleError.apply(console, args);
  };
  const list = (values) => Array.from(values ?? []);
  const drawn = (div) => Boolean(div._fullLayout) && div.querySelector(".main-svg") !== null;
  function report(tries) {
    const plots = list(document.querySelectorAll(".js-plotly-plot"));
    const sankey = document.getElementById("figure-sankey");
    const ready = plots.length > 0 && plots.every(drawn);
    if (!ready && tries > 0) {
      setTimeout(() => report(tries - 1), 50);
      return;
    }
    const trace = sankey?.data?.[0];
    const result = {
      ready,
      plotly: typeof window.Plotly === "object" ? window.Plotly.version : null,
      problems,
      sections: list(document.querySelectorAll("main > section")).map((s) => s.id),
      nav: list(document.querySelectorAll("nav a")).map((a) => a.getAttribute("href")),
      drawn: plots.filter(drawn).map((div) => div.id),
      sankey: trace === undefined ? null : {
        visible: trace.visible ?? true,
        names: list(trace.node.customdata),
        labels: list(trace.node.label),
        source: list(trace.link.source),
        target: list(trace.link.target),
        value: list(trace.link.value),
        drawn_nodes: list(sankey.querySelectorAll(".sankey-node .node-label"))
          .map((t) => t.textContent),
        drawn_links: sankey.querySelectorAll(".sankey-link").length,
      },
    };
    const pre = document.createElement("pre");
    pre.id = "probe";
    pre.textContent = JSON.stringify(result);
    document.body.appendChild(pre);
  }
  window.addEventListener("load", () => report(100));
})();
</script>
"""


def write_probed_copy(page: Path, copy: Path) -> Path:
    """Writes ``page`` to ``copy`` with the probe script first in ``<head>``."""
    text = page.read_text(encoding="utf-8")
    assert text.count("<head>") == 1
    copy.write_text(text.replace("<head>", "<head>\n" + _PROBE, 1), encoding="utf-8")
    return copy


def read_probe(dom: str) -> dict[str, Any]:
    """The JSON the probe wrote into a dumped DOM."""
    (found,) = re.findall(r'<pre id="probe">(.*?)</pre>', dom, flags=re.DOTALL)
    result: dict[str, Any] = json.loads(html.unescape(found))
    return result
