# The README's commands. `make test` and `make demo` build the venv first when it is missing;
# `make test` (what CI runs) lints first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
LAVA_SPEC := lava-nc==0.10.0
# NIR peers without their declared dependencies (see the [nir] extra in pyproject.toml for why).
PEER_SPECS := norse==1.1.0 neurobench==2.3.0

.PHONY: venv lint test test-fast demo clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,nir,gpu]'
	$(BIN)/pip install --quiet --no-deps $(PEER_SPECS)
	# lava-nc declares Python<3.11; its real dependencies come from pyproject.toml.
	$(BIN)/pip install --quiet --no-deps --ignore-requires-python $(LAVA_SPEC)
	$(BIN)/python -c "import mlf_deploy.exporters.lava_import as l; l.import_lava(); print('lava importable')"
	touch $@

lint: venv
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-fast: venv
	$(BIN)/python -m pytest -q -p no:cacheprovider -m 'not slow'

demo: venv
	$(BIN)/mlf-deploy demo --out demo-output --force

clean:
	rm -rf $(VENV) demo-output
