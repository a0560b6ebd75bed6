# gradest: `make demo` and `make test` create the environment when needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CONSTRAINTS ?= constraints-cpu.txt
STAMP := $(VENV)/.installed

.PHONY: venv test demo bench gpu-check clean

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

# the GPU check (docs/gpu.md): with the Python that holds CUDA builds of torch and jax, no venv
# and no network; GPU_CHECK_OUT names the summary's folder (default results/gpu-check/<time>)
GPU_CHECK_OUT ?=
GPU_CHECK_ARGS ?=
gpu-check:
	$(PYTHON) -m gradest.gpu_check $(if $(GPU_CHECK_OUT),--out $(GPU_CHECK_OUT)) $(GPU_CHECK_ARGS)

clean:
	rm -rf $(VENV) .asv results report
