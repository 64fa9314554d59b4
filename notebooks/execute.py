"""Executes notebooks in place with nbclient and saves their outputs: what `make notebooks` runs.

Each notebook runs in its own folder (so ``../journeys.duckdb`` is the repository's database,
or ``JOURNEY_DATABASE`` if set), on the ``python3`` kernel of the interpreter running this
script. No timings are recorded, so re-running on unchanged data changes nothing in the files.

Usage: ``python notebooks/execute.py notebooks/*.ipynb``
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

CELL_TIMEOUT_SECONDS = 120


def execute(path: Path) -> None:
    """Runs every cell of the notebook at ``path`` and writes it back with its outputs."""
    notebook = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_SECONDS,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(path.parent.resolve())}},
    ).execute()
    nbformat.write(notebook, path)  # type: ignore[no-untyped-call]


def main(paths: list[str]) -> None:
    for name in paths:
        print(f"executing {name}")
        execute(Path(name))


if __name__ == "__main__":
    main(sys.argv[1:])
