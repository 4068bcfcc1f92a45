"""Importers from common chat-dataset shapes into the conversation format.

Formats: `openai` (`conversations`/`messages` of role/content), `sharegpt` (`from`/`value` with
human/gpt), `alpaca` (`instruction`/`input`/`output`), `pairs` (`{"system","user","assistant"}`),
and `mathdial` (MathDial transcripts: `Teacher:`/`Student:` turns joined by `|EOM|`, each teacher
turn opening with its move label in parentheses). `detect_format` picks one by the record's fields.
Each importer returns a record `{"conversations": [...], "meta": {...}}` or raises `SchemaError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tutor.schema import SchemaError, messages_of

FORMATS = ("openai", "sharegpt", "alpaca", "pairs", "mathdial")

_SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "model": "assistant",
    "bing": "assistant",
    "system": "system",
}
_MATHDIAL_MOVE = re.compile(r"^\s*\((\w+)\)\s*")


def detect_format(record: Any) -> str:
    """Name the importer for a record by its fields; raise `SchemaError` when none fits."""
    if not isinstance(record, dict):
        raise SchemaError("record: expected a JSON object")
    if "conversations" in record or "messages" in record:
        _, msgs = messages_of(record)
        first = msgs[0] if isinstance(msgs, list) and msgs else {}
        if isinstance(first, dict) and "from" in first and "value" in first:
            return "sharegpt"
        return "openai"
    if "instruction" in record and "output" in record:
        return "alpaca"
    if "user" in record and "assistant" in record:
        return "pairs"
    if isinstance(record.get("conversation"), str) and "Teacher:" in record["conversation"]:
        return "mathdial"
    raise SchemaError(
        "record: unknown format (expected keys conversations/messages, instruction+output, "
        f"user+assistant, or a MathDial conversation; got {', '.join(sorted(record)) or 'none'})"
    )


def from_openai(record: dict) -> dict:
    key, msgs = messages_of(record)
    out: dict[str, Any] = {"conversations": msgs}
    extra = {k: v for k, v in record.items() if k not in (key, "meta")}
    meta = dict(record.get("meta") or {}, **({"extra": extra} if extra else {}))
    if meta:
        out["meta"] = meta
    return out


def from_sharegpt(record: dict) -> dict:
    key, turns = messages_of(record)
    if not isinstance(turns, list):
        raise SchemaError(f"{key}: expected a list of turns")
    msgs = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
            raise SchemaError(f"{key}[{i}]: expected an object with 'from' and 'value'")
        speaker = turn["from"]
        role = _SHAREGPT_ROLES.get(str(speaker).lower())
        if role is None:
            raise SchemaError(
                f"{key}[{i}].from: unknown speaker {speaker!r} (allowed: {', '.join(sorted(_SHAREGPT_ROLES))})"
            )
        msgs.append({"role": role, "content": turn["value"]})
    if isinstance(record.get("system"), str) and record["system"].strip():
        msgs.insert(0, {"role": "system", "content": record["system"]})
    return {"conversations": msgs}


def from_alpaca(record: dict) -> dict:
    instruction, extra_input, output = (
        record.get("instruction"),
        record.get("input") or "",
        record.get("output"),
    )
    for name, value in (("instruction", instruction), ("input", extra_input), ("output", output)):
        if not isinstance(value, str):
            raise SchemaError(f"{name}: expected a string")
    user = f"{instruction}\n\n{extra_input}" if extra_input.strip() else instruction
    msgs = [{"role": "user", "content": user}, {"role": "assistant", "content": output}]
    if isinstance(record.get("system"), str) and record["system"].strip():
        msgs.insert(0, {"role": "system", "content": record["system"]})
    return {"conversations": msgs}


def from_pairs(record: dict) -> dict:
    msgs = []
    for role in ("system", "user", "assistant"):
        if role == "system" and not record.get("system"):
            continue
        msgs.append({"role": role, "content": record.get(role)})
    return {"conversations": msgs}


def from_mathdial(record: dict) -> dict:
    """MathDial: teacher = assistant, student = user (the student's name may replace 'Student').

    A transcript opens with the teacher, so the first user turn is the problem with the student's
    own (incorrect) solution, which is what the teacher had read. Consecutive turns of one speaker
    are joined; a trailing student turn is kept in meta (`trailing_user`), not dropped.
    """
    conv = record.get("conversation")
    if not isinstance(conv, str) or not conv.strip():
        raise SchemaError("conversation: expected a non-empty string of |EOM|-separated turns")
    question = record.get("question")
    if not isinstance(question, str) or not question.strip():
        raise SchemaError("question: expected a non-empty string")
    opening = question.strip()
    attempt = record.get("student_incorrect_solution")
    if isinstance(attempt, str) and attempt.strip():
        opening += f"\n\nHere is my solution:\n{attempt.strip()}"
    msgs: list[dict[str, str]] = [{"role": "user", "content": opening}]
    moves: list[str] = []
    for i, turn in enumerate(t for t in conv.split("|EOM|") if t.strip()):
        speaker, sep, text = turn.partition(":")
        if not sep:
            raise SchemaError(f"conversation turn {i}: no 'Speaker:' prefix in {turn[:40]!r}")
        role = "assistant" if speaker.strip() == "Teacher" else "user"
        text = text.strip()
        move = None
        if role == "assistant":
            m = _MATHDIAL_MOVE.match(text)
            if m:
                move, text = m.group(1), text[m.end() :]
        if not text:
            continue  # a label with no words: nothing to say; the move is kept below
        if msgs[-1]["role"] == role:
            msgs[-1]["content"] += "\n" + text
            if move and role == "assistant":
                moves[-1] += f"+{move}"
            continue
        msgs.append({"role": role, "content": text})
        if role == "assistant":
            moves.append(move or "unlabelled")
    meta: dict[str, Any] = {"source": "mathdial", "qid": record.get("qid"), "moves": moves}
    truth = record.get("ground_truth")
    if isinstance(truth, str) and truth.strip():
        meta["reference_answer"] = truth.strip().splitlines()[-1].strip()
    if msgs[-1]["role"] == "user" and len(msgs) > 1:
        meta["trailing_user"] = msgs.pop()["content"]
    return {"conversations": msgs, "meta": meta}


IMPORTERS: dict[str, Callable[[dict], dict]] = {
    "openai": from_openai,
    "sharegpt": from_sharegpt,
    "alpaca": from_alpaca,
    "pairs": from_pairs,
    "mathdial": from_mathdial,
}


def import_record(record: Any, fmt: str = "auto") -> dict:
    """Convert one record from `fmt` (or the detected format) into a conversation record."""
    if fmt == "auto":
        fmt = detect_format(record)
    if fmt not in IMPORTERS:
        raise SchemaError(f"format: unknown {fmt!r} (allowed: auto, {', '.join(FORMATS)})")
    if not isinstance(record, dict):
        raise SchemaError("record: expected a JSON object")
    return IMPORTERS[fmt](record)
