"""One writer at a time: a second run on the same database waits or refuses cleanly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from journey_analytics.errors import DatabaseLockedError
from journey_analytics.locking import run_lock

from ._project import project

pytestmark = pytest.mark.slow

WEB = (
    '{"type":"track","event":"Product Viewed","messageId":"m1","anonymousId":"a1",'
    '"timestamp":"2026-03-01T10:00:00Z"}\n'
)


def _hold_lock(database: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process holding the run lock for ``seconds``; returns once it holds it."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from journey_analytics.locking import run_lock\n"
            f"with run_lock(Path({str(database)!r})):\n"
            "    print('holding', flush=True)\n"
            f"    time.sleep({seconds})\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    return holder


def _journey_run(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cli = Path(sys.executable).parent / "journey"
    return subprocess.run(
        [str(cli), "run", "--config", str(config), *extra],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_second_run_refuses_with_a_clear_message(tmp_path: Path) -> None:
    settings = project(tmp_path, {"web.jsonl": WEB})
    holder = _hold_lock(settings.database_path, 120)
    try:
        result = _journey_run(tmp_path / "journey.toml")
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 3
    assert "Another journey run is writing" in result.stderr
    assert "pid " in result.stderr
    assert not settings.database_path.exists()  # it touched nothing


def test_a_second_run_can_wait_for_the_first(tmp_path: Path) -> None:
    settings = project(tmp_path, {"web.jsonl": WEB})
    holder = _hold_lock(settings.database_path, 3)
    try:
        result = _journey_run(tmp_path / "journey.toml", "--wait", "120")
    finally:
        holder.wait()
    assert result.returncode == 0, result.stderr[-2000:]
    assert "1 events" in result.stdout


def test_the_lock_is_released_after_an_error(tmp_path: Path) -> None:
    database = tmp_path / "j.duckdb"
    with pytest.raises(RuntimeError), run_lock(database):
        raise RuntimeError
    with run_lock(database):  # free again
        pass
    # flock is per open file: a second open in the same process is refused too
    with (
        run_lock(database),
        pytest.raises(DatabaseLockedError, match="Another journey run"),
        run_lock(database),
    ):
        pass
