"""Tokenisation and loss mask with the official Qwen2.5 chat template (TRL's copy, on the tiny
tokenizer): labelled tokens decode to exactly each assistant content + `<|im_end|>`; truncation
drops examples with nothing left to learn and counts them; best-fit-decreasing packing keeps
every conversation whole; a packed batch gives the same loss as the same conversations padded;
pad == eos gets a distinct existing pad (refused when none is spare); the real-token share of padded batches counts each batch to its longest."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainer.data import (
    IGNORE,
    Collator,
    encode_all,
    encode_conversation,
    pack_examples,
    padded_share,
)
from trainer.tiny import qwen25_chat_template
from trainer.train import check_special_tokens, distinct_pad

CONV = [
    {"role": "system", "content": "You are a Socratic tutor."},
    {"role": "user", "content": "What is 3/4 + 1/6?"},
    {"role": "assistant", "content": "What common denominator could both fractions share?"},
    {"role": "user", "content": "12? so 9/12 + 2/12"},
    {
        "role": "assistant",
        "content": "Good — and what do you get when you add them?\nTake your time.",
    },
    {"role": "user", "content": "11/12 ✓"},
    {"role": "assistant", "content": "Exactly: 11/12. ¿Ves por qué funciona?"},
]


@pytest.fixture(scope="module")
def tok(tiny_base):
    t = AutoTokenizer.from_pretrained(tiny_base)
    assert t.chat_template == qwen25_chat_template()  # the official Qwen2.5 template
    return t


def labelled_runs(ids, labels):
    """Contiguous runs of labelled token ids."""
    runs, cur = [], []
    for i, lab in zip(ids, labels, strict=True):
        if lab == IGNORE:
            if cur:
                runs.append(cur)
            cur = []
        else:
            assert lab == i
            cur.append(i)
    return runs + ([cur] if cur else [])


def test_mask_is_exactly_assistant_content_plus_im_end(tok):
    ids, labels = encode_conversation(tok, CONV)
    assert tok.decode(ids) == tok.apply_chat_template(CONV, tokenize=False)
    runs = [tok.decode(r) for r in labelled_runs(ids, labels)]
    expected = [m["content"] + "<|im_end|>" for m in CONV if m["role"] == "assistant"]
    assert runs == expected
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert sum(lab == im_end for lab in labels) == 3  # one per assistant turn, never system/user


def test_generation_prompt_matches_the_masked_prefix(tok):
    ids, labels = encode_conversation(tok, CONV[:3])
    first = labels.index(next(lab for lab in labels if lab != IGNORE))
    prompt = tok.apply_chat_template(CONV[:2], tokenize=False, add_generation_prompt=True)
    assert tok.decode(ids[:first]) == prompt  # what inference feeds before generating


def test_truncation_keeps_or_drops_and_counts(tok):
    short = CONV[:3]
    n_prompt = encode_conversation(tok, CONV[:2] + [{"role": "assistant", "content": "x"}])[
        1
    ].index(tok.convert_tokens_to_ids("x"))
    examples, stats = encode_all(tok, [CONV, short], max_len=n_prompt)  # only prompts fit
    assert (stats.dropped, stats.truncated, len(examples)) == (2, 0, 0)
    examples, stats = encode_all(tok, [CONV, short], max_len=n_prompt + 3)
    assert (stats.dropped, stats.truncated, len(examples)) == (0, 2, 2)
    assert all(len(e) == n_prompt + 3 for e in examples)


def test_best_fit_decreasing_keeps_conversations_whole(tok, sample_file):
    convs = [json.loads(line)["conversations"] for line in sample_file.read_text().splitlines()]
    examples, stats = encode_all(tok, convs[:30], max_len=512)
    bins = pack_examples(examples, capacity=512)
    assert len(bins) < len(examples) and all(len(b) <= 512 for b in bins)
    assert sorted(n for b in bins for n in b.seq_lengths) == sorted(len(e) for e in examples)
    originals = sorted(tuple(e.input_ids) for e in examples)
    pieces = []
    for b in bins:
        start = 0
        for n in b.seq_lengths:
            pieces.append(tuple(b.input_ids[start : start + n]))
            start += n
    assert sorted(pieces) == originals


def test_packed_loss_equals_padded_loss(tiny_base, tok, sample_file):
    convs = [json.loads(line)["conversations"] for line in sample_file.read_text().splitlines()]
    examples, _ = encode_all(tok, convs[:6], max_len=512)
    model = AutoModelForCausalLM.from_pretrained(tiny_base, attn_implementation="sdpa").eval()
    packed = Collator(tok.pad_token_id, packed=True)(pack_examples(examples, 1024))
    padded = Collator(tok.pad_token_id, packed=False)(examples)
    assert packed["input_ids"].shape[0] == 1 and "attention_mask" not in packed
    assert (padded["labels"] != IGNORE).sum() == (packed["labels"] != IGNORE).sum()
    with torch.no_grad():
        loss_packed = model(**packed).loss
        loss_padded = model(**padded).loss
        # without restarting positions the conversations would see each other
        leaky = {k: v for k, v in packed.items() if k != "position_ids"}
        loss_leaky = model(**leaky).loss
    assert torch.allclose(loss_packed, loss_padded, atol=1e-4), (loss_packed, loss_padded)
    assert not torch.allclose(loss_leaky, loss_padded, atol=1e-3)


def test_pad_equal_to_eos_gets_a_distinct_pad(tiny_base, capsys):
    t = AutoTokenizer.from_pretrained(tiny_base)
    t.pad_token = t.eos_token
    check_special_tokens(t)
    assert t.eos_token == "<|im_end|>" and t.pad_token == "<|endoftext|>"
    assert t.pad_token_id != t.eos_token_id
    assert "pad '<|im_end|>' -> '<|endoftext|>'" in capsys.readouterr().out
    ids, labels = encode_conversation(t, CONV)  # the end of turn keeps its labels
    assert labels.count(t.eos_token_id) == 3


def test_pad_equal_to_eos_without_a_spare_token_is_refused(tiny_base):
    t = AutoTokenizer.from_pretrained(tiny_base)
    t.eos_token = t.pad_token = "<|endoftext|>"  # the only spare special token is now eos
    with pytest.raises(ValueError, match="no unused special token to pad with"):
        distinct_pad(t)


def test_padded_share_counts_each_batch_to_its_longest():
    # batches [4, 2] -> 2 x 4 and [3] -> 1 x 3: 9 real tokens of 11
    assert padded_share([4, 2, 3], 2) == pytest.approx(9 / 11)
    assert padded_share([5, 5], 2) == 1.0 and padded_share([], 2) == 1.0
