"""Quality gates for generated conversations: schema, Socratic checks, and duplicate detection.

`check_candidate` turns one extracted item into a validated `Conversation` with the project's tutor
system prompt, or raises `Rejected` with a short, stable reason (used as a counter key):

- schema: the data layer's `parse_conversation` (roles, alternation, exchange bounds, sizes);
- socratic: every tutor turn before the last asks the student a question (`tutor.metrics`), no
  tutor turn is longer than `max_words`, and no tutor turn before the last states the final answer
  (the critic's `final_answer` when there is one, else a number the student ends on);
  the last turn may confirm without a question.

`Deduper` finds exact duplicates (`tutor.schema.fingerprint`) and near-duplicates: MinHash over word
3-grams with LSH banding, once for the student's opening message and once for the whole dialogue.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from array import array
from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from tutor.data import reason_key
from tutor.errors import UserError
from tutor.metrics import asks_question, number_mentions, reveals_answer, words
from tutor.prompts import TUTOR_SYSTEM_PROMPT
from tutor.schema import Conversation, Limits, SchemaError, fingerprint, parse_conversation


class Rejected(UserError):
    """A candidate failed a gate; `reason` is a stable counter key, `detail` the full message."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.detail = detail or reason


@dataclass(frozen=True)
class Rules:
    """Socratic checks applied to every generated conversation."""

    max_words: int = 150  # per tutor turn
    questions: bool = True  # tutor turns before the last must ask a question
    reveal: bool = True  # tutor turns before the last must not state the final answer


def check_candidate(
    item: Any, limits: Limits, rules: Rules, final_answer: str | None = None
) -> Conversation:
    """Validate one extracted item; return it with the tutor system prompt first."""
    if not isinstance(item, dict) or not any(k in item for k in ("conversations", "messages")):
        raise Rejected("schema: item is not an object with 'conversations'")
    key = "conversations" if "conversations" in item else "messages"
    try:
        conv = parse_conversation({"conversations": item[key]}, limits)
    except SchemaError as e:
        raise Rejected(f"schema: {reason_key(str(e))}", str(e)) from None
    dialogue = [m for m in conv.messages if m["role"] != "system"]
    messages = [{"role": "system", "content": TUTOR_SYSTEM_PROMPT}, *dialogue]
    socratic_problem(messages, rules, final_answer)
    return Conversation(messages=messages, meta={})


def socratic_problem(
    messages: list[dict[str, str]], rules: Rules, final_answer: str | None = None
) -> None:
    """Raise `Rejected` when the tutor's turns break the Socratic rules."""
    turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    reference = final_answer or student_conclusion(messages)
    for n, i in enumerate(turns, 1):
        text, last = messages[i]["content"], n == len(turns)
        if (w := words(text)) > rules.max_words:
            raise Rejected(
                f"socratic: tutor turn longer than {rules.max_words} words",
                f"tutor turn {n}: {w} words > {rules.max_words}",
            )
        if last:
            continue
        if rules.questions and not asks_question(text):
            raise Rejected(
                "socratic: tutor turn before the last asks no question",
                f"tutor turn {n} of {len(turns)} asks no question: {text[:80]!r}",
            )
        context = "\n".join(m["content"] for m in messages[:i] if m["role"] != "system")
        if rules.reveal and reference and reveals_answer(text, reference, context):
            raise Rejected(
                "socratic: tutor states the final answer before the last turn",
                f"tutor turn {n} of {len(turns)} states {reference!r}",
            )


def student_conclusion(messages: list[dict[str, str]]) -> str | None:
    """The number a short last student message ends on ("so it's 12?"), typically the answer."""
    users = [m["content"] for m in messages if m["role"] == "user"]
    if len(users) < 2 or words(users[-1]) > 8 or not re.search(r"\d", users[-1]):
        return None
    found = {value for value, _ in number_mentions(users[-1])}
    if len(found) != 1:
        return None
    value: Fraction = found.pop()
    return (
        str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    )


# ------------------------------------------------------------------ duplicates

_NUM_PERM = 64  # MinHash permutations: (a * h + b) mod a Mersenne prime, h one hash per shingle
_BANDS = 16  # LSH bands of 4 rows: candidates from Jaccard ~0.5 up
_ROWS = _NUM_PERM // _BANDS
_WORD = re.compile(r"\w+")
_PRIME = (1 << 61) - 1
_PERM_RNG = np.random.default_rng(20251122)  # fixed: signatures must not change between runs
_A = _PERM_RNG.integers(1, _PRIME, _NUM_PERM, dtype=np.uint64)
_B = _PERM_RNG.integers(0, _PRIME, _NUM_PERM, dtype=np.uint64)


def shingles(text: str, n: int = 3) -> set[str]:
    """Word n-grams of the lower-cased text (the whole text when it has fewer than n words)."""
    toks = _WORD.findall(text.lower())
    if len(toks) < n:
        return {" ".join(toks)}
    return {" ".join(toks[i : i + n]) for i in range(len(toks) - n + 1)}


def minhash(items: set[str]) -> array:
    """64 MinHash values (uint32) of a shingle set: one 32-bit hash per shingle, 64 permutations
    applied at once with numpy (the products wrap modulo 2**64 before the prime: the usual
    fast variant, still well spread)."""
    hashes = np.fromiter((zlib.crc32(s.encode()) for s in items), dtype=np.uint64, count=len(items))
    perm = (np.outer(hashes, _A) + _B) % _PRIME  # [shingles, 64]
    return array("I", (perm.min(axis=0) & 0xFFFFFFFF).astype(np.uint32).tobytes())


def jaccard_estimate(a: array, b: array) -> float:
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


class _LSH:
    def __init__(self, threshold: float):
        self.threshold = threshold
        self.buckets: list[dict[bytes, list[int]]] = [defaultdict(list) for _ in range(_BANDS)]
        self.sigs: list[array] = []

    def _bands(self, sig: array) -> list[bytes]:
        return [sig[b * _ROWS : (b + 1) * _ROWS].tobytes() for b in range(_BANDS)]

    def best(self, sig: array) -> float:
        """Highest estimated Jaccard similarity to an indexed item (0.0 when none is close)."""
        seen: set[int] = set()
        best = 0.0
        for b, key in enumerate(self._bands(sig)):
            for idx in self.buckets[b].get(key, ()):
                if idx not in seen:
                    seen.add(idx)
                    best = max(best, jaccard_estimate(sig, self.sigs[idx]))
        return best

    def add(self, sig: array) -> None:
        idx = len(self.sigs)
        self.sigs.append(sig)
        for b, key in enumerate(self._bands(sig)):
            self.buckets[b][key].append(idx)


@dataclass(frozen=True)
class DupKeys:
    exact: bytes  # 16-byte hash of the normalised fingerprint
    opening: array  # MinHash of the student's first message
    dialogue: array  # MinHash of every non-system message


class Deduper:
    """Exact and near-duplicate detection over everything `add`ed so far.

    d.check(k := d.keys(messages)) or d.add(k)
    """

    def __init__(self, opening_threshold: float = 0.8, dialogue_threshold: float = 0.7):
        self.exact: set[bytes] = set()
        self.opening = _LSH(opening_threshold)
        self.dialogue = _LSH(dialogue_threshold)

    @staticmethod
    def keys(messages: list[dict[str, str]]) -> DupKeys:
        """The exact key and the two MinHash signatures (compute once, check and add many)."""
        exact = hashlib.blake2b(fingerprint(messages).encode(), digest_size=16).digest()
        dialogue = [m["content"] for m in messages if m["role"] != "system"]
        return DupKeys(
            exact, minhash(shingles(dialogue[0])), minhash(shingles("\n".join(dialogue)))
        )

    def check(self, keys: DupKeys) -> str | None:
        """The duplicate kind ("exact", "near: opening", "near: dialogue") or None."""
        if keys.exact in self.exact:
            return "exact"
        if self.opening.best(keys.opening) >= self.opening.threshold:
            return "near: opening"
        if self.dialogue.best(keys.dialogue) >= self.dialogue.threshold:
            return "near: dialogue"
        return None

    def add(self, keys: DupKeys) -> None:
        self.exact.add(keys.exact)
        self.opening.add(keys.opening)
        self.dialogue.add(keys.dialogue)

    def __len__(self) -> int:
        return len(self.exact)
