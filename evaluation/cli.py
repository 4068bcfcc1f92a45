"""`socratic eval run|score|judge|simulate|report|mathdial-agreement|leak-agreement|claim-agreement|
judge-agreement`.

    socratic eval run --endpoint base=http://127.0.0.1:8000 --endpoint tuned=http://127.0.0.1:8001 \
        --out reports/RUN
    socratic eval judge reports/RUN --judge-url URL [--judge-model M]
    socratic eval simulate reports/RUN --student-url URL [--turns 3]
    socratic eval report reports/RUN
    socratic eval score replies.jsonl --out scored.jsonl
    socratic eval mathdial-agreement md.jsonl
    socratic eval leak-agreement data/leak/written-test.jsonl data/leak/mathdial-test.jsonl
    socratic eval claim-agreement data/claims/written-test.jsonl [--by-file]
    socratic eval judge-agreement data/leak/written-dev.jsonl --judge-url URL [--judge-model M]

Only argparse and the standard library are imported here; each command imports what it needs.
"""

from __future__ import annotations

import argparse
import json


def register(root: argparse._SubParsersAction) -> None:
    ev = root.add_parser("eval", help="evaluate tutors: run, score, judge, simulate, report")
    sub = ev.add_subparsers(dest="eval_command", metavar="EVAL_COMMAND", required=True)

    r = sub.add_parser(
        "run",
        help="send the held-out set to each endpoint and score the replies offline",
        description="Every endpoint gets the same messages (tutor system prompt + item), sampling "
        "settings and seed. Writes OUT/responses.jsonl and OUT/run.json; replies are cached on "
        "disk, so a rerun only sends what is missing.",
    )
    r.add_argument("--endpoint", action="append", required=True, metavar="NAME=URL",
                   help="an OpenAI-compatible base URL (http://host:port or .../v1); repeat it; "
                   "the first is the baseline of the report")  # fmt: skip
    r.add_argument("--model", default=None, help="model name to request (default: each "
                   "endpoint's first model at /v1/models)")  # fmt: skip
    r.add_argument("--set", dest="eval_set", default=None, metavar="DIR_OR_JSONL",
                   help="eval set directory or file (default: the bundled data/eval)")  # fmt: skip
    r.add_argument("--out", required=True, metavar="DIR", help="run directory, e.g. reports/RUN")
    r.add_argument("--limit", type=int, default=None, metavar="N",
                   help="first N items of each eval file (default: all)")  # fmt: skip
    add_sampling_args(r)
    add_client_args(r)
    r.add_argument("--cache", default=None, metavar="DIR",
                   help="response cache directory (default: OUT/cache)")  # fmt: skip
    r.add_argument("--report", action="store_true", help="write the report after the run")
    r.set_defaults(func=cmd_run)

    s = sub.add_parser(
        "score",
        help="offline metrics of replies in a JSONL file",
        description='Each input row: {"messages": [... ending with the assistant reply], '
        '"reference_answer": optional}; each output row is the input plus "metrics".',
    )
    s.add_argument("input", metavar="IN.jsonl")
    s.add_argument("--out", required=True, metavar="OUT.jsonl")
    s.set_defaults(func=cmd_score)

    j = sub.add_parser(
        "judge",
        help="grade a run's replies with an LLM judge (MRBench dimensions + 0-1 scores)",
        description="Writes RUN/judgements.jsonl. Failed or unparseable judgements are retried "
        "with a new seed, then recorded as missing (never a default score).",
    )
    j.add_argument("run_dir", metavar="RUN")
    j.add_argument("--judge-url", required=True, metavar="URL", help="judge endpoint base URL")
    j.add_argument("--judge-model", default=None, help="judge model (default: first listed)")
    j.add_argument("--attempts", type=int, default=3, help="tries per reply (default: 3)")
    j.add_argument("--seed", type=int, default=0, help="shuffle and sampling seed (default: 0)")
    add_client_args(j)
    j.set_defaults(func=cmd_judge)

    m = sub.add_parser(
        "simulate",
        help="multi-turn dialogues with a simulated student: success@k and telling@k",
        description="Tutors and settings come from RUN/run.json. Writes RUN/simulations.jsonl.",
    )
    m.add_argument("run_dir", metavar="RUN")
    m.add_argument("--student-url", required=True, metavar="URL", help="student model base URL")
    m.add_argument("--student-model", default=None, help="student model (default: first listed)")
    m.add_argument("--turns", type=int, default=3, metavar="K", help="tutor turns (default: 3)")
    m.add_argument("--student-temperature", type=float, default=0.7,
                   help="student sampling temperature (default: 0.7)")  # fmt: skip
    add_client_args(m)
    m.set_defaults(func=cmd_simulate)

    p = sub.add_parser(
        "report",
        help="paired statistics, tables and plots of a run",
        description="Writes RUN/report.md, scores.csv, summary.json, metrics.png, subjects.png.",
    )
    p.add_argument("run_dir", metavar="RUN")
    p.set_defaults(func=cmd_report)

    a = sub.add_parser(
        "mathdial-agreement",
        help="precision/recall/F1 of the offline metrics against MathDial's human move labels",
        description="Input: raw MathDial JSONL, or its conversion by `socratic data convert "
        "--format mathdial` (which keeps meta.moves). Raw input also checks solution steps.",
    )
    a.add_argument("input", metavar="MATHDIAL.jsonl")
    add_output_args(a, examples="per metric")
    a.set_defaults(func=cmd_agreement)

    lk = sub.add_parser(
        "leak-agreement",
        help="precision/recall/F1 of the answer-leak detector against human labels",
        description='Each row: {"messages": [... ending with the tutor reply], "reference_answer": '
        'optional, "label": true|false} (format and labelling guide: data/leak/README.md). '
        "Compares the detector, the detector without references and the naive baseline (the "
        "reply contains the reference's number).",
    )
    add_labelled_inputs(lk)
    add_output_args(lk, examples="of the detector")
    lk.set_defaults(func=cmd_leak_agreement)

    ca = sub.add_parser(
        "claim-agreement",
        help="precision/recall/F1 of the verdict detector (accepts a wrong claim) against human "
        "labels",
        description='Each row: {"messages": [... ending with the tutor reply], "reference_answer": '
        'optional, "claim": "right"|"wrong"|"none", "label": true|false|null (the reply accepts '
        "the claim; null when there is none)} (format and labelling guide: data/claims/README.md)."
        " Positive: the reply accepts a wrong claim. Compares the detector, the naive opener rule "
        "(starts with yes/correct/great/right/exactly... and has no correction cue) and "
        "affirms_wrong as `socratic eval score` computes it (claim judged against the reference).",
    )
    add_labelled_inputs(ca)
    ca.add_argument("--by-file", action="store_true",
                    help="also print the tables of each file on its own (default: all together)")  # fmt: skip
    add_output_args(ca, examples="of the detector")
    ca.set_defaults(func=cmd_claim_agreement)

    ja = sub.add_parser(
        "judge-agreement",
        help="validate an LLM judge: its labels against human labels, per dimension",
        description='Each row: {"messages": [... ending with the tutor reply], "reference_answer": '
        'optional, "labels": {dimension: label}, and/or "label": true|false (reveals the '
        'answer)}; rows of data/claims ("claim": right|wrong|none, "label": accepts it) give '
        "mistake identification. Prints n, accuracy, macro-F1 and Cohen's kappa per dimension; "
        "failed judgements are counted as missing.",
    )
    add_labelled_inputs(ja)
    ja.add_argument("--judge-url", required=True, metavar="URL", help="judge endpoint base URL")
    ja.add_argument("--judge-model", default=None, help="judge model (default: first listed)")
    ja.add_argument("--attempts", type=int, default=3, help="tries per reply (default: 3)")
    ja.add_argument("--limit", type=int, default=None, metavar="N",
                    help="judge only the first N rows (default: all)")  # fmt: skip
    ja.add_argument("--cache", default=None, metavar="DIR",
                    help="cache the judge's replies in DIR (default: no cache)")  # fmt: skip
    ja.add_argument("--out", default=None, metavar="OUT.jsonl",
                    help="write every row with its human labels and the judgement")  # fmt: skip
    add_output_args(ja, what="the table")
    add_client_args(ja)
    ja.set_defaults(func=cmd_judge_agreement)


def add_labelled_inputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="FILE.jsonl", help="labelled replies (one or more)")


def add_output_args(
    p: argparse.ArgumentParser, examples: str | None = None, what: str = "the numbers"
) -> None:
    """--examples (misses and false alarms `examples`, e.g. "per metric") and --json OUT.json."""
    if examples:
        p.add_argument("--examples", type=int, default=0, metavar="N",
                       help=f"print N random misses and false alarms {examples} (default: 0)")  # fmt: skip
    p.add_argument("--json", dest="json_out", default=None, metavar="OUT.json",
                   help=f"also write {what} as JSON")  # fmt: skip


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--temperature", type=float, default=0.0, help="(default: 0.0, greedy)")
    p.add_argument("--top-p", type=float, default=1.0, help="(default: 1.0)")
    p.add_argument("--max-tokens", type=int, default=256, help="reply length cap in tokens "
                   "(default: 256)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="sampling seed sent with every request "
                   "(default: 0)")  # fmt: skip


def add_client_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--concurrency", type=int, default=4,
                   help="requests in flight per endpoint (default: 4)")  # fmt: skip
    p.add_argument("--retries", type=int, default=2,
                   help="retries per request after the first try (default: 2)")  # fmt: skip
    p.add_argument("--timeout", type=float, default=120.0, metavar="S",
                   help="seconds per request (default: 120)")  # fmt: skip


def _endpoints(specs: list[str]) -> dict[str, str]:
    from tutor.cli import CommandError

    out: dict[str, str] = {}
    for spec in specs:
        name, sep, url = spec.partition("=")
        if not sep or not name.strip() or not url.startswith(("http://", "https://")):
            raise CommandError(f"--endpoint {spec!r}: expected NAME=http(s)://host:port")
        if name in out:
            raise CommandError(f"--endpoint {name!r}: given twice")
        out[name.strip()] = url.strip()
    return out


def cmd_run(args: argparse.Namespace) -> int:
    from evaluation.client import Sampling
    from evaluation.run import run_eval
    from tutor.paths import EVAL_DIR

    sampling = Sampling(args.temperature, args.top_p, args.max_tokens, args.seed)
    out = run_eval(
        _endpoints(args.endpoint), args.out, args.eval_set or EVAL_DIR, args.model, args.limit,
        sampling=sampling, concurrency=args.concurrency, retries=args.retries,
        timeout_s=args.timeout, cache_dir=args.cache,
    )  # fmt: skip
    config = json.loads((out / "run.json").read_text(encoding="utf-8"))
    print(f"wrote {out / 'responses.jsonl'}: {config['items']} items x "
          f"{len(config['endpoints'])} endpoints, {config['failed']} failed")  # fmt: skip
    if args.report:
        return cmd_report(argparse.Namespace(run_dir=str(out)))
    return 1 if config["failed"] else 0


def cmd_score(args: argparse.Namespace) -> int:
    from evaluation.scoring import score_file

    n = score_file(args.input, args.out)
    print(f"scored {n} rows into {args.out}")
    return 0


def cmd_judge(args: argparse.Namespace) -> int:
    from evaluation.judge import judge_run

    out = judge_run(
        args.run_dir, args.judge_url, args.judge_model, attempts=args.attempts,
        concurrency=args.concurrency, timeout_s=args.timeout, seed=args.seed,
    )  # fmt: skip
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    missing = sum(1 for r in rows if r["judgement"] is None)
    print(f"wrote {out}: {len(rows) - missing} judged, {missing} missing")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from evaluation.simulate import simulate_run

    out = simulate_run(
        args.run_dir, args.student_url, args.student_model, turns=args.turns,
        student_temperature=args.student_temperature, concurrency=args.concurrency,
        timeout_s=args.timeout,
    )  # fmt: skip
    print(f"wrote {out}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from evaluation.report import write_report

    out = write_report(args.run_dir)
    print(f"wrote {out}")
    return 0


def cmd_agreement(args: argparse.Namespace) -> int:
    from evaluation.agreement import agreement, format_agreement
    from tutor.io import atomic_open

    results, by_label, dialogues = agreement(args.input)
    print(format_agreement(results, by_label, dialogues, args.examples))
    if args.json_out:
        with atomic_open(args.json_out) as f:
            json.dump({"dialogues": dialogues,
                       "metrics": {k: c.summary() for k, c in results.items()},
                       "by_label": by_label}, f, indent=2)  # fmt: skip
    return 0


def cmd_leak_agreement(args: argparse.Namespace) -> int:
    from evaluation.leak import format_leak, leak_agreement, read_labelled
    from tutor.io import atomic_open

    rows = read_labelled(args.inputs)
    results, by_rule = leak_agreement(rows)
    print(format_leak(rows, results, by_rule, args.examples))
    if args.json_out:
        with atomic_open(args.json_out) as f:
            json.dump({"files": args.inputs, "rows": len(rows),
                       "metrics": {k: c.summary() for k, c in results.items()},
                       "by_rule": by_rule}, f, indent=2)  # fmt: skip
    return 0


def cmd_claim_agreement(args: argparse.Namespace) -> int:
    from evaluation.claim_agreement import claim_agreement, format_claims, read_claim_rows, summary
    from tutor.io import atomic_open

    rows = read_claim_rows(args.inputs)
    files = {}
    if args.by_file and len(args.inputs) > 1:
        for path in args.inputs:
            part = [r for r in rows if r.file == str(path)]
            files[str(path)] = summary(claim_agreement(part))
            print(f"== {path}\n{format_claims(part, claim_agreement(part))}\n")
        print("== all files")
    result = claim_agreement(rows)
    print(format_claims(rows, result, args.examples))
    if args.json_out:
        with atomic_open(args.json_out) as f:
            json.dump({"files": args.inputs, "rows": len(rows), **summary(result),
                       "by_file": files}, f, indent=2)  # fmt: skip
    return 0


def cmd_judge_agreement(args: argparse.Namespace) -> int:
    from evaluation.judge_agreement import format_judge_agreement, judge_agreement, read_judge_rows
    from tutor.io import atomic_open, write_jsonl

    rows = read_judge_rows(args.inputs, args.limit)
    table, judged = judge_agreement(
        rows, args.judge_url, args.judge_model, attempts=args.attempts,
        concurrency=args.concurrency, retries=args.retries, timeout_s=args.timeout,
        cache_dir=args.cache,
    )  # fmt: skip
    print(format_judge_agreement(table, judged[0]["judge_model"] if judged else None))
    if args.out:
        write_jsonl(args.out, ({k: r[k] for k in ("id", "human", "judgement", "error")}
                               for r in judged))  # fmt: skip
    if args.json_out:
        with atomic_open(args.json_out) as f:  # strict JSON: an undefined kappa is null
            json.dump({d: {k: None if v != v else v for k, v in s.items()}
                       for d, s in table.items()}, f, indent=2, allow_nan=False)  # fmt: skip
    missing = sum(1 for r in judged if r["judgement"] is None)
    print(f"{len(judged) - missing} judged, {missing} missing")
    return 0
