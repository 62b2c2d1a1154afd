# Two commands on a fresh machine with only python3: `make demo` and `make test`.
# Each creates .venv (once) and installs reclayers with every backend and the test tools.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench docs clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[all,dev]"
	touch $(STAMP)

# DCN-V2 on 500,000 synthetic rows (examples/demo.json), measured on a shared 2-core machine:
# 86 s end to end (115 s under heavy load), test AUC 0.905 against a Bayes-optimal 0.914.
demo: $(STAMP)
	$(BIN)/reclayers train --model dcn_v2 --backend jax --data synthetic --config examples/demo.json --run-dir runs/demo
	@run=$$(ls -td runs/demo/*/ | head -1); echo "learning curves: $${run}curves.png"

test: $(STAMP)
	$(BIN)/python scripts/run_tests.py

docs: $(STAMP)
	$(BIN)/python scripts/make_charts.py
	$(BIN)/python scripts/build_docs.py

bench: $(STAMP)
	$(BIN)/python -m benchmarks

lint: $(STAMP)
	$(BIN)/python -m ruff check .

clean:
	rm -rf $(VENV) .test-reports .pytest_cache .ruff_cache runs
