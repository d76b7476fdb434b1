# The README's commands. `make test` and `make demo` build the venv first when it is missing;
# `make test` (what CI runs) lints first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
LAVA_SPEC := lava-nc==0.10.0
# NIR peers without their declared dependencies (see the [nir] extra in pyproject.toml for why).
PEER_SPECS := norse==1.1.0 neurobench==2.3.0

.PHONY: venv lint test test-fast demo clean

# The install is editable in strict mode: a tree of links to each file (build/__editable__.*) that
# static tools and IDEs resolve like an installed package (the default mode's import hook, which
# maps exporters/ to mlf_deploy.exporters at run time, is invisible to them). Links are per file, so
# a module added, removed or renamed (which changes its folder) is re-linked by the next make.
STRICT := --config-settings editable_mode=strict
PACKAGE_DIRS := $(shell find mlf_deploy exporters runtimes verification workflows commands -type d -not -name __pycache__)

venv: $(VENV)/.linked

$(VENV)/.linked: $(VENV)/.installed $(PACKAGE_DIRS)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e . $(STRICT)
	touch $@

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,nir,sanafe,gpu]' $(STRICT)
	$(BIN)/pip install --quiet --no-deps $(PEER_SPECS)
	# lava-nc declares Python<3.11; its real dependencies come from pyproject.toml.
	$(BIN)/pip install --quiet --no-deps --ignore-requires-python $(LAVA_SPEC)
	$(BIN)/python -c "import mlf_deploy.exporters.lava.lava_import as l; l.import_lava(); print('lava importable')"
	touch $@

lint: venv
	$(BIN)/ruff check .

# Every test is stopped after TEST_TIMEOUT s (a hang fails, it does not stall CI; the few longer
# Lava tests raise their own limit with @pytest.mark.timeout); the 15 slowest are listed.
TEST_TIMEOUT ?= 600
PYTEST := $(BIN)/python -m pytest -q -p no:cacheprovider --durations=15 --timeout=$(TEST_TIMEOUT)

test: lint
	$(PYTEST)

test-fast: venv
	$(PYTEST) -m 'not slow'

demo: venv
	$(BIN)/mlf-deploy demo --out demo-output --force

clean:
	rm -rf $(VENV) demo-output build
