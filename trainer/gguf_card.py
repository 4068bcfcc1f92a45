"""The text files beside the GGUF export: the Ollama `Modelfile` and the Hub model card.

    from trainer.gguf_card import modelfile, gguf_model_card   # used by trainer.gguf_export

The Modelfile pins what makes a GGUF stop at the end of the tutor's turn in Ollama: a ChatML
TEMPLATE and `PARAMETER stop "<|im_end|>"` (a GGUF run without them can talk on forever), plus the
system prompt the tutor was trained with and sampling defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainer.gguf_tools import GGUFError

# Ollama's Go template for ChatML, the layout of the Qwen2.5 / SmolLM2 chat templates: optional
# system turn, then user/assistant turns, then the assistant's header for the reply.
OLLAMA_TEMPLATE = (
    "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
    '{{ range .Messages }}{{ if eq .Role "user" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n'
    "<|im_start|>assistant\n"
    '{{ else if eq .Role "assistant" }}{{ .Content }}<|im_end|>\n{{ end }}{{ end }}'
)
# When the export's generation_config.json sets no sampling: Qwen2.5-Instruct's published values.
DEFAULT_SAMPLING = {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "repeat_penalty": 1.05}
# generation_config.json key -> Ollama PARAMETER name
SAMPLING_KEYS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "repetition_penalty": "repeat_penalty",
}
MAX_NUM_CTX = 4096  # tokens of dialogue Ollama keeps, capped by the model's trained context


def sampling(generation: dict[str, Any]) -> dict[str, float]:
    """Ollama sampling parameters: the export's generation_config.json when it samples, else defaults."""
    own = {
        name: generation[k] for k, name in SAMPLING_KEYS.items() if generation.get(k) is not None
    }
    return own if generation.get("do_sample") and own else dict(DEFAULT_SAMPLING)


def modelfile(gguf_name: str, info: dict[str, Any]) -> str:
    """An Ollama Modelfile for `gguf_name` (a file beside it): template, stops, system, sampling."""
    system = info["tutor"]["system_prompt"]
    if '"""' in system:
        raise GGUFError('the system prompt contains """, which an Ollama Modelfile cannot quote')
    end = info["end_of_turn"]
    num_ctx = min(MAX_NUM_CTX, int(info.get("n_ctx_train") or MAX_NUM_CTX))
    lines = [
        "# Ollama: ollama create socratic-tutor -f Modelfile && ollama run socratic-tutor",
        f"FROM ./{gguf_name}",
        f'TEMPLATE """{OLLAMA_TEMPLATE}"""',
        f'SYSTEM """{system}"""',
        f'PARAMETER stop "{end}"',
        'PARAMETER stop "<|im_start|>"',
        *(f"PARAMETER {k} {v}" for k, v in sampling(info["generation"]).items()),
        f"PARAMETER num_ctx {num_ctx}",
    ]
    return "\n".join(lines) + "\n"


def gguf_model_card(manifest: dict[str, Any], info: dict[str, Any]) -> str:
    """The `<repo>-gguf` model card: files with sizes, verification and speed, how to run them."""
    rows = [
        f"| `{e['file']}` | {t} | {e['bytes'] / 1e6:.0f} MB | "
        f"{'stops at ' + info['end_of_turn'] if e['verify']['stopped'] else 'did not stop'} "
        f"({e['verify']['new_tokens']} tokens) | {e['verify']['tokens_per_s']} |"
        for t, e in manifest["files"].items()
    ]
    smallest = min(manifest["files"].values(), key=lambda e: e["bytes"])["file"]
    base = info["tutor"].get("base_model") or ""
    hub_base = "/" in base and not base.startswith(("/", ".", "~")) and not Path(base).exists()
    lines = [
        "---",
        *([f"base_model: {base}"] if hub_base else []),  # a local path is no Hub reference
        "tags: [socratic-tutor, gguf, llama.cpp, ollama]",
        "---",
        "# Socratic tutor (GGUF)",
        "",
        "Guides students with questions instead of handing over answers. Converted with llama.cpp "
        f"(llama-cpp-python {manifest['llama_cpp_python']}); each file carries the ChatML chat "
        f"template and eos `{info['end_of_turn']}`, and was loaded in llama.cpp and checked to "
        "stop at the end of the turn on a held-out prompt (greedy).",
        "",
        "| file | type | size | verify | tokens/s (CPU) |",
        "|---|---|---|---|---|",
        *rows,
        "",
        "## Run it",
        "",
        "```bash",
        "ollama create socratic-tutor -f Modelfile   # the smallest file, template, stop, system prompt",
        "ollama run socratic-tutor",
        f"llama-server -m {smallest} --jinja   # llama.cpp: OpenAI-compatible on :8080",
        "```",
        "",
        "Use the system prompt below (the `SYSTEM` of the Modelfile): the tutor was trained with it.",
        "",
        "```",
        info["tutor"]["system_prompt"],
        "```",
    ]
    return "\n".join(lines) + "\n"
