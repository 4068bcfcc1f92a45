"""The trained tiny tutor (the `tiny_tutor` fixture: configs/tiny-cpu.yaml, full recipe) has
learned to end its turn: on prompts it never saw, greedy decoding in eval mode with the KV cache
on stops with `<|im_end|>` well before the token limit, and it replies with questions. This is the
test that the loss mask includes the end-of-turn token."""

from __future__ import annotations

import json

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

UNSEEN = [
    "How do I find the area of a triangle?",
    "Can you just tell me what photosynthesis produces?",
    "I think 7 x 8 is 54, right?",
    "Why is the sky blue?",
    "what's the derivative of x^2",
]
LIMIT = 128


def test_tiny_tutor_stops_at_im_end_on_unseen_prompts(tiny_tutor, sample_file):
    seen = sample_file.read_text()
    assert not any(p in seen for p in UNSEEN)
    tutor = json.loads((tiny_tutor / "tutor.json").read_text())
    tok = AutoTokenizer.from_pretrained(tiny_tutor)
    model = AutoModelForCausalLM.from_pretrained(tiny_tutor).eval()
    assert not model.is_gradient_checkpointing
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    replies = []
    for prompt in UNSEEN:
        messages = [
            {"role": "system", "content": tutor["system_prompt"]},
            {"role": "user", "content": prompt},
        ]
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        inputs = tok(text, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=LIMIT, do_sample=False, use_cache=True)
        new = out[0, inputs["input_ids"].shape[1] :].tolist()
        assert new[-1] == im_end and len(new) < LIMIT * 3 // 4, (prompt, tok.decode(new))
        replies.append(tok.decode(new, skip_special_tokens=True))
    assert sum("?" in r for r in replies) >= len(replies) // 2 + 1, replies
