"""The GGUF export's checks that need no llama.cpp (they run in `make test`): GGUF type parsing
and the `export.gguf` config key, the one-line errors for a missing gguf extra or converter, a
truncated or foreign safetensors input and a dir that is not an export, unpacking the converter
from an sdist-shaped tarball, and the Ollama Modelfile's template, stops, system prompt and
sampling. The conversion itself is tested in test_trainer_gguf_export.py (make test-gguf)."""

from __future__ import annotations

import io
import sys
import tarfile

import pytest

from trainer import gguf_tools
from trainer.config import ConfigError, load_config
from trainer.gguf_card import DEFAULT_SAMPLING, OLLAMA_TEMPLATE, modelfile
from trainer.gguf_export import check_export, check_safetensors, parse_types
from trainer.gguf_tools import GGUFError
from tutor.cli import main
from tutor.paths import CONFIGS_DIR


def test_types_are_parsed_and_checked():
    assert parse_types(" F16,q4_k_m,f16 ") == ["f16", "q4_k_m"]
    assert parse_types(None) == [] and parse_types(["q8_0"]) == ["q8_0"]
    with pytest.raises(GGUFError, match=r"--gguf q4_k_x: unknown type \(choose from f16, bf16"):
        parse_types("f16,q4_k_x")
    cfg = load_config(CONFIGS_DIR / "smollm2-135m-cpu.yaml", ["export.gguf=[f16, q4_k_m]"], env={})
    assert cfg.export.gguf == ["f16", "q4_k_m"]
    with pytest.raises(ConfigError, match="export.gguf"):
        load_config(None, ["export.gguf=[q9]"], env={})


def test_missing_extra_is_one_line_naming_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp -> ImportError
    with pytest.raises(GGUFError) as err:
        gguf_tools.require_llama_cpp()
    assert "gguf extra" in str(err.value) and ".[gguf]" in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_converter_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv(gguf_tools.ENV_DIR, str(tmp_path))
    with pytest.raises(GGUFError, match="converter is not installed .*trainer.gguf_tools install"):
        gguf_tools.converter_dir()


def test_export_cli_rejects_an_unknown_type_before_merging(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "adapter").mkdir(parents=True)
    (run / "adapter" / "adapter_config.json").write_text("{}")
    (run / "config.yaml").write_text(load_config(None, [], env={}).to_yaml())
    assert main(["export", "--run", str(run), "--gguf", "f16,q3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("socratic: error: --gguf q3: unknown type") and "\n" not in err
    assert not (run / "export").exists()


def _safetensors(path):
    import torch
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(64, 64), "b": torch.ones(8)}, str(path))
    return path


def test_safetensors_truncated_or_foreign_is_one_line(tmp_path):
    good = _safetensors(tmp_path / "model.safetensors")
    check_safetensors(good)
    data = good.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) - 100])
    with pytest.raises(
        GGUFError, match=r"truncated or corrupt safetensors \(\d+ bytes, its header"
    ):
        check_safetensors(cut)
    head = tmp_path / "head.safetensors"
    head.write_bytes(data[:20])
    with pytest.raises(GGUFError, match="not a safetensors file"):
        check_safetensors(head)
    foreign = tmp_path / "foreign.safetensors"
    foreign.write_bytes(b"GGUF" + bytes(4000))
    with pytest.raises(GGUFError, match="not a safetensors file"):
        check_safetensors(foreign)


def test_a_dir_that_is_not_an_export_is_refused(tmp_path):
    _safetensors(tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(GGUFError, match="not a socratic export \\(no tutor.json\\)"):
        check_export(tmp_path)


def _sdist(path, names):
    with tarfile.open(path, "w:gz") as tar:
        for name in names:
            body = f"# {name}\n".encode()
            info = tarfile.TarInfo(f"llama_cpp_python-0.3.36/{name}")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return path


def test_converter_is_unpacked_from_the_sdist_and_nothing_else(tmp_path):
    names = [
        "vendor/llama.cpp/convert_hf_to_gguf.py",
        "vendor/llama.cpp/conversion/__init__.py",
        "vendor/llama.cpp/gguf-py/gguf/__init__.py",
        "vendor/llama.cpp/src/llama.cpp",
        "llama_cpp/llama.py",
    ]
    out = tmp_path / "tree"
    gguf_tools._extract_converter(_sdist(tmp_path / "s.tar.gz", names), out)
    found = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert found == ["conversion/__init__.py", "convert_hf_to_gguf.py", "gguf-py/gguf/__init__.py"]
    with pytest.raises(GGUFError, match="no vendor/llama.cpp/convert_hf_to_gguf.py inside"):
        gguf_tools._extract_converter(_sdist(tmp_path / "o.tar.gz", names[3:]), tmp_path / "o")
    (tmp_path / "bad.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(GGUFError, match="not a readable llama-cpp-python sdist"):
        gguf_tools._extract_converter(tmp_path / "bad.tar.gz", tmp_path / "b")


def _info(system="Ask, do not tell.", generation=None):
    return {
        "tutor": {"system_prompt": system},
        "end_of_turn": "<|im_end|>",
        "n_ctx_train": 8192,
        "generation": generation or {},
    }


def test_modelfile_stops_at_the_end_of_turn_with_the_tutor_prompt():
    text = modelfile("tutor-Q4_K_M.gguf", _info())
    lines = text.splitlines()
    assert "FROM ./tutor-Q4_K_M.gguf" in lines
    assert f'TEMPLATE """{OLLAMA_TEMPLATE}"""' in text
    assert 'SYSTEM """Ask, do not tell."""' in lines
    assert 'PARAMETER stop "<|im_end|>"' in lines and "PARAMETER num_ctx 4096" in lines
    assert {f"PARAMETER {k} {v}" for k, v in DEFAULT_SAMPLING.items()} <= set(lines)
    # ChatML turns, the reply opened by the assistant header, each turn closed by <|im_end|>
    for part in ("<|im_start|>system\n{{ .System }}<|im_end|>\n", "<|im_start|>assistant\n"):
        assert part in OLLAMA_TEMPLATE
    assert OLLAMA_TEMPLATE.count("<|im_end|>") == 3


def test_modelfile_sampling_follows_the_export_and_refuses_unquotable_prompts():
    sampled = {"do_sample": True, "temperature": 0.6, "top_p": 0.9, "repetition_penalty": 1.1}
    lines = modelfile("t.gguf", _info(generation=sampled)).splitlines()
    assert "PARAMETER temperature 0.6" in lines and "PARAMETER repeat_penalty 1.1" in lines
    assert not any(line.startswith("PARAMETER top_k") for line in lines)
    with pytest.raises(GGUFError, match='contains """'):
        modelfile("t.gguf", _info(system='Say """hi"""'))
