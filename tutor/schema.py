"""The one conversation format: `{"conversations": [{"role", "content"}, ...]}` (also read `messages`).

Rules: at most one system message, and only first; then user and assistant strictly alternating,
starting with user and ending with assistant; content is a non-empty string after stripping; the
characters per message are bounded by `Limits`, and so is the number of exchanges (user+assistant
pairs): at least one, and no upper bound unless one is given (a long dialogue is not a defect).

`parse_conversation` returns a normalised `Conversation` or raises `SchemaError` whose message is
one line naming the field, e.g. `conversations[3].role: unknown role 'bot' (allowed: ...)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tutor.errors import UserError

ROLES = ("system", "user", "assistant")
MESSAGE_KEYS = ("conversations", "messages")


class SchemaError(UserError, ValueError):
    """A record breaks the conversation schema; the message names the offending field."""


@dataclass(frozen=True)
class Limits:
    """Bounds a valid conversation must respect."""

    min_exchanges: int = 1
    max_exchanges: int | None = None  # None: no upper bound
    max_chars: int = 8000  # per message

    def __post_init__(self) -> None:
        top = self.min_exchanges if self.max_exchanges is None else self.max_exchanges
        if not 1 <= self.min_exchanges <= top:
            raise ValueError(
                f"exchanges bounds must satisfy 1 <= min <= max, got {self.exchanges_range}"
            )
        if self.max_chars < 1:
            raise ValueError(f"max_chars must be >= 1, got {self.max_chars}")

    @property
    def exchanges_range(self) -> str:
        """The allowed exchanges as text: "1..8", or "1.." without an upper bound."""
        return f"{self.min_exchanges}..{self.max_exchanges or ''}"

    def allows_exchanges(self, n: int) -> bool:
        return self.min_exchanges <= n and (self.max_exchanges is None or n <= self.max_exchanges)


@dataclass
class Conversation:
    """A validated conversation: role/content messages plus free-form metadata."""

    messages: list[dict[str, str]]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def system(self) -> str | None:
        return self.messages[0]["content"] if self.messages[0]["role"] == "system" else None

    @property
    def exchanges(self) -> int:
        return sum(1 for m in self.messages if m["role"] == "assistant")

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"conversations": self.messages}
        if self.meta:
            record["meta"] = self.meta
        return record


def messages_of(record: Any) -> tuple[str, Any]:
    """Return (key, value) of the message list in a record, accepting both spellings."""
    if not isinstance(record, dict):
        raise SchemaError(f"record: expected a JSON object, got {_type_name(record)}")
    present = [k for k in MESSAGE_KEYS if k in record]
    if not present:
        raise SchemaError("record: missing key 'conversations' (or 'messages')")
    if len(present) > 1:
        raise SchemaError("record: has both 'conversations' and 'messages'; keep one")
    return present[0], record[present[0]]


def parse_messages(
    raw: Any,
    key: str = "conversations",
    limits: Limits | None = None,
    *,
    final_role: str = "assistant",
) -> list[dict[str, str]]:
    """Validate a message list and return it normalised to plain {role, content} dicts.

    `final_role` is "assistant" for training data; "user" for a prompt awaiting a reply; "any" to skip.
    """
    limits = limits or Limits()
    if not isinstance(raw, list):
        raise SchemaError(f"{key}: expected a list of messages, got {_type_name(raw)}")
    if not raw:
        raise SchemaError(f"{key}: empty list of messages")
    out: list[dict[str, str]] = []
    for i, msg in enumerate(raw):
        out.append(parse_message(msg, f"{key}[{i}]", limits))
        if out[-1]["role"] == "system" and i != 0:
            raise SchemaError(f"{key}[{i}].role: a system message may only come first")
    _check_order(out, key, final_role)
    exchanges = sum(1 for m in out if m["role"] == "assistant")
    if final_role == "assistant" and not limits.allows_exchanges(exchanges):
        raise SchemaError(f"{key}: {exchanges} exchanges, outside {limits.exchanges_range}")
    return out


def parse_message(msg: Any, where: str, limits: Limits | None = None) -> dict[str, str]:
    """Validate one {role, content} message and return it as a plain dict; `where` names it."""
    limits = limits or Limits()
    if not isinstance(msg, dict):
        raise SchemaError(
            f"{where}: expected an object with 'role' and 'content', got {_type_name(msg)}"
        )
    for k in ("role", "content"):
        if k not in msg:
            raise SchemaError(f"{where}: missing key '{k}'")
    role, content = msg["role"], msg["content"]
    if not isinstance(role, str):
        raise SchemaError(f"{where}.role: expected a string, got {_type_name(role)}")
    if role not in ROLES:
        raise SchemaError(f"{where}.role: unknown role {role!r} (allowed: {', '.join(ROLES)})")
    if not isinstance(content, str):
        raise SchemaError(f"{where}.content: expected a string, got {_type_name(content)}")
    if not content.strip():
        raise SchemaError(f"{where}.content: empty after stripping whitespace")
    if len(content) > limits.max_chars:
        raise SchemaError(f"{where}.content: {len(content)} characters > max {limits.max_chars}")
    return {"role": role, "content": content}


def _check_order(msgs: list[dict[str, str]], key: str, final_role: str) -> None:
    start = 1 if msgs[0]["role"] == "system" else 0
    if start == len(msgs):
        raise SchemaError(f"{key}: only a system message, no user turn")
    for j in range(start, len(msgs)):
        expected = "user" if (j - start) % 2 == 0 else "assistant"
        if msgs[j]["role"] != expected:
            raise SchemaError(
                f"{key}[{j}].role: expected {expected!r} (user and assistant alternate, user first), got {msgs[j]['role']!r}"
            )
    last = msgs[-1]["role"]
    if final_role != "any" and last != final_role:
        raise SchemaError(f"{key}: must end with an {final_role} message, ends with {last!r}")


def parse_conversation(record: Any, limits: Limits | None = None) -> Conversation:
    """Validate one training record and return it as a `Conversation` (raises `SchemaError`)."""
    key, raw = messages_of(record)
    messages = parse_messages(raw, key, limits)
    meta = record.get("meta", {})
    if not isinstance(meta, dict):
        raise SchemaError(f"meta: expected an object, got {_type_name(meta)}")
    return Conversation(messages=messages, meta=meta)


def with_system_prompt(messages: list[dict[str, str]], system_prompt: str) -> list[dict[str, str]]:
    """Return messages with `system_prompt` inserted first when there is no system message."""
    if messages and messages[0]["role"] == "system":
        return messages
    return [{"role": "system", "content": system_prompt}, *messages]


def normalise_text(text: str) -> str:
    """Case- and whitespace-insensitive form used for exact-duplicate detection."""
    return " ".join(text.lower().split())


def fingerprint(messages: list[dict[str, str]]) -> str:
    """A stable key for exact duplicates: roles and normalised contents, system prompt excluded."""
    return "\x1e".join(
        f"{m['role']}\x1f{normalise_text(m['content'])}" for m in messages if m["role"] != "system"
    )


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number" if isinstance(value, (int, float)) else type(value).__name__
    )
