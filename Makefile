# Two commands: `make run` (set up + run on the committed sample), `make test` (set up + tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Prefect runs offline and quietly; its temporary server needs time on 2 cores (DESIGN.md §9).
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 180

.PHONY: run test lint format sample dashboard bench accuracy clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@ $(VENV)/.installed-run

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test,bench]"
	touch $@ $(VENV)/.installed-test $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(BIN)/journey run --config journey.toml

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src pipelines tests
	$(BIN)/ruff format --check src pipelines tests
	$(BIN)/mypy

format: $(VENV)/.installed-test
	$(BIN)/ruff format src pipelines tests
	$(BIN)/ruff check --fix src pipelines tests

# Regenerate the committed sample (tests check it matches the generator byte for byte).
sample: $(VENV)/.installed-run
	$(BIN)/journey sample --customers 500 --seed 42 --out data/sample

dashboard: $(VENV)/.installed-run
	$(BIN)/journey dashboard --config journey.toml

# Speed and memory (events/s, peak memory, medians on this machine) against a baseline measured
# in the same run: the simulator against a plain JSON-lines writer, ingest against DuckDB's
# read_json (clean, and with 0.4% malformed lines), identity stitching against NetworkX alone,
# sessions + journeys + transition graph against the same rules in DuckDB SQL and in pandas,
# and the whole pipeline end to end (raw files to dashboard, per stage) with a daily run of 1%
# new rows. Tables in benchmarks/README.md, raw numbers in benchmarks/results/.
bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/bench_sample.py
	$(BIN)/python benchmarks/bench_ingest.py
	$(BIN)/python benchmarks/bench_ingest.py --events 1000000 --malformed 0.004
	$(BIN)/python benchmarks/bench_identity.py
	$(BIN)/python benchmarks/bench_analytics.py
	$(BIN)/python benchmarks/bench_pipeline.py

# Simulate a retailer, run the pipeline on it and score it against the truth (README table).
CUSTOMERS ?= 100000
accuracy: $(VENV)/.installed-run
	$(BIN)/python benchmarks/accuracy.py --customers $(CUSTOMERS) --seed 1 --out build/accuracy

clean:
	rm -rf $(VENV) journeys.duckdb journeys.duckdb.wal reports/dashboard.html reports/figures \
		reports/graphs build .pytest_cache

# The analysts' notebooks (notebooks/README.md): build the database from the sample (as `make
# run`), then execute every notebook in place, its outputs saved in the file as GitHub shows it.
.PHONY: notebooks
notebooks: $(VENV)/.installed-test
	rm -f journeys.duckdb journeys.duckdb.wal  # one run, as the tests build it (audience history)
	$(BIN)/journey run --config journey.toml
	$(BIN)/python notebooks/execute.py notebooks/*.ipynb

# The README's picture of the dashboard: the pipeline on the committed sample (`make run`,
# which also rebuilds reports/dashboard.html), then a full-page screenshot of it in headless
# Chromium with the network closed (Debian: apt-get install chromium).
.PHONY: screenshot
screenshot: run
	$(BIN)/python scripts/screenshot.py reports/dashboard.html docs/dashboard.png
