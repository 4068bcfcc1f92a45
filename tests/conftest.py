"""Shared fixtures: repository paths, the external MathDial file, and the tiny random-weight base model.

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
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight tiny Qwen2 model + tokenizer trained on the sample data (untrained tutor)."""
    from trainer.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-base"))
