"""Build the tiny offline base model: a random-weight Qwen2-architecture model and a byte-level
BPE tokenizer trained on the bundled sample data, with Qwen's special tokens and the official
Qwen2.5 chat template. Nothing is downloaded; the result loads with plain transformers.

    python -m trainer.tiny OUT_DIR      # or: build_tiny_model("runs/tiny-base")

Why these sizes: with the default init (std 0.02) LoRA on a random model learns almost nothing;
hidden 128, 2 layers and `initializer_range=0.1` learn to ask questions and to stop in ~30 s of CPU.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from tutor.paths import SAMPLE_DIR
from tutor.prompts import TUTOR_SYSTEM_PROMPT

# Qwen2.5's special tokens, in Qwen's order (ids 0, 1, 2 here instead of 151643..151645).
PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = [PAD_TOKEN, IM_START, IM_END]
_MARKER = "tiny_model.json"


@dataclass(frozen=True)
class TinySpec:
    """Shape of the tiny model; the defaults are the ones known to learn on 2 CPU cores."""

    vocab_size: int = 2048
    hidden_size: int = 128
    intermediate_size: int = 352
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 4096
    initializer_range: float = 0.1
    seed: int = 0


def qwen25_chat_template() -> str:
    """The official Qwen2.5 chat template, from the copy TRL ships (no network needed)."""
    from trl.chat_template_utils import qwen2_5_chat_template

    return qwen2_5_chat_template


def sample_texts(sample_dir: Path = SAMPLE_DIR) -> list[str]:
    """All message contents of the bundled sample data, plus the tutor prompt."""
    texts = [TUTOR_SYSTEM_PROMPT]
    for path in sorted(sample_dir.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                msgs = record.get("conversations") or record.get("messages") or []
                texts.extend(m["content"] for m in msgs)
    return texts


def build_tokenizer(texts: Iterable[str], vocab_size: int = 2048):
    """Train a byte-level BPE tokenizer (Qwen2-style pre-tokenisation) with Qwen's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=IM_END,
        pad_token=PAD_TOKEN,
        additional_special_tokens=[IM_START, IM_END],
        model_max_length=32768,
        padding_side="right",
    )
    hf.chat_template = qwen25_chat_template()
    return hf


def build_tiny_model(
    out_dir: str | Path, spec: TinySpec | None = None, texts: Iterable[str] | None = None
) -> Path:
    """Write tokenizer + random-weight Qwen2 model to `out_dir` (reused when already built with `spec`)."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    spec = spec or TinySpec()
    out = Path(out_dir)
    marker = out / _MARKER
    if marker.exists() and json.loads(marker.read_text()) == asdict(spec):
        return out
    tokenizer = build_tokenizer(texts if texts is not None else sample_texts(), spec.vocab_size)
    pad_id, eos_id = tokenizer.convert_tokens_to_ids([PAD_TOKEN, IM_END])
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=spec.max_position_embeddings,
        initializer_range=spec.initializer_range,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
    )
    torch.manual_seed(spec.seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=[eos_id, pad_id], pad_token_id=pad_id, bos_token_id=None, do_sample=False
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    marker.write_text(json.dumps(asdict(spec), indent=2))
    return out


def main() -> None:
    p = argparse.ArgumentParser(
        description="Build the tiny random-weight Qwen2 model and tokenizer."
    )
    p.add_argument(
        "out_dir", help="directory to write (reused when already built with the same shape)"
    )
    print(build_tiny_model(p.parse_args().out_dir))


if __name__ == "__main__":
    main()
