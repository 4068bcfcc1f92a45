"""GGUF export end to end on the real small model (make test-gguf; needs the gguf extra and
llama.cpp's converter): a run of configs/smollm2-135m-cpu.yaml whose LoRA adapter is freshly
initialised (B = 0, so the merge is SmolLM2-135M-Instruct itself and every greedy reply is
reproducible; learning is tested elsewhere). `socratic export --gguf f16,q4_k_m` writes both files
with llama.cpp's converter and quantiser; each loads in llama.cpp and stops at <|im_end|> on the
verify prompt (also through llama-cpp-python's own chat API), the f16 reply equals the
transformers reply, the GGUF metadata holds the export's ChatML template and eos = <|im_end|>,
the Modelfile points at the smaller file with the tutor's prompt, a rerun reuses the files,
`export.gguf` alone (q8_0, no 16-bit file asked) works, a file that does not stop is kept but
refused, a truncated or foreign input fails with one line, and the files are pushed to
REPO-gguf (fake Hub on 127.0.0.1) without the token."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from test_trainer_push import hub  # noqa: F401  (fixture: fake Hub on 127.0.0.1)

from trainer.config import TrainError, load_config
from trainer.gguf_export import export_gguf
from trainer.gguf_tools import GGUFError, load
from tutor.cli import main
from tutor.paths import CONFIGS_DIR

pytestmark = pytest.mark.gguf
TYPES = {"f16": 1, "q4_k_m": 15}  # llama_ftype written as general.file_type


# The base SmolLM2 (and both GGUFs) answer this one briefly and stop; 135M at q4_k_m rambles on
# the preset's physics question.
PROMPT = "What is the capital of France?"
EXPORT_ARGS = ["--gguf", "f16,q4_k_m", f"export.verify_prompt={PROMPT}"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run dir of the SmolLM2 preset holding a freshly initialised LoRA adapter (B = 0)."""
    pytest.importorskip("llama_cpp")
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.gguf_import import bundled_model_dir
    from trainer.train import check_special_tokens

    try:
        base = bundled_model_dir()
    except TrainError as e:
        pytest.skip(str(e))
    out = tmp_path_factory.mktemp("smol") / "run"
    cfg = load_config(CONFIGS_DIR / "smollm2-135m-cpu.yaml", [f"model.name={base}"], env={})
    lora = LoraConfig(
        r=cfg.lora.r, lora_alpha=cfg.lora.alpha, target_modules=cfg.lora.target_modules
    )
    get_peft_model(AutoModelForCausalLM.from_pretrained(base), lora).save_pretrained(
        out / "adapter"
    )
    tokenizer = AutoTokenizer.from_pretrained(base)
    check_special_tokens(tokenizer)  # the pad the trainer picks (SmolLM2 ships pad == eos)
    tokenizer.save_pretrained(out / "adapter")
    (out / "config.yaml").write_text(cfg.to_yaml())
    return out


@pytest.fixture(scope="module")
def gguf_dir(run):
    assert main(["export", "--run", str(run), *EXPORT_ARGS]) == 0  # verified: exit 0
    return run / "export" / "gguf"


def manifest(gguf_dir):
    return json.loads((gguf_dir / "gguf.json").read_text())


def test_both_files_load_in_llama_cpp_and_stop_at_end_of_turn(gguf_dir):
    files = manifest(gguf_dir)["files"]
    assert list(files) == ["f16", "q4_k_m"]
    for entry in files.values():
        path = gguf_dir / entry["file"]
        assert path.stat().st_size == entry["bytes"]
        verify = entry["verify"]
        assert verify["stopped"] and 0 < verify["new_tokens"] < verify["max_new_tokens"]
        assert verify["reply"].strip() and verify["tokens_per_s"] > 0
    assert files["q4_k_m"]["bytes"] < 0.6 * files["f16"]["bytes"]
    merged = json.loads((gguf_dir.parent / "verify.json").read_text())
    assert files["f16"]["verify"]["reply"] == merged["reply"]  # llama.cpp == transformers
    left = {p.name for p in gguf_dir.iterdir()}
    assert left == {f["file"] for f in files.values()} | {
        "Modelfile",
        "README.md",
        "gguf.json",
        "convert.log",
    }
    assert not (gguf_dir.parent / ".gguf.partial").exists()


def test_gguf_metadata_has_the_chatml_template_and_im_end_as_eos(gguf_dir):
    from gguf import GGUFReader
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_dir.parent)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    for gtype, entry in manifest(gguf_dir)["files"].items():
        fields = GGUFReader(str(gguf_dir / entry["file"])).fields
        template = fields["tokenizer.chat_template"].contents()
        assert template == tokenizer.chat_template and "<|im_start|>" in template
        assert fields["tokenizer.ggml.eos_token_id"].contents() == im_end
        assert fields["general.file_type"].contents() == TYPES[gtype]


def test_llama_cpp_chat_api_stops_with_the_embedded_template(gguf_dir, run):
    tutor = json.loads((run / "export" / "tutor.json").read_text())
    entry = manifest(gguf_dir)["files"]["q4_k_m"]
    llm = load(gguf_dir / entry["file"])
    try:
        reply = llm.create_chat_completion(
            messages=[
                {"role": "system", "content": tutor["system_prompt"]},
                {"role": "user", "content": entry["verify"]["prompt"]},
            ],
            temperature=0.0,
            max_tokens=entry["verify"]["max_new_tokens"],
        )
    finally:
        llm.close()
    choice = reply["choices"][0]
    assert choice["finish_reason"] == "stop" and "<|im_" not in choice["message"]["content"]


def test_modelfile_and_card(gguf_dir, run):
    files = manifest(gguf_dir)["files"]
    tutor = json.loads((run / "export" / "tutor.json").read_text())
    lines = (gguf_dir / "Modelfile").read_text().splitlines()
    assert f"FROM ./{files['q4_k_m']['file']}" in lines  # the smaller file
    assert f'SYSTEM """{tutor["system_prompt"]}"""' in lines
    assert 'PARAMETER stop "<|im_end|>"' in lines
    assert any(line.startswith('TEMPLATE """{{ if .System }}<|im_start|>system') for line in lines)
    card = (gguf_dir / "README.md").read_text()
    assert all(e["file"] in card for e in files.values())
    assert "ollama create socratic-tutor -f Modelfile" in card


def test_rerun_reuses_the_files(gguf_dir, run, capsys):
    before = {
        e["file"]: (gguf_dir / e["file"]).stat().st_ino
        for e in manifest(gguf_dir)["files"].values()
    }
    assert main(["export", "--run", str(run), *EXPORT_ARGS]) == 0
    assert capsys.readouterr().out.count("reusing") == 3  # the merged export and both files
    after = {
        e["file"]: (gguf_dir / e["file"]).stat().st_ino
        for e in manifest(gguf_dir)["files"].values()
    }
    assert after == before


def _copy_export(src, dst, weights=None):
    """A copy of the export (hard links; tutor.json's export_key says "reuse me")."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("gguf"), copy_function=os.link)
    if weights is not None:
        (dst / "model.safetensors").unlink()
        (dst / "model.safetensors").write_bytes(weights)
    return dst


def test_config_key_alone_and_the_unverified_gate(gguf_dir, run, tmp_path, capsys):
    from trainer.export import UnverifiedExportError, _export_gguf

    out = _copy_export(run / "export", tmp_path / "q8")
    args = ["export", "--run", str(run), "--out", str(out), "export.gguf=[q8_0]"]
    # whether 135M at q8_0 stops on PROMPT is the model's business; here: the mechanics
    assert main([*args, f"export.verify_prompt={PROMPT}", "--allow-unverified"]) == 0
    files = manifest(out / "gguf")["files"]
    assert list(files) == ["q8_0"] and files["q8_0"]["verify"]["new_tokens"] > 0
    ggufs = [p.name for p in (out / "gguf").iterdir() if p.name.endswith(".gguf")]
    assert ggufs == [files["q8_0"]["file"]]  # the temporary f16 source is gone
    # one new token can never end with <|im_end|> after a reply: files kept, error in one line
    cfg = load_config(run / "config.yaml", [f"export.verify_prompt={PROMPT}"], env={})
    cfg.export.verify_max_new_tokens = 1
    with pytest.raises(UnverifiedExportError, match="q8_0 did not stop at <.im_end.> in llama.cpp"):
        _export_gguf(out, cfg, ["q8_0"], allowed=False)
    assert manifest(out / "gguf")["files"]["q8_0"]["verify"]["stopped"] is False


def test_truncated_export_is_one_line(gguf_dir, run, tmp_path, capsys):
    weights = (run / "export" / "model.safetensors").read_bytes()
    cut = _copy_export(run / "export", tmp_path / "cut", weights[: len(weights) // 3])
    capsys.readouterr()
    args = ["export", "--run", str(run), "--out", str(cut), "--gguf", "f16"]
    assert main([*args, f"export.verify_prompt={PROMPT}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "truncated or corrupt safetensors" in err and "\n" not in err
    assert not (cut / "gguf").exists() and not (cut / ".gguf.partial").exists()


def test_foreign_template_and_foreign_or_truncated_gguf_are_one_line(gguf_dir, run, tmp_path):
    other = _copy_export(run / "export", tmp_path / "llama3")
    (other / "chat_template.jinja").unlink()  # a hard link: never write through it
    (other / "chat_template.jinja").write_text(
        "{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n"
        "{{ m.content }}<|eot_id|>{% endfor %}"
    )
    with pytest.raises(GGUFError, match="not ChatML") as err:
        export_gguf(other, ["f16"], "Why?", 8)
    assert "\n" not in str(err.value)
    q4 = gguf_dir / manifest(gguf_dir)["files"]["q4_k_m"]["file"]
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(q4.read_bytes()[: 1 << 20])
    for bad in (truncated, run / "export" / "model.safetensors"):
        with pytest.raises(GGUFError, match="llama.cpp cannot load it") as err:
            load(bad)
        assert "\n" not in str(err.value)


def test_push_sends_the_gguf_files_to_their_own_repo(hub, gguf_dir, run, capsys):  # noqa: F811
    from trainer.push import push_export

    urls = push_export(run / "export", "me/tutor", gguf=True)
    assert set(urls) == {"me/tutor", "me/tutor-lora", "me/tutor-gguf"}
    files = manifest(gguf_dir)["files"]
    pushed = hub.commits["me/tutor-gguf"]
    assert set(pushed) == {e["file"] for e in files.values()} | {
        "Modelfile",
        "README.md",
        "gguf.json",
    }
    assert pushed["Modelfile"] == (gguf_dir / "Modelfile").read_bytes()
    assert not any(p.startswith("gguf/") or p.endswith(".gguf") for p in hub.commits["me/tutor"])
    text = capsys.readouterr().out + "".join(
        body.decode(errors="replace") for name, body in pushed.items() if not name.endswith(".gguf")
    )
    assert "hf_test_token" not in text
