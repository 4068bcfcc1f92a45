"""`socratic data validate|convert`: check and import conversation files (no torch, no network).

Both know two formats, told apart by the keys of the first row: conversations
(`conversations`/`messages`, `tutor.schema`) and preference pairs (`prompt`/`chosen`/`rejected`,
`tutor.pairs`).

socratic data validate data/sample/dialogues.jsonl data/pairs/pairs.jsonl
socratic data convert sharegpt.json --out train.jsonl --dedupe
"""

from __future__ import annotations

import argparse
import json
import sys

from tutor.io import MAX_LINE_BYTES


def register(root: argparse._SubParsersAction) -> dict:
    data = root.add_parser("data", help="validate, convert, generate and publish conversation data")
    sub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)

    v = sub.add_parser(
        "validate",
        help="check conversation or preference-pair files against the schema",
        description="Check every row; print a summary and `file:line: reason` per invalid row. "
        "A file whose first row has chosen/rejected is read as preference pairs (a summary per "
        "format; --json prints a list when both are given). "
        "Exit 1 when any row is invalid.",
    )
    v.add_argument(
        "files", nargs="+", metavar="FILE", help="JSONL, JSON array, or saved HF dataset dir"
    )
    v.add_argument("--json", action="store_true", help="print the report as JSON instead of text")
    add_limit_args(v)
    v.set_defaults(func=cmd_validate)

    c = sub.add_parser(
        "convert",
        help="import ShareGPT / OpenAI / Alpaca / pairs / MathDial / preference rows",
        description="Convert every row; rows that fail are listed as `file:line: reason`. "
        "Preference rows (chosen + rejected, with a prompt as messages or text, or implicit in "
        "chosen) become conversational preference pairs; everything else becomes conversations. "
        "The output is written atomically. Exit 1 when any row could not be converted.",
    )
    c.add_argument("inputs", nargs="+", metavar="IN", help="input file(s) or saved HF dataset dir")
    c.add_argument("--out", required=True, metavar="OUT.jsonl", help="output JSONL file")
    c.add_argument(
        "--format",
        default="auto",
        choices=["auto", "openai", "sharegpt", "alpaca", "pairs", "mathdial", "preference"],
        help="input format (default: auto, detected per row by its fields; preference rows "
        "are detected by the first row's chosen/rejected keys)",
    )
    c.add_argument(
        "--system-prompt",
        default=None,
        metavar="TEXT",
        help="system prompt for conversations and pair prompts without one "
        "(default: the tutor system prompt)",
    )
    c.add_argument(
        "--dedupe", action="store_true", help="drop exact duplicates (case/whitespace-normalised)"
    )
    add_limit_args(c)
    c.set_defaults(func=cmd_convert)
    return {"data": sub}


def add_limit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--min-exchanges",
        type=int,
        default=1,
        metavar="N",
        help="fewest user+assistant pairs (default: 1)",
    )
    p.add_argument(
        "--max-exchanges",
        type=int,
        default=None,
        metavar="N",
        help="most user+assistant pairs (default: no limit; a long dialogue is kept)",
    )
    p.add_argument(
        "--max-chars",
        type=int,
        default=8000,
        metavar="N",
        help="most characters per message (default: 8000)",
    )
    p.add_argument(
        "--max-line-mb",
        type=float,
        default=MAX_LINE_BYTES / 2**20,
        metavar="MB",
        help=f"longest JSONL line read, in MiB (default: {MAX_LINE_BYTES // 2**20})",
    )


def _limits(args: argparse.Namespace):
    from tutor.cli import CommandError
    from tutor.schema import Limits

    try:
        return Limits(args.min_exchanges, args.max_exchanges, args.max_chars)
    except ValueError as e:
        raise CommandError(f"--min-exchanges/--max-exchanges/--max-chars: {e}") from None


def _read(args: argparse.Namespace, paths: list[str], iterate, report, **kw):
    """Every valid item of `paths` read by `iterate` (iter_conversations or iter_pairs) within
    the limits of `args`, and the report that counted every row."""
    limits, max_line_bytes = _limits(args), _max_line_bytes(args)
    items = list(iterate(paths, report, limits=limits, max_line_bytes=max_line_bytes, **kw))
    report.check()
    return report, items


def _read_all(args: argparse.Namespace, paths: list[str], **kw):
    from tutor.data import Report, iter_conversations

    return _read(args, paths, iter_conversations, Report(), **kw)


def _max_line_bytes(args: argparse.Namespace) -> int:
    return int(args.max_line_mb * 2**20)


def _first_record(paths: list[str], max_line_bytes: int):
    """The first row of the inputs that decodes, or None (to tell the format by its keys)."""
    from tutor.io import read_rows

    for path in paths:
        rows = read_rows(path, max_line_bytes=max_line_bytes)
        try:
            for row in rows:
                if row.error is None:
                    return row.value
        finally:
            rows.close()
    return None


def _is_preference(args: argparse.Namespace, paths: list[str], fmt: str) -> bool:
    from tutor.pairs import is_preference_shape

    if fmt in ("auto", "native"):
        return is_preference_shape(_first_record(paths, _max_line_bytes(args)))
    return fmt == "preference"


def _read_pairs(args: argparse.Namespace, paths: list[str], **kw):
    from tutor.pairs import PairsReport, iter_pairs

    return _read(args, paths, iter_pairs, PairsReport(), **kw)


def cmd_validate(args: argparse.Namespace) -> int:
    """Each file is read in its own format (told by its first row): conversations or pairs."""
    pairs = [f for f in args.files if _is_preference(args, [f], "native")]
    convs = [f for f in args.files if f not in pairs]
    reports = []
    if convs:
        reports.append(_read_all(args, convs, dedupe=False)[0])
    if pairs:
        reports.append(_read_pairs(args, pairs)[0])
    if args.json:
        outs = []
        for report in reports:
            out = report.summary()
            out["errors"] = [{"where": w, "error": e} for w, e in report.invalid]
            outs.append(out)
        print(json.dumps(outs[0] if len(outs) == 1 else outs, indent=2))
    else:
        for report in reports:
            for where, err in report.invalid:
                print(f"{where}: {err}")
            print_summary(report.summary())
    return 1 if any(r.invalid for r in reports) else 0


def cmd_convert(args: argparse.Namespace) -> int:
    from tutor.io import write_jsonl
    from tutor.prompts import TUTOR_SYSTEM_PROMPT

    system = args.system_prompt if args.system_prompt is not None else TUTOR_SYSTEM_PROMPT
    if _is_preference(args, args.inputs, args.format):
        report, records = _read_pairs(
            args, args.inputs, convert=True, system_prompt=system, dedupe=args.dedupe
        )
    else:
        report, convs = _read_all(
            args, args.inputs, fmt=args.format, system_prompt=system, dedupe=args.dedupe
        )
        records = [c.to_record() for c in convs]
    for where, err in report.invalid:
        print(f"{where}: {err}", file=sys.stderr)
    written = write_jsonl(args.out, records)
    dup = (
        f", {report.duplicates} duplicates dropped"
        if args.dedupe
        else f", {report.duplicates} duplicates kept"
    )
    print(
        f"read {report.rows} rows: wrote {written} to {args.out}, {len(report.invalid)} invalid{dup}"
    )
    return 1 if report.invalid else 0


def print_summary(s: dict) -> None:
    print(
        f"rows: {s['rows']}  valid: {s['valid']}  invalid: {s['invalid']}  duplicates: {s['duplicates']}"
    )
    for reason, n in s["invalid_by_reason"].items():
        print(f"  invalid {n:>6}  {reason}")
    if s.get("format") == "preference":
        print("preference pairs by kind: " + "  ".join(f"{k} {n}" for k, n in s["kinds"].items()))
        print("by subject: " + "  ".join(f"{k} {n}" for k, n in s["subjects"].items()))
        return
    if s["exchanges_histogram"]:
        total = max(s["exchanges_histogram"].values())
        print("exchanges per conversation:")
        for k, n in s["exchanges_histogram"].items():
            print(f"  {k:>3} {n:>7}  {'#' * max(1, round(30 * n / total))}")
    if s["message_chars"]:
        print(
            "user/assistant message characters: "
            + "  ".join(f"{k} {v}" for k, v in s["message_chars"].items())
        )
