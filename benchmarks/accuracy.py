"""How accurate is it: simulate a retailer, run the pipeline on it, score it against the truth.

    python benchmarks/accuracy.py --customers 100000 --seed 1 --out build/accuracy

Writes the sample to ``<out>/sample``, a config pointing at it to ``<out>/journey.toml``, runs
``journey run`` (the real Prefect flow) and ``journey evaluate``, and leaves the scores in
``<out>/evaluation.json`` and the timings in ``<out>/timings.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _journey(*args: str) -> float:
    """Runs the ``journey`` command of this interpreter's environment; returns its seconds."""
    started = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent / "journey"), *args], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "build" / "accuracy")
    args = parser.parse_args()
    out: Path = args.out.resolve()
    sample = out / "sample"
    out.mkdir(parents=True, exist_ok=True)
    config = (REPO / "journey.toml").read_text()
    config = config.replace('"data/sample/', f'"{sample.as_posix()}/')
    config = config.replace('database = "journeys.duckdb"', f'database = "{out}/journeys.duckdb"')
    config = config.replace('reports_dir = "reports"', f'reports_dir = "{out}/reports"')
    (out / "journey.toml").write_text(config)
    (out / "journeys.duckdb").unlink(missing_ok=True)
    timings = {
        "sample_seconds": _journey(
            "sample",
            "--customers",
            str(args.customers),
            "--seed",
            str(args.seed),
            "--out",
            str(sample),
        ),
        "run_seconds": _journey("run", "--config", str(out / "journey.toml")),
        "evaluate_seconds": _journey(
            "evaluate",
            "--truth",
            str(sample / "truth"),
            "--config",
            str(out / "journey.toml"),
            "--out",
            str(out / "evaluation.json"),
        ),
    }
    (out / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    print(json.dumps(timings, indent=2))


if __name__ == "__main__":
    main()
