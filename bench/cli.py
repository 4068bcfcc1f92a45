"""`socratic bench <name> [--quick] [--out FILE.json]`: run one benchmark, or `all`.

    socratic bench gateway --quick
    socratic bench all --quick        # what `make bench` runs

Each benchmark module exposes `run(quick: bool) -> dict` (its figures); this module prints where
the JSON went. Heavy imports happen inside the benchmark modules.
"""

from __future__ import annotations

import argparse
import importlib

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
        "--quick", action="store_true", help="smaller sizes for a run of a minute or two"
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

    names = list(BENCHMARKS) if args.name == "all" else [args.name]
    for name in names:
        module = importlib.import_module(f"bench.{name}_bench")
        figures = module.run(quick=args.quick)
        out = args.out
        if out and len(names) > 1:
            out = f"{out.rstrip('/')}/{name}.json"
        write_result(name, figures, out, args.quick)
    return 0
