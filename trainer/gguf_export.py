"""GGUF export for laptops: llama.cpp / Ollama / LM Studio files from a merged export, verified.

    socratic export --run runs/smollm2 --gguf f16,q4_k_m       # -> runs/smollm2/export/gguf/
    socratic export --run DIR --gguf q4_k_m --push-to-hub you/socratic-tutor   # + you/socratic-tutor-gguf

llama.cpp's own converter writes the 16/32-bit file (f16, bf16, f32) from the merged safetensors,
its quantiser (`llama_model_quantize`) makes the others (q8_0, q6_k, q5_k_m, q4_k_m, ...) from it
(trainer.gguf_tools). The GGUF carries the export's chat template and eos = the end of turn
(`<|im_end|>`). Each file is then loaded in llama.cpp (llama-cpp-python), the verify prompt is
rendered with the GGUF's own template, and greedy generation must end with `<|im_end|>`. Beside
the files: an Ollama `Modelfile` (ChatML TEMPLATE, `stop "<|im_end|>"`, the tutor's system prompt
as SYSTEM, sampling defaults; FROM the smallest file), a Hub model card `README.md`, the
converter's and quantiser's `convert.log`, and `gguf.json` (sizes, seconds, tokens/s, verify).

The input is checked first (a socratic export, complete safetensors, a ChatML template with
`<|im_end|>`), so a truncated or foreign input fails with one line. Everything is built in a
hidden sibling `.gguf.partial` and renamed into place; files of an earlier run of the same export
and llama.cpp version are reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, get_args

from trainer.config import GGUFType
from trainer.gguf_import import file_digest
from trainer.gguf_tools import (
    CONVERTER_TYPES,
    GGUFError,
    convert,
    converter_dir,
    llama_cpp_version,
    load,
    quantize,
    require_llama_cpp,
)

GGUF_TYPES: tuple[str, ...] = get_args(GGUFType)
CHATML_START = "<|im_start|>"


def parse_types(text: str | list[str] | None) -> list[str]:
    """`"f16,q4_k_m"` (or a list) -> validated, lower-case, de-duplicated GGUF types."""
    items = text.split(",") if isinstance(text, str) else list(text or [])
    out = list(dict.fromkeys(t.strip().lower() for t in items if t.strip()))
    bad = [t for t in out if t not in GGUF_TYPES]
    if bad:
        raise GGUFError(
            f"--gguf {','.join(bad)}: unknown type (choose from {', '.join(GGUF_TYPES)})"
        )
    return out


def gguf_types(text: str | list[str] | None) -> list[str]:
    """The requested types, checked together with the llama.cpp tools they need (one-line errors)."""
    types = parse_types(text)
    if types:
        require_llama_cpp()
        converter_dir()
    return types


def export_gguf(export_dir: Path, types: list[str], prompt: str, max_new_tokens: int) -> dict:
    """Write and verify `types` into `export_dir/gguf`; returns the manifest (gguf.json)."""
    require_llama_cpp()
    export_dir = Path(export_dir)
    info = check_export(export_dir)
    out, tmp = export_dir / "gguf", export_dir / ".gguf.partial"
    key = _key(info["tutor"], llama_cpp_version(), prompt, max_new_tokens)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    files = _build(export_dir, types, tmp, _read_json(out / "gguf.json"), key)
    for gtype in types:
        entry = files[gtype]
        if "verify" not in entry:
            path = tmp / entry["file"]
            entry.update(bytes=path.stat().st_size, sha256=file_digest(path))
            entry["verify"] = verify_gguf(path, info, prompt, max_new_tokens)
        _print_line(gtype, entry)
    manifest = _manifest(key, info, {t: files[t] for t in types})
    _write_extras(tmp, manifest, info)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    print(f"gguf: {out} (Ollama: cd {out} && ollama create socratic-tutor -f Modelfile)")
    return manifest


def _build(export_dir: Path, types: list[str], tmp: Path, old: dict, key: str) -> dict:
    """Convert / quantise each type into `tmp` (or reuse the earlier file); 16/32-bit first."""
    stem = _read_json(export_dir / "tutor.json").get("served_name_hint") or "socratic-tutor"
    model_dir, files, source = None, {}, None
    for gtype in sorted(types, key=lambda t: t not in CONVERTER_TYPES):
        name = f"{stem}-{gtype.upper()}.gguf"
        reused = _reuse(old, key, gtype, export_dir / "gguf" / name, tmp / name)
        if reused is not None:
            files[gtype] = reused
            continue
        started = time.time()
        model_dir = model_dir or converter_input(export_dir, tmp / "input")
        if gtype in CONVERTER_TYPES:
            convert(model_dir, tmp / name, gtype, tmp / "convert.log", stem)
        else:
            source = source or _quantiser_source(model_dir, files, tmp, stem)
            quantize(source, tmp / name, gtype, tmp / "convert.log")
        files[gtype] = {"file": name, "seconds": round(time.time() - started, 1)}
    for temp in [tmp / "input", *tmp.glob(".source-*.gguf")]:
        shutil.rmtree(temp) if temp.is_dir() else temp.unlink(missing_ok=True)
    return files


def converter_input(export_dir: Path, staged: Path) -> Path:
    """The dir llama.cpp's converter reads: the export itself, or links to it with a fixed tokenizer.

    A tokenizer that transformers rebuilt from a GGUF (SmolLM2 through `socratic model
    import-gguf`) marks its byte-level BPE `byte_fallback` with a SentencePiece-style decoder; the
    converter then takes it for a SentencePiece (llama) vocab, which llama.cpp cannot tokenize with
    (it looks for <0xXX> byte tokens). A byte-level BPE never falls back to bytes, so the staged
    copy says so and the converter writes the BPE (gpt2) vocab that the verify step compares.
    """
    tok = _read_json(export_dir / "tokenizer.json")
    model, pre = tok.get("model") or {}, tok.get("pre_tokenizer") or {}
    if not (
        model.get("type") == "BPE" and model.get("byte_fallback") and pre.get("type") == "ByteLevel"
    ):
        return export_dir
    staged.mkdir()
    for item in export_dir.iterdir():
        if item.is_file() and item.name != "tokenizer.json":
            (staged / item.name).symlink_to(item.resolve())
    model["byte_fallback"] = False
    tok["decoder"] = {
        "type": "ByteLevel",
        "add_prefix_space": True,
        "trim_offsets": True,
        "use_regex": True,
    }
    (staged / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False), encoding="utf-8")
    return staged


def unverified(manifest: dict) -> list[str]:
    """The GGUF types whose verify generation did not stop at the end of turn."""
    return [t for t, e in manifest["files"].items() if not e["verify"]["stopped"]]


def check_export(export_dir: Path) -> dict[str, Any]:
    """A one-line error unless `export_dir` is a complete socratic export with a ChatML template."""
    tutor = _read_json(export_dir / "tutor.json")
    if not tutor.get("system_prompt"):
        raise GGUFError(f"{export_dir}: not a socratic export (no tutor.json); run socratic export")
    weights = sorted(export_dir.glob("*.safetensors"))
    if not (export_dir / "config.json").is_file() or not weights:
        raise GGUFError(f"{export_dir}: no config.json or *.safetensors: not a merged model dir")
    for path in weights:
        check_safetensors(path)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(export_dir)
    end = tutor.get("end_of_turn") or tokenizer.eos_token
    template = tokenizer.chat_template or ""
    if CHATML_START not in template or end not in template:
        raise GGUFError(
            f"{export_dir}: the chat template is not ChatML with {end} "
            "(the Modelfile's TEMPLATE and stop assume <|im_start|> ... <|im_end|>)"
        )
    config = _read_json(export_dir / "config.json")
    return {
        "tutor": tutor,
        "tokenizer": tokenizer,
        "template": template,
        "end_of_turn": end,
        "end_of_turn_id": tokenizer.convert_tokens_to_ids(end),
        "n_ctx_train": config.get("max_position_embeddings"),
        "generation": _read_json(export_dir / "generation_config.json"),
    }


def check_safetensors(path: Path) -> None:
    """The file is as long as its header says (a cut-off copy or download fails here, in one line)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if n <= 0 or n > min(size - 8, 100 << 20):
            raise GGUFError(f"{path}: not a safetensors file (or truncated inside its header)")
        try:
            header = json.loads(f.read(n))
            end = max(
                (v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0
            )
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            raise GGUFError(
                f"{path}: unreadable safetensors header (truncated or corrupt)"
            ) from None
    if 8 + n + end != size:
        raise GGUFError(
            f"{path}: truncated or corrupt safetensors ({size} bytes, its header says {8 + n + end})"
        )


def verify_gguf(path: Path, info: dict[str, Any], prompt: str, max_new_tokens: int) -> dict:
    """Load in llama.cpp, check the metadata, greedy-generate with the GGUF's own template."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    llm = load(path)
    try:
        meta = llm.metadata
        template = meta.get("tokenizer.chat_template", "")
        eos_id = int(meta.get("tokenizer.ggml.eos_token_id", -1))
        if template != info["template"] or eos_id != info["end_of_turn_id"]:
            raise GGUFError(
                f"{path}: GGUF metadata does not match the export (chat template "
                f"{'same' if template == info['template'] else 'differs'}, eos id {eos_id}, "
                f"expected {info['end_of_turn_id']} = {info['end_of_turn']})"
            )
        messages = [
            {"role": "system", "content": info["tutor"]["system_prompt"]},
            {"role": "user", "content": prompt},
        ]
        text = Jinja2ChatFormatter(template, info["end_of_turn"], "")(messages=messages).prompt
        tokens = llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
        expected = info["tokenizer"](text, add_special_tokens=False)["input_ids"]
        if tokens[-len(expected) :] != expected:
            raise GGUFError(
                f"{path}: llama.cpp tokenizes the verify prompt differently from the export's "
                f"tokenizer ({len(tokens)} vs {len(expected)} tokens): the converted vocab is wrong"
            )
        return _greedy(llm, tokens, eos_id, max_new_tokens) | {"prompt": prompt}
    finally:
        llm.close()


def _greedy(llm: Any, tokens: list[int], eos_id: int, max_new_tokens: int) -> dict:
    new: list[int] = []
    started = time.perf_counter()
    first = last = started
    for token in llm.generate(tokens, top_k=1, temp=0.0, repeat_penalty=1.0):
        last = time.perf_counter()
        first = first if new else last
        new.append(token)
        if token == eos_id or len(new) >= max_new_tokens:
            break
    stopped = bool(new) and new[-1] == eos_id
    body = new[:-1] if stopped else new
    decode_s = last - first
    return {
        "reply": llm.detokenize(body).decode("utf-8", errors="replace"),
        "prompt_tokens": len(tokens),
        "threads": llm.n_threads,
        "new_tokens": len(new),
        "max_new_tokens": max_new_tokens,
        "stopped": stopped,
        "prompt_seconds": round(first - started, 3),
        "tokens_per_s": round((len(new) - 1) / decode_s, 1) if len(new) > 1 and decode_s else None,
    }


def _quantiser_source(model_dir: Path, files: dict, tmp: Path, stem: str) -> Path:
    """The quantiser's input: a requested 16/32-bit file, else a temporary f16 one."""
    for gtype in CONVERTER_TYPES:
        if gtype in files:
            return tmp / files[gtype]["file"]
    source = tmp / ".source-f16.gguf"
    convert(model_dir, source, "f16", tmp / "convert.log", stem)
    return source


def _reuse(old: dict, key: str, gtype: str, src: Path, dst: Path) -> dict | None:
    entry = old.get("files", {}).get(gtype) if old.get("key") == key else None
    if not entry or not src.is_file() or src.stat().st_size != entry.get("bytes"):
        return None
    os.link(src, dst)  # the old dir stays whole until the new one replaces it
    print(f"gguf: {gtype}: reusing {src.name} (same export, same llama.cpp)")
    return entry


def _key(tutor: dict, version: str, prompt: str, max_new_tokens: int) -> str:
    """What decides the files and their verify records: the export, llama.cpp, the verify run."""
    parts = {
        "export_key": tutor.get("export_key"),
        "llama_cpp_python": version,
        "verify": [prompt, max_new_tokens],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _manifest(key: str, info: dict[str, Any], files: dict[str, dict]) -> dict:
    return {
        "key": key,
        "llama_cpp_python": llama_cpp_version(),
        "end_of_turn": info["end_of_turn"],
        "end_of_turn_id": info["end_of_turn_id"],
        "files": files,
    }


def _print_line(gtype: str, entry: dict) -> None:
    v = entry["verify"]
    status = "stopped at <|im_end|>" if v["stopped"] else "did NOT stop (hit the limit)"
    print(
        f"gguf: {gtype}: {entry['file']} {entry['bytes'] / 1e6:.0f} MB, verify {v['new_tokens']} "
        f"tokens, {status}, {v['tokens_per_s']} tokens/s on CPU"
    )


def _write_extras(tmp: Path, manifest: dict, info: dict[str, Any]) -> None:
    from trainer.gguf_card import gguf_model_card, modelfile

    smallest = min(manifest["files"].values(), key=lambda e: e["bytes"])
    (tmp / "Modelfile").write_text(modelfile(smallest["file"], info), encoding="utf-8")
    (tmp / "README.md").write_text(gguf_model_card(manifest, info), encoding="utf-8")
    (tmp / "gguf.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except ValueError:
        return {}
