# gradest: `make demo` and `make test` create the environment when needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CONSTRAINTS ?= constraints-cpu.txt
# where torch comes from: PyTorch's CPU wheels (the default index's torch is the CUDA build, several
# GB); on a GPU machine e.g. TORCH_INDEX=https://download.pytorch.org/whl/cu128
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
STAMP := $(VENV)/.installed

.PHONY: venv test demo bench gpu-check clean

venv: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS) examples/gradest-antithetic/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, alone: a wheel pip already has at hand (its find-links), else TORCH_INDEX's
	$(PY) -m pip install --quiet --no-deps --no-index -c $(CONSTRAINTS) torch 2>/dev/null || \
		$(PY) -m pip install --quiet --no-deps -c $(CONSTRAINTS) --extra-index-url $(TORCH_INDEX) torch
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) -e ".[all]"
	# the example plugin, so that a plugin shows next to the built-ins in `make demo`
	$(PY) -m pip install --quiet --no-deps -e examples/gradest-antithetic
	touch $(STAMP)

# the timing comparisons run alone, after the rest: a second worker's load would move them
test: venv
	$(PY) -m pytest -n 2 -q -m "not timing"
	$(PY) -m pytest -q -m timing

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
	$(PYTHON) -m tools.gpu_check $(if $(GPU_CHECK_OUT),--out $(GPU_CHECK_OUT)) $(GPU_CHECK_ARGS)

clean:
	rm -rf $(VENV) .asv results report
