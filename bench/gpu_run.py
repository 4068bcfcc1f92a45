"""The GPU check's run on the CUDA machine (bench.deploy_check has the plan and the carrying):

    scripts/gpu_check.sh OUT_DIR          # = python3 -m bench.gpu_run OUT_DIR, offline

Steps, each timed and recorded even when one fails: the imports (unsloth first), the
random-weight Qwen2.5-7B directory, the corpus, `socratic train` with the hf and the unsloth
backend (the unsloth run exports: merge and verify in a child process), then the checks of that
export (verify generated; the adapter names the configured base) and the figures. Writes
OUT_DIR/gpu_check.json (figures, machine, versions) and prints every run's log, which the shell
wrapper keeps in OUT_DIR/gpu_check.log. Exit 0 only when every step passed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.deploy_check import BUDGET_S, CORPUS, variants

IMPORTS = (
    "import unsloth, unsloth_zoo, bitsandbytes, transformers, peft, trl; print(unsloth.__version__)"
)


class Check:
    """Runs named steps against a deadline and records their outcome."""

    def __init__(self, deadline: float):
        self.deadline, self.steps = deadline, {}

    def left(self) -> float:
        return max(1.0, self.deadline - time.monotonic())

    def step(self, name: str, fn: Callable[[], Any]) -> Any:
        started = time.monotonic()
        print(f"\n== {name} ({self.left():.0f} s left)", flush=True)
        try:
            value = fn()
            self.steps[name] = {"ok": True, "seconds": round(time.monotonic() - started, 1)}
            return value
        except Exception as err:  # recorded; the next steps say what still works
            traceback.print_exc()
            self.steps[name] = {"ok": False, "seconds": round(time.monotonic() - started, 1),
                                "error": f"{type(err).__name__}: {err}"[-2000:]}  # fmt: skip
            return None


def import_check(timeout_s: float) -> str:
    done = subprocess.run([sys.executable, "-c", IMPORTS], capture_output=True, text=True,
                          timeout=timeout_s)  # fmt: skip
    print(done.stdout + done.stderr[-4000:])
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr else "failed")
    return done.stdout.strip().splitlines()[-1]


def write_corpus(path: Path) -> Path:
    from bench.data_bench import make_corpus

    path.write_text("".join(json.dumps({"conversations": c}) + "\n" for c in make_corpus(CORPUS)))
    return path


def export_facts(run: Path, model_dir: Path) -> dict[str, Any]:
    """What the unsloth run's export shows: the verify ran, the adapter names the base."""
    verify = json.loads((run / "export" / "verify.json").read_text())
    adapter = json.loads((run / "adapter" / "adapter_config.json").read_text())
    if adapter["base_model_name_or_path"] != str(model_dir):
        raise RuntimeError(f"adapter base is {adapter['base_model_name_or_path']}, not {model_dir}")
    if verify["new_tokens"] < 1:
        raise RuntimeError("the verify generation produced nothing")
    return {"verify_new_tokens": verify["new_tokens"], "verify_stopped": verify["stopped"],
            "adapter_base": adapter["base_model_name_or_path"]}  # fmt: skip


def run_check(out: Path, deadline: float) -> int:
    """The whole check; returns the exit code."""
    import torch

    from bench.common import print_table, write_result
    from bench.train_bench import mfu, run_variant, write_qwen7b_random

    out.mkdir(parents=True, exist_ok=True)
    if not torch.cuda.is_available():
        print("gpu check: no CUDA device here (see --dry-run for the plan)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    check = Check(deadline)
    figures: dict[str, Any] = {"steps": check.steps, "results": []}
    figures["unsloth"] = check.step("imports", lambda: import_check(min(180.0, check.left())))
    model_dir = check.step("model", lambda: write_qwen7b_random(work / "qwen2.5-7b-random"))
    corpus = check.step("corpus", lambda: write_corpus(work / "corpus.jsonl"))
    by_backend = {}
    for run in variants(work, model_dir or work / "missing", corpus or work / "missing"):
        name = ("dpo_" if run["stage"] == "dpo" else "train_") + run["backend"]
        name += "_export" if run["export"] else ""
        row = check.step(name, lambda r=run: run_variant(
            r["config"], r["overrides"], r["out"], r["export"], timeout_s=check.left()))  # fmt: skip
        if row:
            row = {"backend": run["backend"], "stage": run["stage"], "packing": run["stage"] == "sft",
                   **row, "mfu": mfu(row)}  # fmt: skip
            if run["stage"] == "sft":
                by_backend[run["backend"]] = row
            figures["results"].append(row)
        if run["export"] and row:
            figures["export"] = check.step("export_checks", lambda r=run: export_facts(
                r["out"], model_dir))  # fmt: skip
    if {"hf", "unsloth"} <= set(by_backend):
        figures["unsloth_over_hf"] = (
            by_backend["unsloth"]["tokens_per_s"] / by_backend["hf"]["tokens_per_s"]
        )
    print_table(
        "GPU check: socratic train, Qwen2.5-7B architecture, 4-bit QLoRA r16 (SFT packed, DPO)",
        ["stage", "backend", "steps", "tokens/s", "step s", "peak GiB", "MFU"],
        [[r["stage"], r["backend"], r["steps"], r["tokens_per_s"], r["step_s"], r["peak_mem_gb"],
          r["mfu"]] for r in figures["results"]],
    )  # fmt: skip
    for log in sorted(work.glob("*.log")):
        print(f"\n== log of {log.name}\n{log.read_text(errors='replace')}")
    write_result("gpu_check", figures, out / "gpu_check.json", quick=True)
    failed = [name for name, s in check.steps.items() if not s["ok"]]
    print(f"\ngpu check: {'FAILED: ' + ', '.join(failed) if failed else 'every step passed'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run_check(Path(sys.argv[1] if len(sys.argv) > 1 else "reports/gpu-check"),
                       time.monotonic() + BUDGET_S))  # fmt: skip
