"""Download a model from the Hugging Face Hub and print its local directory (last stdout line).

The serving image uses it to bake a model at build time and to pull one at start-up into HF_HOME,
which sits on the RunPod network volume when one is mounted (so the next worker starts warm):

    python docker/fetch_model.py me/socratic-tutor                       # into the HF cache
    python docker/fetch_model.py me/socratic-tutor --local-dir /models/baked --revision main

A private repo needs HF_TOKEN in the environment (never on the command line).
"""

from __future__ import annotations

import argparse
import sys

# What vLLM and the gateway read: weights, configs, tokenizer, chat template, tutor.json.
ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model", "*.tiktoken"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo_id", help="Hub model repo, e.g. me/socratic-tutor")
    parser.add_argument("--revision", default=None, help="branch, tag or commit (default: main)")
    parser.add_argument(
        "--local-dir", default=None, help="copy the files here (default: the HF cache in HF_HOME)"
    )
    args = parser.parse_args(argv)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    try:
        path = snapshot_download(
            args.repo_id,
            revision=args.revision,
            local_dir=args.local_dir,
            allow_patterns=ALLOW_PATTERNS,
        )
    except (RepositoryNotFoundError, HfHubHTTPError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"fetch_model: error: {args.repo_id}: {first}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
