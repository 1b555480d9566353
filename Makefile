# The few commands a person types. Each creates .venv and installs into it when needed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
LOCK   := requirements/dev.lock

.PHONY: dev dev-shops doctor doctor-shops test lint bench lock clean

# The newest pip (the installer only), exactly the locked versions (hash-checked), then the project itself on top,
# built with the locked setuptools.
$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required (found " + sys.version.split()[0] + ")")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -U pip
	$(PY) -m pip install -q --disable-pip-version-check --require-hashes -r $(LOCK)
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@$(PY) -m pip check >/dev/null || { $(PY) -m pip check; echo "$(LOCK) is behind pyproject.toml: run make lock"; exit 1; }
	@touch $(STAMP)

dev: $(STAMP)  ## run the BFF + Shopify stand-in + demo storefront on localhost
	$(PY) -m devkit.dev

doctor: $(STAMP)  ## python -m app doctor against make dev's settings (starts the stand-in if make dev isn't running)
	$(PY) -m devkit.dev --doctor

dev-shops: $(STAMP)  ## two shops of one BFF side by side: Snowboards at localhost:3000, Surfboards at 127.0.0.1:3000
	$(PY) -m devkit.dev --shops

doctor-shops: $(STAMP)  ## python -m app doctor against make dev-shops' settings, every shop checked
	$(PY) -m devkit.dev --shops --doctor

test: $(STAMP) lint  ## lint, type-check, then the whole suite against a throwaway Redis
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

bench: $(STAMP)
	$(PY) -m bench.run

lock: $(STAMP)  ## refresh requirements/*.lock from pyproject.toml (UPGRADE=1: the newest versions allowed)
	$(PY) -m devkit.lock $(if $(UPGRADE),--upgrade)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
