"""Fixtures of the generator tests: `check_file(path, n)` asserts a generated file holds exactly n
valid, unique conversations with no partial line, and returns its records."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tutor.data import Report, iter_conversations
from tutor.schema import fingerprint


def assert_clean_file(path: Path, n: int) -> list[dict]:
    raw = path.read_bytes()
    lines = raw.count(b"\n")
    assert raw.endswith(b"\n") and lines == n, (
        f"{lines} lines (ends with newline: {raw[-1:]!r}), want {n}"
    )
    report = Report()
    convs = list(iter_conversations([path], report, dedupe=False))
    assert report.valid == n and not report.invalid, report.invalid[:3]
    assert len({fingerprint(c.messages) for c in convs}) == n, "duplicates in the file"
    return [c.to_record() for c in convs]


@pytest.fixture
def check_file() -> Callable[[Path, int], list[dict]]:
    return assert_clean_file
