"""What every benchmark records with its figures: a child process's peak resident memory and
the commit of the library measured."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path


def peak_rss_mb() -> float:
    """The most memory this process has had resident, in MB (2**20 bytes).

    On Linux it is ``VmHWM`` of ``/proc/self/status``: the high-water mark of this program's
    own memory. Not ``getrusage(RUSAGE_SELF).ru_maxrss``, which Linux carries over from the
    parent through ``fork`` and ``exec``: the child of a benchmark that had held 0.9 GB while
    writing its data reported at least 0.9 GB whatever it used itself (found 2026-12-02).
    Elsewhere, ``ru_maxrss`` (bytes on macOS, kB on the other systems).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def library_commit(repository: Path) -> str:
    """The short hash of the checked-out commit, with " (src/ modified)" when ``src/`` has
    changes not committed (the figures are then not those of the commit alone)."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(repository), *args], capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "src")
    return git("log", "-1", "--format=%h") + (" (src/ modified)" if dirty else "")
