# gradest: `make demo` and `make test` create the environment when needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CONSTRAINTS ?= constraints-cpu.txt
STAMP := $(VENV)/.installed

.PHONY: venv test demo bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS) examples/gradest-antithetic/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) -e ".[all]"
	# the example plugin, so that a plugin shows next to the built-ins in `make demo`
	$(PY) -m pip install --quiet --no-deps -e examples/gradest-antithetic
	touch $(STAMP)

test: venv
	$(PY) -m pytest -n 2 -q

demo: venv
	$(VENV)/bin/gradest run --quick

bench: venv
	$(VENV)/bin/asv machine --yes
	$(VENV)/bin/asv run --quick -E existing:$(abspath $(PY)) --set-commit-hash $$(git rev-parse HEAD)

clean:
	rm -rf $(VENV) .asv results report
