"""The generator's files: the output JSONL (append-only, crash-safe) and its side files.

    train.jsonl             one accepted conversation per line
    train.manifest.json     arguments, counts, tokens, cost (rewritten atomically)
    train.critique.jsonl    original, critique and revision of every critiqued conversation
    train.rejected.jsonl    every rejected item or unreadable reply, with its reason

Crash safety: each batch of accepted conversations is written with one `write` of whole lines,
then flushed and fsync'ed, so a kill loses nothing that was reported accepted. A kill in the middle
of a write can at worst leave one partial last line; the next run detects it, reports it and
truncates it before appending (it is never counted). An exclusive `flock` keeps two runs from
writing the same file.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tutor.io import DataError, atomic_open, read_rows
from tutor.schema import Conversation, Limits, SchemaError, parse_conversation


def side_file(out: Path, kind: str) -> Path:
    """`train.jsonl` -> `train.<kind>` (kind: manifest.json, critique.jsonl, rejected.jsonl)."""
    stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.name
    return out.with_name(f"{stem}.{kind}")


def truncate_partial_line(fd: int) -> int:
    """Cut a trailing line without its newline; return the number of bytes removed."""
    size = os.fstat(fd).st_size
    pos, block = size, 1 << 16
    while pos > 0:
        start = max(0, pos - block)
        chunk = os.pread(fd, pos - start, start)
        nl = chunk.rfind(b"\n")
        if nl >= 0:
            keep = start + nl + 1
            break
        pos = start
    else:
        keep = 0
    if keep < size:
        os.ftruncate(fd, keep)
    return size - keep


class Appender:
    """An exclusive, append-only JSONL writer; every `append` is durable when it returns."""

    def __init__(self, path: Path, *, lock: bool = True, sync: bool = True):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.sync = sync
        self.fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        if lock:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(self.fd)
                raise DataError(f"{path}: another process is writing this file") from None
        self.truncated = truncate_partial_line(self.fd)

    def append(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        data = b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in records)
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]
        if self.sync:
            os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


@dataclass
class Existing:
    """What an output file already holds."""

    messages: list[list[dict[str, str]]] = field(default_factory=list)
    requests: set[int] = field(default_factory=set)  # request indices recorded in meta

    @property
    def count(self) -> int:
        return len(self.messages)


def valid_rows(path: Path, limits: Limits, bad: list[str]) -> Iterator[tuple[str, Conversation]]:
    """(file:line, conversation) for every valid row of a conversation file; every other row is
    appended to `bad` as `file:line: reason`."""
    for row in read_rows(path):
        try:
            if row.error:
                raise SchemaError(row.error)
            conv = parse_conversation(row.value, limits)
        except SchemaError as e:
            bad.append(f"{row.where}: {e}")
            continue
        yield row.where, conv


def read_existing(path: Path, limits: Limits) -> Existing:
    """Load every conversation of a file being extended; raise `DataError` on an invalid row."""
    out = Existing()
    if not path.exists() or path.stat().st_size == 0:
        return out
    bad: list[str] = []
    for _where, conv in valid_rows(path, limits, bad):
        out.messages.append(conv.messages)
        if isinstance(conv.meta.get("request"), int):
            out.requests.add(conv.meta["request"])
    if bad:
        raise DataError(
            f"{len(bad)} invalid row(s) in the file to extend (first: {bad[0]}); "
            "check it with `socratic data validate`"
        )
    return out


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    with atomic_open(path) as f:
        json.dump(manifest, f, indent=2, ensure_ascii=False)
        f.write("\n")


def read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# --- the manifest's compact fields


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def sum_usage(sessions: list[dict]) -> dict[str, int]:
    """Prompt and completion tokens over every session of a manifest."""
    out = {"prompt_tokens": 0, "completion_tokens": 0}
    for s in sessions:
        for u in s.get("usage", {}).values():
            out["prompt_tokens"] += u.get("prompt_tokens", 0)
            out["completion_tokens"] += u.get("completion_tokens", 0)
    return out


def ranges(indices: set[int]) -> list[list[int]]:
    """{0,1,2,5} -> [[0, 2], [5, 5]] (inclusive), so the manifest stays small."""
    out: list[list[int]] = []
    for i in sorted(indices):
        if out and out[-1][1] == i - 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out


def expand(spans: list) -> set[int]:
    """`ranges` read back: [[0, 2], [5, 5]] -> {0, 1, 2, 5}; malformed spans are skipped."""
    done: set[int] = set()
    for r in spans:
        if isinstance(r, list) and len(r) == 2 and all(isinstance(x, int) for x in r):
            done.update(range(r[0], r[1] + 1))
    return done
