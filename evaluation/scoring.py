"""`socratic eval score IN.jsonl --out OUT.jsonl`: offline metrics of replies already written.

Each input row is `{"messages": [... ending with the assistant reply], "reference_answer": str |
null}` (extra fields are kept); each output row is the input plus `"metrics"` from
`tutor.metrics.score_response`: `reveals_answer` is judged with or without a reference, and
`reveal` names the rule and the words that triggered it; `accepts_student_claim` (with `verdict`,
its rule and words), `student_claim_correct`, `affirms_wrong` and `confirms_right` say what the
reply does with the student's claim (None where there is no claim, or no reference to judge it
by). A bad row stops the run with its file:line and nothing is written.
"""

from __future__ import annotations

from pathlib import Path

from tutor.io import DataError, read_rows, write_jsonl
from tutor.metrics import score_response


def score_rows(path: str | Path):
    """Yield every row of `path` with its metrics; DataError names the first bad row."""
    for row in read_rows(path):
        if row.error:
            raise DataError(f"{row.where}: {row.error}")
        value = row.value
        if not isinstance(value, dict):
            raise DataError(f"{row.where}: expected a JSON object")
        msgs = value.get("messages", value.get("conversations"))
        if not isinstance(msgs, list) or not msgs or not all(isinstance(m, dict) for m in msgs):
            raise DataError(f"{row.where}: messages: expected a non-empty list of objects")
        if msgs[-1].get("role") != "assistant" or not isinstance(msgs[-1].get("content"), str):
            raise DataError(f"{row.where}: messages: must end with an assistant reply (text)")
        ref = value.get("reference_answer")
        if ref is not None and not isinstance(ref, str):
            raise DataError(f"{row.where}: reference_answer: expected a string or null")
        yield {**value, "metrics": score_response(msgs, ref)}


def score_file(path: str | Path, out: str | Path) -> int:
    """Score every row of `path` into `out` (written atomically); return the row count."""
    rows = list(score_rows(path))  # validate everything before writing anything
    return write_jsonl(out, rows)
