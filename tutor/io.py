"""Readers and writers for conversation files: JSONL (streamed), JSON arrays (streamed), and
Hugging Face `datasets` (a saved dataset directory, or a Hub id when the network allows).

Every reader yields `Row`s: either a decoded value or a one-line error, always with where it came
from (`file:line`), so callers can report every bad row and count everything they read.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from tutor.errors import UserError

MAX_LINE_BYTES = 16 * 2**20  # a JSONL line longer than this is reported, not parsed
_CHUNK = 2**20
_MAX_ITEM_CHARS = 64 * _CHUNK  # one array item larger than this is reported
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
_HF_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")


class DataError(UserError):
    """A whole input cannot be read (missing file, unreadable format); one-line message."""


@dataclass
class Row:
    """One input record: `value` when it decoded, else `error`; `where` names its place."""

    source: str
    line: int
    value: Any = None
    error: str | None = None

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


def read_rows(
    path: str | Path, *, max_line_bytes: int = MAX_LINE_BYTES, split: str = "train"
) -> Iterator[Row]:
    """Yield every record of a JSONL file, JSON array file, or Hugging Face dataset."""
    p = Path(path)
    if p.is_dir():
        if any((p / m).exists() for m in _HF_MARKERS):
            yield from _read_hf(str(p), split, local=True)
            return
        raise DataError(
            f"{p}: a directory but not a saved Hugging Face dataset (no {' / '.join(_HF_MARKERS)})"
        )
    if not p.exists():
        if _HUB_ID.match(str(path)):
            yield from _read_hf(str(path), split, local=False)
            return
        raise DataError(f"{p}: no such file")
    if _first_char(p) == "[":
        yield from _read_json_array(p)
    else:
        yield from _read_jsonl(p, max_line_bytes)


def _first_char(p: Path) -> str:
    with open(p, "rb") as f:
        head = f.read(4096).lstrip(codecs.BOM_UTF8).lstrip()
    return chr(head[0]) if head else ""


def _read_jsonl(p: Path, max_line_bytes: int) -> Iterator[Row]:
    src = str(p)
    with open(p, "rb") as f:
        lineno = 0
        while True:
            raw = f.readline(max_line_bytes + 1)
            if not raw:
                return
            lineno += 1
            if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
                size = len(raw) + _skip_rest_of_line(f)
                yield Row(
                    src,
                    lineno,
                    error=f"line is {size:,} bytes, over the {max_line_bytes:,}-byte limit",
                )
                continue
            if lineno == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            if not raw.strip():
                continue
            yield _decode_line(src, lineno, raw, at_eof=not raw.endswith(b"\n"))


def _skip_rest_of_line(f: Any) -> int:
    skipped = 0
    while True:
        more = f.readline(_CHUNK)
        skipped += len(more)
        if not more or more.endswith(b"\n"):
            return skipped


def _decode_line(src: str, lineno: int, raw: bytes, at_eof: bool) -> Row:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return Row(src, lineno, error=f"invalid UTF-8 at byte {e.start} of the line")
    try:
        return Row(src, lineno, value=json.loads(text))
    except json.JSONDecodeError as e:
        if at_eof:
            return Row(
                src,
                lineno,
                error=f"truncated last line (no newline at end of file and not valid JSON: {e.msg})",
            )
        return Row(src, lineno, error=f"not valid JSON: {e.msg} at column {e.colno}")


def _read_json_array(p: Path) -> Iterator[Row]:
    """Stream the items of a top-level JSON array without loading the file whole."""
    src, decoder = str(p), json.JSONDecoder()
    utf8 = codecs.getincrementaldecoder("utf-8")()
    buf, pos, line, eof, nbytes = "", 0, 1, False, 0
    with open(p, "rb") as f:

        def more() -> None:  # append the next chunk to the unread part of the buffer
            nonlocal buf, pos, eof, nbytes
            chunk = f.read(_CHUNK)
            eof, nbytes = not chunk, nbytes + len(chunk)
            buf, pos = buf[pos:] + utf8.decode(chunk, final=eof), 0

        try:
            more()
            pos, line = _skip_ws(buf, pos, line, "\ufeff")
            pos += 1  # the opening '[' (checked by the caller)
            while True:
                pos, line = _skip_ws(buf, pos, line)
                while pos >= len(buf) and not eof:
                    more()
                    pos, line = _skip_ws(buf, pos, line)
                if pos >= len(buf):
                    yield Row(src, line, error="truncated JSON array (no closing ']')")
                    return
                if buf[pos] in ",]":
                    if buf[pos] == "]":
                        return
                    pos += 1
                    continue
                while True:
                    try:
                        value, end = decoder.raw_decode(buf, pos)
                        if end < len(buf) or eof:
                            break  # an item ending exactly at the buffer's end may continue
                    except json.JSONDecodeError as e:
                        if eof or len(buf) - pos > _MAX_ITEM_CHARS:
                            yield Row(
                                src,
                                line,
                                error=f"not valid JSON: {e.msg}; stopped reading the array",
                            )
                            return
                    more()
                yield Row(src, line, value=value)
                line += buf.count("\n", pos, end)
                pos = end
        except UnicodeDecodeError as e:
            yield Row(
                src,
                line,
                error=f"invalid UTF-8 near byte {nbytes - _CHUNK + e.start}; stopped reading the array",
            )


def _skip_ws(buf: str, pos: int, line: int, extra: str = "") -> tuple[int, int]:
    while pos < len(buf) and (buf[pos].isspace() or buf[pos] in extra):
        line += buf[pos] == "\n"
        pos += 1
    return pos, line


def _read_hf(name: str, split: str, *, local: bool) -> Iterator[Row]:
    try:
        import datasets  # heavy: only when a dataset is actually read
    except ImportError as e:
        raise DataError(
            f"{name}: reading Hugging Face datasets needs the 'datasets' package ({e})"
        ) from None
    try:
        ds = datasets.load_from_disk(name) if local else datasets.load_dataset(name, split=split)
    except Exception as e:  # noqa: BLE001 - any loader failure is one line for the user
        raise DataError(
            f"{name}: could not load dataset: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        ) from None
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise DataError(f"{name}: no split {split!r} (has: {', '.join(ds)})")
        ds = ds[split]
    src = f"{name}[{split}]"
    for i, row in enumerate(ds):
        yield Row(src, i + 1, value=dict(row))


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[TextIO]:
    """Write to `path` via a temporary file renamed into place only on success.

    A crash or exception leaves the previous file (or nothing) behind, never half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, mode, encoding="utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_jsonl(path: str | Path, records: Any) -> int:
    """Atomically write an iterable of JSON-serialisable records, one per line; return the count."""
    n = 0
    with atomic_open(path) as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n += 1
    return n
