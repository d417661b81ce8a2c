# cat-prom: every target creates .venv on first use and is idempotent.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test bench install shell clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/cat-prom serve

# A shell with .venv/bin first on PATH, so that `cat-prom` and `python` are the project's (exit to leave).
# Without make: `. .venv/bin/activate`, or call .venv/bin/cat-prom directly.
shell: $(STAMP)
	@echo "cat-prom is on PATH in this shell ($(CURDIR)/$(VENV)/bin); type exit to leave."
	@VIRTUAL_ENV="$(CURDIR)/$(VENV)" PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $${SHELL:-/bin/sh} -i

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) benchmarks/engine_latency.py

clean:
	rm -rf $(VENV) build *.egg-info
