"""The peak resident memory of a benchmark's child process."""

from __future__ import annotations

import resource
import sys


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
