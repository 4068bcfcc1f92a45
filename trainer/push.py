"""Push an export to the Hugging Face Hub, and write its model card.

Merged weights go to `REPO_ID`, the adapter alone to `REPO_ID-lora`, the GGUF files (when asked)
to `REPO_ID-gguf`. Needs `HF_TOKEN`; transient
errors (connection problems, HTTP 429 and 5xx) are retried with exponential backoff, anything else
fails at once. `HF_ENDPOINT` points huggingface_hub at another server (the tests use a local one).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from trainer.config import Config

T = TypeVar("T")
BASE_DELAY = 2.0  # seconds before the first retry; doubles each time


def push_export(
    export_dir: str | Path,
    repo_id: str,
    private: bool = False,
    attempts: int = 4,
    gguf: bool = False,
) -> dict[str, str]:
    """Upload merged model to `repo_id`, `adapter/` to `repo_id-lora` and, with `gguf`, `gguf/`
    (files, Modelfile, card; not the conversion log) to `repo_id-gguf`; returns commit URLs."""
    from huggingface_hub import HfApi

    token = os.environ.get("HF_TOKEN")
    if not token:
        raise ValueError("pushing to the Hub needs HF_TOKEN in the environment")
    export = Path(export_dir)
    api = HfApi(token=token, endpoint=os.environ.get("HF_ENDPOINT"))  # read at call time
    urls = {}
    targets = [
        (repo_id, export, ["adapter/*", "gguf/*", "*.partial/*"]),
        (f"{repo_id}-lora", export / "adapter", None),
    ]
    if gguf:
        targets.append((f"{repo_id}-gguf", export / "gguf", ["*.log"]))
    for repo, folder, ignore in targets:
        retry(lambda r=repo: api.create_repo(r, private=private, exist_ok=True), attempts)
        info = retry(
            lambda r=repo, f=folder, i=ignore: api.upload_folder(
                repo_id=r, folder_path=f, ignore_patterns=i, commit_message="Upload socratic tutor"
            ),
            attempts,
        )
        urls[repo] = str(getattr(info, "commit_url", info))
        print(f"pushed {folder} -> {repo}")
    return urls


def is_transient(err: BaseException) -> bool:
    """Connection problems, timeouts, HTTP 429 and 5xx are worth retrying."""
    import httpx

    if isinstance(err, httpx.TransportError | ConnectionError | TimeoutError):
        return True
    response = getattr(err, "response", None)
    status = getattr(response, "status_code", None)
    return status is not None and (status == 429 or status >= 500)


def retry(fn: Callable[[], T], attempts: int = 4) -> T:
    """Call `fn`, retrying transient errors after BASE_DELAY * 2**n seconds."""
    for n in range(attempts):
        try:
            return fn()
        except Exception as err:
            if n == attempts - 1 or not is_transient(err):
                raise
            delay = BASE_DELAY * 2**n
            print(f"hub: {type(err).__name__}: {err}; retrying in {delay:.0f} s")
            time.sleep(delay)
    raise AssertionError("unreachable")


def model_card(
    cfg: Config, summary: dict[str, Any], verify: dict[str, Any], adapter_only=False
) -> str:
    """A Hub model card: base model, data, hyperparameters, losses, verification, eval results."""
    data = summary.get("data", {})
    conv = data.get("conversations", {})
    kind = "LoRA adapter" if adapter_only else "merged (16-bit) model"
    lines = [
        "---",
        f"base_model: {cfg.model.name}",
        "library_name: " + ("peft" if adapter_only else "transformers"),
        "tags: [socratic-tutor, lora, sft" + (", qlora" if cfg.model.load_in_4bit else "") + "]",
        "---",
        f"# Socratic tutor ({kind})",
        "",
        "Guides students with questions instead of handing over answers. Use the chat template "
        "with the system prompt stored in `tutor.json`; generation ends at `<|im_end|>`.",
        "",
        "## Training",
        f"- Base model: `{cfg.model.name}`"
        + (" (4-bit NF4 QLoRA)" if cfg.model.load_in_4bit else ""),
        f"- Data: {', '.join(Path(f).name for f in data.get('files', []))} — "
        f"{conv.get('train', '?')} train / {conv.get('eval', '?')} eval conversations, "
        f"{data.get('trained_tokens', '?')} trained tokens (assistant turns + `<|im_end|>` only)",
        f"- LoRA: r={cfg.lora.r}, alpha={cfg.lora.alpha}, dropout={cfg.lora.dropout}, "
        f"targets {', '.join(cfg.lora.target_modules)}",
        f"- Optimisation: lr {cfg.train.learning_rate}, {cfg.train.lr_scheduler} schedule, warmup "
        f"{cfg.train.warmup_ratio}, batch {cfg.train.per_device_batch_size} x accumulation "
        f"{cfg.train.grad_accum}, {cfg.train.epochs} epochs, max length {cfg.data.max_seq_len}, "
        f"packing {'on' if cfg.data.packing else 'off'}, grad clip {cfg.train.max_grad_norm}",
        f"- Steps {summary.get('steps')}, training loss {summary.get('first_loss')} -> "
        f"{summary.get('final_loss')}, eval loss {summary.get('eval_loss')}",
        "",
        "## Verification",
        f"Greedy reply to a held-out prompt ({verify.get('new_tokens')} tokens, "
        f"{'stopped at <|im_end|>' if verify.get('stopped') else 'did not stop'}):",
        "",
        f"> {verify.get('prompt')}",
        "",
        "```",
        str(verify.get("reply", "")),
        "```",
    ]
    evals = summary.get("evaluation")
    if evals:
        lines += ["", "## Evaluation", "", "```json", str(evals), "```"]
    return "\n".join(lines) + "\n"
