# Two commands for a new user: `make dev` (the running stack) and `make test` (what CI runs).
PYTHON ?= python3.11
VENV   ?= .venv
BIN     = $(VENV)/bin
# Development-only credentials so `make dev` works out of the box; production sets its own.
export WAFLOW_APP_SECRETS ?= demo=dev-secret-change-me
export WAFLOW_VERIFY_TOKEN ?= dev-verify-token

.PHONY: install dev demo test lint unit integration bench chaos clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev,embedded]'
	touch $@

dev: install
	$(BIN)/waflow up

demo: install
	$(BIN)/waflow demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

test: lint
	$(BIN)/pytest -q -p no:cacheprovider

unit: install
	$(BIN)/pytest -q -m "not integration"

integration: install
	$(BIN)/pytest -q -m integration

# Per-stage benchmarks, each beside its bare baseline in the same run; the ingress beside the
# compiled gateway (../shared/peers/gopeer) and the previous release; the whole pipeline beside
# the previous release's (tests/benchmarks/versus.py); the encoder beside fastavro; then the stepped
# end-to-end run with its profile and 10-minute memory run (docs/benchmarks.md). About two and a half hours.
bench: install
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m tests.benchmarks.ingress --seconds 10 --runs 3 --tls
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m tests.benchmarks.peer --seconds 10 --runs 3
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m tests.benchmarks.versus --runs 3 --seconds 20
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m tests.benchmarks.tenant --runs 3
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m tests.benchmarks.capacity
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m tests.benchmarks.lookup
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m tests.benchmarks.restart --repeats 3
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m tests.benchmarks.memory --minutes 10
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m tests.benchmarks.streams --runs 3 --deliveries 30000 \
		--profile tests/benchmarks/results/streams-profile.txt
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m tests.benchmarks.sink --runs 3 --deliveries 40000
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m tests.benchmarks.encode
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m tests.benchmarks.e2e --runs 3 --seconds 20 \
		--memory-minutes 10

# Ten minutes of signed load on a 3-broker cluster while every fault kind is injected; prints the
# invariant table (docs/guarantees.md).
chaos: install
	$(BIN)/python -m tests.chaos.run --minutes 10 --rate 40 --brokers 3

clean:
	$(BIN)/waflow broker stop || true
	rm -rf .waflow
