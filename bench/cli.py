"""`socratic bench <name> [--quick] [--out FILE.json]`: run one benchmark, or `all`.

    socratic bench gateway --quick
    socratic bench train --vs-trl     # the trainer against TRL's SFTTrainer and DPOTrainer

    socratic bench all --quick --vs-trl --peers --vllm   # what `make bench` runs

Each benchmark module, and each comparison module behind a flag (--vs-trl: bench/trl_bench.py and
bench/trl_dpo_bench.py, --peers: bench/gateway_peers.py, --vllm: bench/gateway_vllm.py), exposes `run(quick: bool) ->
dict` (its figures); this module prints where the JSON went. Heavy imports happen inside them.
"""

from __future__ import annotations

import argparse
import importlib

# Comparisons with what a user would pick instead: flag -> [(benchmark, module, JSON name)].
COMPARISONS = {
    "vs_trl": [("train", "bench.trl_bench", "train-vs-trl"),
               ("train", "bench.trl_dpo_bench", "train-dpo-vs-trl")],
    "peers": [("gateway", "bench.gateway_peers", "gateway-peers")],
    "vllm": [("gateway", "bench.gateway_vllm", "gateway-vllm")],
}  # fmt: skip
BENCHMARKS = {
    "gateway": "gateway overhead: p50/p99 latency, first chunk, req/s direct vs through the gateway",
    "data": "tokenise + mask + pack 20,000 conversations; real-token share packed vs padded",
    "datagen": "generator against a fake upstream: achieved conversations/s vs the ideal C/L",
    "train": "tokens/s, step time and peak memory (tiny preset on CPU; Qwen2.5-7B QLoRA on CUDA)",
    "engine": "start seconds and tokens/s at 1 and N requests: vLLM vs transformers serve",
}


def register(root: argparse._SubParsersAction) -> None:
    p = root.add_parser(
        "bench",
        help="benchmarks: gateway, data, datagen, train, engine",
        description="Run a benchmark, print its table and write JSON with the figures, the machine, "
        "versions and the command line. " + "; ".join(f"{k}: {v}" for k, v in BENCHMARKS.items()),
    )
    p.add_argument(
        "name",
        choices=[*BENCHMARKS, "all"],
        help="which benchmark (all = every one; train runs the CUDA variants when a GPU is present)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smaller sizes: a few minutes per benchmark on an idle machine",
    )
    p.add_argument(
        "--vs-trl",
        action="store_true",
        help="train: the project's trainer against TRL's SFTTrainer (best-practice and default "
        "setups; JSON train-vs-trl.json) and its DPO stage against DPOTrainer's defaults (JSON "
        "train-dpo-vs-trl.json)",
    )
    p.add_argument(
        "--peers",
        action="store_true",
        help="gateway: direct vs the gateway vs LiteLLM's proxy vs nginx, CPU per request "
        "(installs LiteLLM and nginx on first use; JSON gateway-peers.json)",
    )
    p.add_argument(
        "--vllm",
        action="store_true",
        help="gateway: tokens/s direct vs through the gateway on the real vLLM CPU engine at 1 "
        "and 8 streams (needs .venv-vllm or VLLM_PYTHON; JSON gateway-vllm.json)",
    )
    p.add_argument(
        "--out",
        default=None,
        metavar="FILE.json",
        help="where to write the JSON (default: reports/bench/<name>.json; with `all`, a directory)",
    )
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from bench.common import write_result

    jobs = plan(args)
    for name, module in jobs:
        figures = importlib.import_module(module).run(quick=args.quick)
        out = args.out
        if out and len(jobs) > 1:
            out = f"{out.rstrip('/')}/{name}.json"
        write_result(name, figures, out, args.quick)
    return 0


def plan(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(JSON name, module whose `run(quick)` to call): a benchmark alone, its flagged comparisons
    alone, or with `all` every benchmark plus the flagged comparisons."""
    flagged = [flag for flag in COMPARISONS if getattr(args, flag, False)]
    for flag in flagged:
        owner = COMPARISONS[flag][0][0]
        if args.name not in ("all", owner):
            raise SystemExit(
                f"--{flag.replace('_', '-')} applies to `bench {owner}` or `bench all`"
            )
    jobs = []
    for name in BENCHMARKS if args.name == "all" else [args.name]:
        mine = [c for f in flagged for c in COMPARISONS[f] if c[0] == name]
        if args.name == "all" or not mine:
            jobs.append((name, f"bench.{name}_bench"))
        jobs += [(json_name, module) for _owner, module, json_name in mine]
    return jobs
