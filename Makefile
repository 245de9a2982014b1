# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test lint typecheck check clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("mailbridge needs Python 3.11 or newer") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,demo]'
	@rm -f $(VENV)/.installed-*
	@touch $@

demo: $(STAMP)
	$(BIN)/mailbridge demo

# pytest processes for `make test`; each test file runs whole in one of them. Three on two
# cores: the tests spend much of their time waiting on servers and child processes.
TEST_JOBS ?= 3

test: $(STAMP)
	$(BIN)/ruff format --check mailbridge tests bench migrations
	$(BIN)/ruff check mailbridge tests bench migrations
	$(BIN)/mypy
	@# The suite starts hundreds of Python processes (commands, daemons, parse workers); compiled
	@# once here, none of them compiles the package again where PYTHONDONTWRITEBYTECODE is set.
	$(BIN)/python -m compileall -q mailbridge
	$(BIN)/pytest -n $(TEST_JOBS) --dist loadfile --durations=30

lint: $(STAMP)
	$(BIN)/ruff format --check mailbridge tests bench migrations
	$(BIN)/ruff check mailbridge tests bench migrations

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
