"""Validate and convert conversation files: the logic behind `socratic data validate|convert`.

Every input row ends up counted exactly once: written (or valid), invalid with `file:line: reason`,
or a duplicate. `Report.check()` asserts the counts add up.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tutor.importers import import_record
from tutor.io import MAX_LINE_BYTES, read_rows
from tutor.schema import (
    Conversation,
    Limits,
    SchemaError,
    fingerprint,
    parse_conversation,
    with_system_prompt,
)

T = TypeVar("T")


@dataclass
class RowCounts:
    """Every row read, counted once: valid, invalid (`file:line`, reason) or a dropped duplicate."""

    rows: int = 0
    valid: int = 0
    duplicates: int = 0  # rows repeating an earlier one (after normalisation)
    deduped: bool = True  # duplicates were dropped (else they also count as valid)
    invalid: list[tuple[str, str]] = field(default_factory=list)  # (file:line, reason)

    @property
    def invalid_by_reason(self) -> dict[str, int]:
        return dict(Counter(reason_key(r) for _, r in self.invalid).most_common())

    def check(self) -> None:
        dropped = self.duplicates if self.deduped else 0
        assert self.rows == self.valid + len(self.invalid) + dropped, "row counts do not add up"


@dataclass
class Report(RowCounts):
    """Counts and problems found while reading conversation files."""

    exchanges: Counter = field(default_factory=Counter)
    lengths: list[int] = field(default_factory=list)  # characters per user/assistant message

    def summary(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "valid": self.valid,
            "invalid": len(self.invalid),
            "duplicates": self.duplicates,
            "invalid_by_reason": self.invalid_by_reason,
            "exchanges_histogram": {str(k): v for k, v in sorted(self.exchanges.items())},
            "message_chars": percentiles(self.lengths, (50, 90, 99, 100)),
        }


def reason_key(reason: str) -> str:
    """Group similar errors: `conversations[3].role: unknown role 'bot'` -> `conversations[i].role: unknown role '…'`."""
    key = re.sub(r"\[\d+\]", "[i]", reason)
    key = re.sub(r"'[^']*'", "'…'", key)
    key = re.sub(r"\(.*?\)", "", key)
    return re.sub(r"\d[\d,]*", "N", key).strip()


def percentiles(values: list[int], qs: Iterable[int]) -> dict[str, int]:
    if not values:
        return {}
    s = sorted(values)
    return {f"p{q}" if q < 100 else "max": s[min(len(s) - 1, (len(s) * q) // 100)] for q in qs}


def iter_conversations(
    paths: Iterable[str | Path],
    report: Report,
    *,
    fmt: str | None = None,
    limits: Limits | None = None,
    system_prompt: str | None = None,
    dedupe: bool = True,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Iterator[Conversation]:
    """Yield valid conversations from files, recording every other row in `report`.

    `fmt=None` reads the native format; otherwise rows are imported from `fmt` ("auto" detects).
    `system_prompt` is inserted where a conversation has none. `dedupe` skips exact duplicates
    (after case and whitespace normalisation) and counts them.
    """

    def parse(value: Any) -> Conversation:
        record = value if fmt is None else import_record(value, fmt)
        conv = parse_conversation(record, limits)  # before insertion: indices as in the row
        if system_prompt is not None:
            conv.messages = with_system_prompt(conv.messages, system_prompt)
        return conv

    convs = iter_valid(
        paths, report, parse, lambda c: fingerprint(c.messages), dedupe=dedupe,
        max_line_bytes=max_line_bytes,
    )  # fmt: skip
    for conv in convs:
        report.exchanges[conv.exchanges] += 1
        report.lengths.extend(len(m["content"]) for m in conv.messages if m["role"] != "system")
        yield conv


def iter_valid(
    paths: Iterable[str | Path],
    report: RowCounts,
    parse: Callable[[Any], T],
    key: Callable[[T], str],
    *,
    dedupe: bool,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Iterator[T]:
    """Yield `parse(row)` for every row of `paths` that reads and parses, recording every other
    row in `report.invalid` as (`file:line`, reason: the `SchemaError`); rows with an earlier
    row's `key` are counted as duplicates and skipped when `dedupe`."""
    seen: set[str] = set()
    report.deduped = dedupe
    for path in paths:
        for row in read_rows(path, max_line_bytes=max_line_bytes):
            report.rows += 1
            if row.error:
                report.invalid.append((row.where, row.error))
                continue
            try:
                item = parse(row.value)
            except SchemaError as e:
                report.invalid.append((row.where, str(e)))
                continue
            k = key(item)
            if k in seen:
                report.duplicates += 1
                if dedupe:
                    continue
            seen.add(k)
            report.valid += 1
            yield item
