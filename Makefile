# socratic-tutor: `make demo` and `make test` set up .venv by themselves.
#   make demo    train the tiny tutor on CPU, export, serve it, chat once, evaluate (a few minutes)
#   make test    the whole test suite (CPU, offline)
#   make bench   the CPU benchmarks and the peer comparisons (TRL, LiteLLM, nginx, vLLM), quick
#   make lint    ruff check + format check
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
# torch's CPU build; pass extra pip arguments (e.g. an index URL) in TORCH_PIP_ARGS.
TORCH_SPEC     ?= torch==2.13.0
TORCH_PIP_ARGS ?=
EXTRAS ?= train,cpu-serve,serve,eval,datagen,dev

.PHONY: venv demo test bench lint format clean

$(STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[$(EXTRAS)]"
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

demo: venv
	$(BIN)/socratic demo

test: venv
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

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
