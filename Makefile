# coronalign developer entry points. Everything runs inside .venv (created by `make env`).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The hashed lock of the whole environment (Python 3.11+, Linux x86-64): `make env` installs
# exactly these files; `make lock` refreshes it. LOCKED=0 make env resolves afresh instead.
LOCK := requirements/lock.txt
LOCKED ?= 1
# Where `make lock` resolves: Python 3.11 on x86-64 Linux (the versions must also install on
# newer Pythons: the lock keeps the hashes of every file of each version).
LOCK_TARGET := --python-version 3.11 --python-platform x86_64-unknown-linux-gnu
UV := $(BIN)/uv
LINTED := src tests workflow benchmarks requirements

# The jwst environment (issue 25): the coron3 rules and the stpipe-step tests run jwst 3.0.0
# there, never in .venv (the coronalign package does not depend on jwst). JWST=0 skips it.
JWST ?= 1
JWST_VENV := .venv-jwst
JWST_LOCK := requirements/jwst-lock.txt
JWST_STAMP := $(JWST_VENV)/.installed

.PHONY: env lock lock-jwst test lint docs rulegraph demo clean-demo

ifeq ($(JWST),1)
env: $(STAMP) $(JWST_STAMP)
else
env: $(STAMP)
endif

$(JWST_STAMP): pyproject.toml $(JWST_LOCK)
	@test -x $(JWST_VENV)/bin/python || $(PYTHON) -m venv $(JWST_VENV)
	$(JWST_VENV)/bin/python -m pip install --quiet --require-hashes -r $(JWST_LOCK)
	$(JWST_VENV)/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(JWST_STAMP)

# Refresh the jwst lock (needs PyPI), like `lock` (jwst plus the build tools of `pip -e .`).
lock-jwst: $(STAMP)
	$(BIN)/python -m pip install --quiet uv
	$(UV) pip compile requirements/jwst.in requirements/build.in $(LOCK_TARGET) \
		--generate-hashes --no-header --quiet -o $(JWST_LOCK)

$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "coronalign needs Python >= 3.11 (found: $$($(PYTHON) --version))"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || \
		{ echo "could not create $(VENV): on Debian install python3-venv"; exit 1; }
ifeq ($(LOCKED),1)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
else
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,docs]'
endif
	@touch $(STAMP)

# Refresh the lock (needs PyPI): uv resolves the test and docs extras and the build tools together,
# with the hashes of every file of each version; the conda environment of the workflow's
# rules pins the same versions (envs/coronalign.yaml, generated).
lock: env
	$(BIN)/python -m pip install --quiet uv
	$(UV) pip compile pyproject.toml requirements/build.in --extra test --extra docs $(LOCK_TARGET) \
		--generate-hashes --no-header --quiet -o $(LOCK)
	$(UV) pip compile pyproject.toml requirements/build.in --extra plots $(LOCK_TARGET) \
		--constraint $(LOCK) --no-header --quiet -o $(VENV)/runtime-pins.txt
	$(BIN)/python requirements/conda_pins.py $(VENV)/runtime-pins.txt envs/coronalign.yaml

test: env
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/snakefmt --check Snakefile workflow
	$(BIN)/snakemake --lint --configfile config/config.yaml
	$(BIN)/python -m pytest
	$(SPHINX)

lint: env
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/snakefmt --check Snakefile workflow

# The documentation site: docs/ (Markdown pages, MyST) and the API reference from the numpydoc
# docstrings, built offline into docs/_build/html; any warning fails the build.
SPHINX = $(BIN)/python -m sphinx -b html -W --keep-going -q -E -d docs/_build/doctrees docs docs/_build/html
docs: env
	$(SPHINX)
	@echo "the site: docs/_build/html/index.html"

# The rule graph in the README and the docs (needs graphviz's dot: apt-get install graphviz),
# drawn from the catalog test configuration.
rulegraph: env
	$(BIN)/snakemake --directory .test --rulegraph | dot -Tsvg -o docs/images/rulegraph.svg

demo: env
	$(BIN)/python workflow/scripts/demo.py --cores all

clean-demo:
	rm -rf demo
