"""Where the project's bundled files live (configs, data, prompts), and its cache.

The project is installed editable (`pip install -e .`, also in the Docker images), so these resolve
to the checkout; `SOCRATIC_HOME` points them elsewhere.
"""

import os
from pathlib import Path

REPO_ROOT = Path(os.environ.get("SOCRATIC_HOME", Path(__file__).resolve().parents[1]))
CONFIGS_DIR = REPO_ROOT / "configs"
DATA_DIR = REPO_ROOT / "data"
SAMPLE_DIR = DATA_DIR / "sample"
EVAL_DIR = DATA_DIR / "eval"
PROMPTS_DIR = DATA_DIR / "prompts"


def cache_root() -> Path:
    """Downloaded or built things kept between runs: $SOCRATIC_CACHE, else ~/.cache/socratic-tutor."""
    return Path(
        os.environ.get("SOCRATIC_CACHE") or Path.home() / ".cache" / "socratic-tutor"
    ).expanduser()
