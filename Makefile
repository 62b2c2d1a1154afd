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

# DCN-V2 on 400,000 synthetic rows (examples/demo.json): about 75 s on a shared 2-core machine,
# test AUC within about 0.011 of the Bayes-optimal AUC that the data allows.
demo: $(STAMP)
	$(BIN)/reclayers train --model dcn_v2 --backend jax --data synthetic --config examples/demo.json --run-dir runs/demo
	@run=$$(ls -td runs/demo/*/ | head -1); echo "learning curves: $${run}curves.png"; echo "run directory: $$run"

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
