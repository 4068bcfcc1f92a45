"""The real small tutor (the `smol_tutor` fixture: SmolLM2-135M-Instruct LoRA-trained with
configs/smollm2-135m-cpu.yaml on data/sample, then exported) has learned the tutor's turn: on ten
prompts it never saw, greedy decoding stops at `<|im_end|>` on at least 9 and asks a question on
at least 8, clearly more often than its untuned base with the same system prompt. This is the test
that the loss mask keeps the end-of-turn token with a base that ships pad == eos; the exported
model carries a pad distinct from eos and an eos that includes `<|im_end|>`."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

UNSEEN = [
    "How do I find the area of a triangle?",
    "Can you just tell me what photosynthesis produces?",
    "I think 7 x 8 is 54, right?",
    "Why is the sky blue?",
    "what's the derivative of x^2",
    "Why is 1 not a prime number?",
    "How do I solve 3x + 5 = 20?",
    "What caused the fall of the Roman Empire?",
    "Is a tomato a fruit or a vegetable?",
    "How many sides does a hexagon have?",
]
LIMIT = 96
# The session fixture trains SmolLM2 (about 3 min on 2 idle cores; far longer on a loaded machine).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]


def greedy_replies(model_dir, system_prompt: str, prompts=UNSEEN) -> list[tuple[str, bool]]:
    """(reply, stopped at <|im_end|>) per prompt, in one left-padded greedy batch."""
    tok = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    if tok.pad_token_id is None or tok.pad_token_id == tok.eos_token_id:
        tok.pad_token = "<|endoftext|>"  # the untuned base ships pad == eos
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    texts = [
        tok.apply_chat_template(
            [{"role": "system", "content": system_prompt}, {"role": "user", "content": p}],
            tokenize=False,
            add_generation_prompt=True,
        )
        for p in prompts
    ]
    inputs = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(
            **inputs,
            max_new_tokens=LIMIT,
            do_sample=False,
            use_cache=True,
            eos_token_id=im_end,
            pad_token_id=tok.pad_token_id,
        )
    replies = []
    for row in out[:, inputs["input_ids"].shape[1] :].tolist():
        stopped = im_end in row
        row = row[: row.index(im_end)] if stopped else row
        replies.append((tok.decode(row, skip_special_tokens=True).strip(), stopped))
    return replies


def test_real_tutor_stops_and_asks_on_unseen_prompts(smol_tutor, smol_base, sample_file):
    seen = sample_file.read_text()
    assert not any(p in seen for p in UNSEEN)
    system_prompt = json.loads((smol_tutor / "tutor.json").read_text())["system_prompt"]
    tuned = greedy_replies(smol_tutor, system_prompt)
    base = greedy_replies(smol_base, system_prompt)
    shown = "\n".join(
        f"{p!r}\n  tuned: {t!r}\n  base:  {b!r}"
        for p, t, b in zip(UNSEEN, tuned, base, strict=True)
    )
    tuned_stops, base_stops = sum(s for _, s in tuned), sum(s for _, s in base)
    tuned_asks, base_asks = sum("?" in r for r, _ in tuned), sum("?" in r for r, _ in base)
    assert tuned_stops >= 9, shown
    assert tuned_asks >= 8, shown
    assert tuned_asks + tuned_stops >= base_asks + base_stops + 4, shown


def test_real_tutor_export_has_distinct_pad_and_end_of_turn_eos(smol_tutor):
    tok = AutoTokenizer.from_pretrained(smol_tutor)
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert tok.pad_token == "<|endoftext|>" and tok.pad_token_id != im_end
    gen = json.loads((smol_tutor / "generation_config.json").read_text())
    eos = gen["eos_token_id"] if isinstance(gen["eos_token_id"], list) else [gen["eos_token_id"]]
    assert eos[0] == im_end and gen["pad_token_id"] == tok.pad_token_id
    tutor = json.loads((smol_tutor / "tutor.json").read_text())
    assert tutor["pad_token"] == "<|endoftext|>" and tutor["end_of_turn"] == "<|im_end|>"
    assert json.loads((smol_tutor / "verify.json").read_text())["stopped"]


def test_real_tutor_merged_equals_base_plus_adapter(smol_tutor, smol_base):
    from peft import PeftModel

    tok = AutoTokenizer.from_pretrained(smol_tutor)
    ids = tok("A student asks why 0.5 is bigger than 0.25.", return_tensors="pt")
    merged = AutoModelForCausalLM.from_pretrained(smol_tutor).eval()
    base = AutoModelForCausalLM.from_pretrained(smol_base)
    with_adapter = PeftModel.from_pretrained(base, smol_tutor / "adapter").eval()
    with torch.no_grad():
        a, b = merged(**ids).logits, with_adapter(**ids).logits
    assert torch.allclose(a, b, atol=1e-3), (a - b).abs().max()
