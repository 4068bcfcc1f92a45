"""Pull conversation objects out of a model's reply, however it was wrapped.

Handles: a JSON array, `{"dialogues": [...]}` (structured outputs), a single conversation object,
code fences, prose before or after the JSON, trailing commas, objects one after another without an
array, and an item cut off by `max_tokens` (the items before it are kept). Whatever cannot be read
is counted in `Extraction.unparsed`, never dropped silently.

    extract_conversations('Sure!\n```json\n[{"conversations": [...]},]\n```')
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)(?:```|\Z)", re.S)
_WRAPPED = re.compile(r'^\{\s*"(?:dialogues|items|data|examples)"\s*:\s*\[')
_ITEM_START = re.compile(r'\{\s*"(?:conversations|messages)"\s*:')
_DECODER = json.JSONDecoder()


@dataclass
class Extraction:
    """Items found in one reply (each meant to be a conversation record) and what failed."""

    items: list[Any] = field(default_factory=list)
    unparsed: int = 0  # items (or whole replies) that could not be decoded
    errors: list[str] = field(default_factory=list)  # one line per unparsed item

    @property
    def returned(self) -> int:
        return len(self.items) + self.unparsed


def extract_conversations(text: str) -> Extraction:
    """Decode the conversation records in `text` (see the module docstring)."""
    body = _unfence(text or "")
    start = _first_json(body)
    if start is None:
        return Extraction(unparsed=1, errors=["no JSON array or object in the reply"])
    body = body[start:]
    try:
        value, end = _DECODER.raw_decode(body)
    except json.JSONDecodeError:
        body = remove_trailing_commas(body)  # only when needed: it walks the whole reply
        try:
            value, end = _DECODER.raw_decode(body)
        except json.JSONDecodeError:
            return _scan(body)
    if body[end:].lstrip(", \n\r\t").startswith("{"):
        return _scan(body)  # objects one after another, not in an array
    return Extraction(items=_as_items(value))


def _unfence(text: str) -> str:
    """The first fenced block that holds JSON, else the text itself."""
    for block in _FENCE.findall(text):
        if _first_json(block) is not None:
            return block
    return text


def _first_json(text: str) -> int | None:
    positions = [p for p in (text.find("["), text.find("{")) if p >= 0]
    return min(positions) if positions else None


def _as_items(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        for key in ("dialogues", "items", "data", "examples"):
            if isinstance(value.get(key), list) and len(value) == 1:
                return value[key]
        inner = value.get("conversations")
        if (
            isinstance(inner, list)
            and inner
            and all(isinstance(m, dict) and "conversations" in m for m in inner)
        ):
            return inner  # {"conversations": [{"conversations": [...]}, ...]}
    return [value]


def _scan(body: str) -> Extraction:
    """Decode item by item after a whole-reply parse failed; resynchronise after a bad item."""
    out = Extraction()
    if body.startswith("["):
        pos = 1
    elif m := _WRAPPED.match(body):
        pos = m.end()
    else:
        pos = 0  # objects one after another
    while True:
        while pos < len(body) and (body[pos].isspace() or body[pos] == ","):
            pos += 1
        if pos >= len(body) or body[pos] in "]}":
            break
        try:
            value, pos = _DECODER.raw_decode(body, pos)
            out.items.append(value)
            continue
        except json.JSONDecodeError as e:
            truncated = e.pos >= len(body) - 1 or not _ITEM_START.search(body, pos + 1)
            out.unparsed += 1
            out.errors.append(
                f"{'truncated item at the end' if truncated else 'malformed item'}: {e.msg}"
            )
            nxt = _ITEM_START.search(body, pos + 1)
            if nxt is None:
                break
            pos = nxt.start()
    return out


def remove_trailing_commas(text: str) -> str:
    """Drop commas directly before `]` or `}` (outside strings), a common LLM JSON slip."""
    out: list[str] = []
    in_string = escaped = False
    pending = -1  # index in `out` of a comma that may be trailing
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            out.append(ch)
            continue
        if ch == '"':
            in_string, pending = True, -1
        elif ch in "]}" and pending >= 0:
            del out[pending]
            pending = -1
        elif ch == ",":
            pending = len(out)
        elif not ch.isspace():
            pending = -1
        out.append(ch)
    return "".join(out)


def extract_object(text: str) -> dict:
    """The first JSON object in a reply (fences, prose and trailing commas tolerated)."""
    body = _unfence(text or "")
    start = body.find("{")
    if start < 0:
        raise ValueError("no JSON object in the reply")
    try:
        value, _ = _DECODER.raw_decode(remove_trailing_commas(body[start:]))
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON: {e.msg}") from None
    return value
