"""Export a trained run: merge the LoRA adapter into the 16-bit base, save, verify, describe.

    socratic export --run runs/tiny                      # -> runs/tiny/export
    socratic export --run /workspace/runs/a --push-to-hub you/socratic-tutor-7b --private

The base is reloaded in 16/32-bit from its original weights (never the 4-bit training copy), so
the merge is exact. The export dir holds safetensors, tokenizer (with the chat template),
`generation_config.json` whose eos includes `<|im_end|>`, `adapter/` (the LoRA adapter alone),
`tutor.json` (system prompt + summary, read by the serving gateway), `verify.json`, `config.yaml`
and a model card `README.md`. It is written to a temporary sibling and renamed into place, so a
crash never leaves a half export. Rerunning with the same adapter, base and export settings reuses
a finished export (the key is in tutor.json as `export_key`).

When the verify generation does not end with `<|im_end|>` within `export.verify_max_new_tokens`,
the export is kept (verify.json: `"stopped": false`) but `UnverifiedExportError` is raised and
nothing is pushed, unless `allow_unverified` (`--allow-unverified`, `export.allow_unverified`).

`export_in_child` runs the same export as `socratic export` in a fresh interpreter: after Unsloth
has trained in a process, its class-level patches (e.g. `Qwen2ForCausalLM.forward`, whose decode
path reads `max_seq_length`, set only on models Unsloth loaded) break `generate` on the freshly
loaded merged model, so the verify step must not run in that process.

`gguf` (`--gguf f16,q4_k_m`, `export.gguf`) adds llama.cpp files and an Ollama Modelfile in
`export/gguf/`, verified the same way before anything is pushed (trainer.gguf_export).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from trainer.config import Config, ConfigError, TrainError, load_config
from tutor.errors import UserError

END_OF_TURN = "<|im_end|>"


# Export settings that change what is written; the others (push target, out_dir) do not.
KEY_FIELDS = ("dtype", "served_name", "verify_prompt", "verify_max_new_tokens")


class PushError(UserError, RuntimeError):
    """The Hub push failed; the local export is intact and the message says how to retry."""

    exit_code = 1


class UnverifiedExportError(UserError, RuntimeError):
    """Greedy generation did not stop at `<|im_end|>`; the export is kept but not pushed."""

    exit_code = 1


class ExportProcessError(UserError, RuntimeError):
    """`export_in_child`'s process failed (its own error is above in the output); `code` is its
    exit code: 1 = unverified or push failed (export kept), other = nothing exported."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = self.exit_code = code


def export_run(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    push_to_hub: str | None = None,
    private: bool = False,
    allow_unverified: bool = False,
    overrides: list[str] | None = None,
    gguf: str | list[str] | None = None,
) -> Path:
    """Merge, save and verify `run_dir`'s adapter; optionally push. Returns the export dir.

    `overrides` are `export.key=value` pairs applied over the run's saved config. Raises
    `UnverifiedExportError` (after writing the export, before any push) when the verify generation
    did not stop, unless `allow_unverified` or `export.allow_unverified` is true. `gguf` (types,
    default `export.gguf`) also writes and verifies GGUF files, pushed to `REPO_ID-gguf`.
    """
    run = Path(run_dir)
    adapter = run / "adapter"
    if not (adapter / "adapter_config.json").is_file():
        raise TrainError(f"{adapter}: no trained adapter (run `socratic train` to the end)")
    for item in overrides or []:
        if not item.startswith("export."):
            raise ConfigError(f"override '{item}': only export.* keys apply to an export")
    cfg = load_config(run / "config.yaml", overrides or [], env={})
    from trainer.gguf_export import gguf_types

    types = gguf_types(cfg.export.gguf if gguf is None else gguf)  # before a long merge
    summary = _read_json(run / "train_summary.json")
    if (run / "evaluation.json").is_file():  # optional: results saved by the evaluation stage
        summary["evaluation"] = _read_json(run / "evaluation.json")
    out = Path(out_dir or cfg.export.out_dir or run / "export")
    digest = _sha256(adapter / "adapter_model.safetensors")
    key = export_key(cfg, digest)
    if _read_json(out / "tutor.json").get("export_key") == key:
        print(f"export: {out} already holds this adapter merged with these settings; reusing it")
    else:
        _build(cfg, adapter, out, summary, digest, key)
    report = _read_json(out / "verify.json")
    if not report.get("stopped") and not (allow_unverified or cfg.export.allow_unverified):
        raise UnverifiedExportError(
            f"{out}: verify generation did not stop at {END_OF_TURN} within "
            f"{report.get('max_new_tokens')} new tokens; export kept, nothing pushed "
            "(train longer, or accept it with --allow-unverified / export.allow_unverified=true)"
        )
    if types:
        _export_gguf(out, cfg, types, allow_unverified or cfg.export.allow_unverified)
    if push_to_hub:
        from trainer.push import push_export

        try:
            push_export(out, push_to_hub, private=private, gguf=bool(types))
        except Exception as err:
            raise PushError(
                f"push to {push_to_hub} failed ({err}); the export is intact at {out}; retry with: "
                f"socratic export --run {run} --out {out} --push-to-hub {push_to_hub}"
                + (" --private" if private else "")
                + (f" --gguf {','.join(types)}" if types else "")
            ) from err
    return out


def export_in_child(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    push_to_hub: str | None = None,
    private: bool = False,
) -> Path:
    """`export_run` in a fresh Python process (`python -m trainer.cli export`); output streams to
    this process's stdout/stderr. Returns the export dir; raises `ExportProcessError`."""
    run = Path(run_dir)
    out = Path(out_dir) if out_dir else None
    cmd = [sys.executable, "-m", "trainer.cli", "export", "--run", str(run)]
    if out:
        cmd += ["--out", str(out)]
    if push_to_hub:
        cmd += ["--push-to-hub", push_to_hub] + (["--private"] if private else [])
    retry = "socratic " + " ".join(cmd[3:])
    print(f"export: in a child process (after Unsloth this one cannot generate): {retry}")
    sys.stdout.flush()
    code = subprocess.run(cmd, check=False).returncode
    if code != 0:
        raise ExportProcessError(
            f"the export process exited {code} (its error is above); the adapter is in "
            f"{run / 'adapter'}; retry with: {retry}",
            code if code > 0 else 1,  # killed by a signal: still a failure
        )
    if out is None:
        out = Path(load_config(run / "config.yaml", env={}).export.out_dir or run / "export")
    return out


def _export_gguf(out: Path, cfg: Config, types: list[str], allowed: bool) -> None:
    """GGUF files of the export (trainer.gguf_export); UnverifiedExportError when one never stops."""
    from trainer.gguf_export import export_gguf, unverified

    manifest = export_gguf(out, types, cfg.export.verify_prompt, cfg.export.verify_max_new_tokens)
    if (bad := unverified(manifest)) and not allowed:
        raise UnverifiedExportError(
            f"{out / 'gguf'}: {', '.join(bad)} did not stop at {END_OF_TURN} in llama.cpp within "
            f"{cfg.export.verify_max_new_tokens} new tokens; files kept, nothing pushed "
            "(accept them with --allow-unverified / export.allow_unverified=true)"
        )


def export_key(cfg: Config, adapter_sha256: str) -> str:
    """Hash of everything that decides the export's content: adapter, base, export settings."""
    parts = {
        "adapter_sha256": adapter_sha256,
        "base": cfg.model.name,
        "revision": cfg.model.revision,
        **{k: getattr(cfg.export, k) for k in KEY_FIELDS},
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _build(cfg: Config, adapter: Path, out: Path, summary: dict, digest: str, key: str) -> None:
    tmp = out.parent / f".{out.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tokenizer = merge_adapter(cfg.model.name, adapter, tmp, cfg.export.dtype, cfg.model.revision)
    shutil.copytree(adapter, tmp / "adapter")
    system_prompt = summary.get("system_prompt") or _default_system_prompt()
    report = verify_export(
        tmp, system_prompt, cfg.export.verify_prompt, cfg.export.verify_max_new_tokens
    )
    (tmp / "verify.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    tutor = {
        "system_prompt": system_prompt,
        "base_model": cfg.model.name,
        "served_name_hint": cfg.export.served_name,
        "end_of_turn": tokenizer.eos_token,
        "pad_token": tokenizer.pad_token,  # distinct from eos (training may have picked it)
        "adapter_sha256": digest,
        "export_key": key,
        "train": {k: v for k, v in summary.items() if k != "system_prompt"},
        "verify": report,
    }
    (tmp / "tutor.json").write_text(json.dumps(tutor, indent=2), encoding="utf-8")
    (tmp / "config.yaml").write_text(cfg.to_yaml(), encoding="utf-8")
    from trainer.push import model_card

    (tmp / "README.md").write_text(model_card(cfg, summary, report), encoding="utf-8")
    (tmp / "adapter" / "README.md").write_text(
        model_card(cfg, summary, report, adapter_only=True), encoding="utf-8"
    )
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    status = "stopped at " + END_OF_TURN if report["stopped"] else "did NOT stop (hit the limit)"
    print(f"export: {out} (verify: {report['new_tokens']} tokens, {status})")


def merge_adapter(base: str, adapter: Path, out: Path, dtype: str, revision: str | None) -> Any:
    """Load `base` in `dtype` (auto = its saved dtype), merge `adapter`, save model + tokenizer."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
    model = AutoModelForCausalLM.from_pretrained(
        base,
        revision=revision,
        dtype=torch_dtype,
        device_map="auto" if torch.cuda.is_available() else None,
    )
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    eos_ids = end_of_turn_ids(tokenizer, merged.generation_config)
    merged.generation_config = GenerationConfig.from_dict(
        {
            **merged.generation_config.to_dict(),
            "eos_token_id": eos_ids,
            "pad_token_id": tokenizer.pad_token_id,
        }
    )
    merged.config.eos_token_id = eos_ids[0]
    merged.config.pad_token_id = tokenizer.pad_token_id
    merged.config.use_cache = True
    merged.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return tokenizer


def end_of_turn_ids(tokenizer: Any, generation_config: Any) -> list[int]:
    """`<|im_end|>` first, then the tokenizer's and the base's other eos ids (deduplicated)."""
    vocab = tokenizer.get_vocab()
    ids = [vocab.get(END_OF_TURN), tokenizer.eos_token_id]
    base = generation_config.eos_token_id if generation_config is not None else None
    ids += base if isinstance(base, list) else [base]
    return list(dict.fromkeys(i for i in ids if i is not None))


def verify_export(
    export_dir: Path, system_prompt: str, prompt: str, max_new_tokens: int
) -> dict[str, Any]:
    """Reload with plain transformers, render the template, greedy-generate; did it stop?"""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(export_dir)
    model = AutoModelForCausalLM.from_pretrained(
        export_dir, device_map="auto" if torch.cuda.is_available() else None
    ).eval()
    messages = [{"role": "system", "content": system_prompt}, {"role": "user", "content": prompt}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if system_prompt not in text or prompt not in text:
        raise TrainError(f"{export_dir}: the saved chat template does not render the messages")
    inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False).to(model.device)
    with torch.no_grad():
        out = model.generate(
            **inputs, max_new_tokens=max_new_tokens, do_sample=False, use_cache=True
        )
    new = out[0, inputs["input_ids"].shape[1] :].tolist()
    eos = set(model.generation_config.eos_token_id or [])
    stopped = bool(new) and new[-1] in eos
    return {
        "prompt": prompt,
        "reply": tokenizer.decode(new, skip_special_tokens=True),
        "new_tokens": len(new),
        "max_new_tokens": max_new_tokens,
        "stopped": stopped,
        "stop_token": tokenizer.convert_ids_to_tokens(new[-1]) if new else None,
    }


def _default_system_prompt() -> str:
    from tutor.prompts import TUTOR_SYSTEM_PROMPT

    return TUTOR_SYSTEM_PROMPT


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
