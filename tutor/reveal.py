"""Does a tutor reply give the answer away? The detector behind the `reveals_answer` metric
(`find_reveal`, with or without a reference answer) and the reference check (`reveals_answer`);
their decisions are listed in `tutor.metrics`' docstring, their agreement with human labels in
docs/evaluation.md.

    from tutor.reveal import find_reveal
    find_reveal([{"role": "user", "content": "What is 9 x 8? I got 63."},
                 {"role": "assistant", "content": "Actually, 9 x 8 = 72."}])
    # Reveal(rule="calculation", span="9 x 8 = 72")
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tutor.numbers import Mention, find_numbers, normalise, number_mentions
from tutor.questions import INTERROGATIVE_IMPERATIVE, prose, strip_accents
from tutor.statements import (
    CLAIM,
    CONCLUSION,
    CORRECTION,
    COUNTERFACTUAL,
    HYPOTHETICAL,
    LABEL,
    LATEX,
    OPERAND_AFTER,
    OPERAND_BEFORE,
    PATTERNS,
    STATEMENT_SPLIT,
    STRONG_CONCLUSION,
)

# ------------------------------------------------------------------ reference answers

_UNIT_TAIL = r"(?:\s*(?:[a-zA-Z°µΩπ][\w°/^²³·*.\s-]*)?)"
_NUMERIC_REF = re.compile(
    rf"^\s*(?:[a-z]\s*=\s*)?(?P<n>-?\$?\s?[\d.,/ ]*\d%?)\s*(?:percent)?{_UNIT_TAIL}$", re.I
)
_MULTI_REF = re.compile(r"^\s*-?[\d.,/]+(?:\s*(?:,|\band\b|\bor\b|\s)\s*-?[\d.,/]+)+\s*$", re.I)
# A reference that names a fix ("add a return statement") is matched by its parts, not verbatim.
_FIX = re.compile(
    r"^(?:use|add|move|put|start|convert|compare|copy|build|sort|increment|lowercase|uppercase|"
    r"raise|divide|multiply|make|change|remove|replace|return|call|check|rename|swap)\b",
    re.I,
)
_STOPWORDS = set(
    "a an the of to in on for with by and or is are be it its this that as at from into when "
    "instead use add make put than then first".split()
)


def _targets(mention: Mention) -> set[Mention]:
    """Equivalent ways a reference value may be written: a percent is also its decimal."""
    value, form = mention
    if form == "pct":
        return {(value, "pct"), (value, "int"), (value / 100, "int"), (value / 100, "frac")}
    return {(value, "int"), (value, "frac"), (value * 100, "pct")}


def _compact(text: str) -> str:
    text = strip_accents(normalise(text)).lower().replace("²", "^2").replace("³", "^3")
    return re.sub(r"[\s`]+", "", text)


def _phrase_in(phrase: str, text: str) -> bool:
    """Word-boundary, case- and accent-insensitive match; a trailing plural 's' is optional."""
    norm = lambda s: " ".join(re.findall(r"\w+", strip_accents(normalise(s)).lower()))  # noqa: E731
    p, t = norm(phrase), norm(text)
    if not p:
        return False
    stem = re.escape(p[:-1] if p.endswith("s") and len(p) > 4 else p)
    return re.search(rf"\b{stem}(?:s|es)?\b", t) is not None


def _numeric_reveal(values: list[Mention], response: str, context: str) -> bool:
    said = set(number_mentions(response))
    known = set(number_mentions(context))
    for value in values:
        # Mentioned in a form not already present in the context (see module docstring).
        fresh = {m for m in _targets(value) & said if m not in known}
        if not fresh:
            return False
    return True


def _prose_reveal(reference: str, response: str, context: str) -> bool:
    """Descriptive answers ("use == instead of ="): every code token, or else every content
    word (5-letter stems), appears in the response, and not all of them were in the context."""
    ref = normalise(reference)
    head = re.split(r"\binstead of\b", ref)[0]
    code = [t.strip(".,") for t in head.split() if re.search(r"[^\w\s,.'-]|\w\.\w|\w_\w", t)]
    if code:
        resp, ctx = _compact(_prose_free_code(response)), _compact(context)
        return all(_compact(t) in resp for t in code) and not all(_compact(t) in ctx for t in code)
    stems = {w.lower()[:5] for w in re.findall(r"[A-Za-z]+", head) if w.lower() not in _STOPWORDS}
    resp_stems = {w.lower()[:5] for w in re.findall(r"[A-Za-z]+", response)}
    ctx_stems = {w.lower()[:5] for w in re.findall(r"[A-Za-z]+", context)}
    return bool(stems) and stems <= resp_stems and not stems <= ctx_stems


def _prose_free_code(text: str) -> str:
    """Markdown bold/italics removed so '**' in a code answer is not matched by emphasis."""
    return re.sub(r"\*\*(?=\S)(.+?)(?<=\S)\*\*", r"\1", text)


def reveals_answer(response: str, reference_answer: str | None, context: str = "") -> bool | None:
    """Whether `response` gives away `reference_answer`; None when there is no reference.

    `context` is everything the student has already seen (the problem, earlier turns): numbers
    restated from it in the same written form are not counted as revealing.
    """
    if reference_answer is None or not str(reference_answer).strip():
        return None
    ref = normalise(str(reference_answer)).strip()
    if _MULTI_REF.match(ref) and len(number_mentions(ref)) > 1:
        return _numeric_reveal(number_mentions(ref), response, context)
    m = _NUMERIC_REF.match(ref)
    if m and "π" not in ref:
        mentions = number_mentions(m["n"] + ("%" if "percent" in ref.lower() else ""))
        if len(mentions) == 1:
            return _numeric_reveal(mentions, response, context)
    compact_ref = _compact(ref)
    if re.search(r"\d", ref) or len(ref.split()) == 1 and not ref.isalpha():
        # Expressions, sequences, times: "(x - 7)(x + 2)", "5-7-5", "8:00 am", "25π cm^2".
        core = _compact(re.sub(r"\s+[a-z]+\^?\d?$", "", ref, flags=re.I))
        resp, ctx = _compact(response), _compact(context)
        return any(c in resp and c not in ctx for c in {compact_ref, core} if c)
    if len(ref.split()) <= 4 and not re.search(r"[^\w\s,.'-]", ref) and not _FIX.match(ref):
        return _phrase_in(ref, response) and not _phrase_in(ref, context)
    return _prose_reveal(ref, response, context)


# ------------------------------------------------------------------ reveals, with or without a reference


@dataclass(frozen=True)
class Reveal:
    """Why a reply reveals: the rule that fired (a key of `tutor.statements.RULES`) and the words
    of the reply that triggered it."""

    rule: str
    span: str


@dataclass(frozen=True)
class _Seen:
    """What a reply is judged against: the values the student's turns hold, the one the student
    concluded last, the reference answer's values, and the word stems of the conversation."""

    known: set
    claim: set
    final: set
    topic: set


def find_reveal(messages: list[dict], reference_answer: str | None = None) -> Reveal | None:
    """The first reason the last message (the tutor's reply) reveals a result, or None.

    A reply reveals when it states a result the student has not produced: a value declared the
    answer, an operation with its result, a result phrase, or a value offered in a yes/no
    question; with a reference answer, stating it is one more signal. A value a student turn
    holds is the student's (the problem is a student turn), so restating the givens or the
    student's numbers is not a reveal, except when the reply concludes with it ("so 14 is our
    answer"), corrects with it ("No, 7 x 2 = 14") or it is the final answer: then it reveals
    unless the student concluded it in their last turn. Results of the tutor's own example ("if
    you had 2 bags of 5 ..."), whose inputs are nowhere in the conversation, are not reveals.
    """
    if not messages or messages[-1].get("role") != "assistant":
        raise ValueError("messages: expected a list ending with the assistant reply")
    reply = _plain(str(messages[-1].get("content") or ""))
    said = [str(m.get("content") or "") for m in messages[:-1] if m.get("role") == "user"]
    context = "\n".join(said)
    if reference_answer is not None and str(reference_answer).strip():
        # A number answer must be stated, not used: "times 26" or "4, 8, 12" does not state 26
        # or 8. Other answers (expressions, code, words) are matched in the reply as written.
        number = _is_number(str(reference_answer))
        stated = _mask_operands(reply) if number else str(messages[-1].get("content") or "")
        if reveals_answer(stated, reference_answer, context):
            span = _reference_span(reply, reference_answer, context) if number else stated
            return Reveal("reference", span.strip())
    seen = _Seen(
        known=_values(context),
        claim=_claim(said[-1] if said else ""),
        final=_values(str(reference_answer or "")),
        topic=_stems(
            " ".join(
                str(m.get("content") or "") for m in messages[:-1] if m.get("role") != "system"
            )
        ),
    )
    earlier: set = set()  # values of the reply's earlier statements: inputs of a chained result
    for statement in (s.strip() for s in STATEMENT_SPLIT.split(reply)):
        hit = _statement_reveal(statement, seen, earlier)
        if hit:
            return hit
        earlier |= _values(statement)
    return None


def _statement_reveal(statement: str, seen: _Seen, earlier: set) -> Reveal | None:
    question = statement.endswith("?") or bool(INTERROGATIVE_IMPERATIVE.match(statement))
    for rule, pattern, declared in PATTERNS:
        if rule == "result" and (question or COUNTERFACTUAL.search(statement)):
            continue  # "so how many are left?" asks; "that would mean Emily is 10" supposes
        for m in pattern.finditer(statement):
            value, before = _values(m["x"]), statement[: m.start("x")]
            if not value or LABEL.search(before):
                continue  # "week 3", "step 2" name things, they are not results
            concluded = not question and (bool(value & seen.final) or _declares(rule, before))
            fresh = not value & (seen.claim if declared or concluded else seen.known)
            if not fresh or not _grounded(before, seen.known | earlier):
                continue
            if rule == "result" and not _on_topic(statement[m.end("x") :], seen.topic):
                continue
            return Reveal(rule, m.group(0).strip())
    return None


def _declares(rule: str, before: str) -> bool:
    """Whether the words before a value conclude with it (or, for a calculation, correct)."""
    if rule == "result":
        return bool(STRONG_CONCLUSION.search(before))
    return bool(CONCLUSION.search(before) or CORRECTION.match(before))


def _grounded(before: str, known: set) -> bool:
    """False for a result of the tutor's own example: a hypothetical whose inputs are new."""
    return not HYPOTHETICAL.search(before) or bool(_values(before) & known)


def _on_topic(after: str, topic: set[str]) -> bool:
    """False when the thing counted after a value is new to the conversation ("Cody has 7 pens"
    in a problem about plates): the tutor's own example, not a result of the problem."""
    counted = re.findall(r"[a-z]+", after.lower())[:2]
    if not counted or counted[0] in _NOT_COUNTED:
        return True  # "15 in total", "10 each": no thing named
    return any(len(w) < 4 or _stems(w) & topic for w in counted)


_NOT_COUNTED = set(
    "in of for to at by per each and or so then a an the total all left more less".split()
)


def _stems(text: str) -> set[str]:
    return {w[:4] for w in re.findall(r"[a-z]{3,}", text.lower())}


def _plain(reply: str) -> str:
    """The reply's prose with LaTeX maths and markdown emphasis turned into plain text."""
    text = normalise(prose(reply))
    for pattern, repl in LATEX:
        text = re.sub(pattern, repl, text)
    return text.replace("⋅", "*").replace("·", "*")


def _mask_operands(text: str) -> str:
    """`text` with the numbers that are inputs of a calculation or items of a list masked."""
    out, last = [], 0
    for number in find_numbers(text):
        start, end = number.span
        before, after = text[max(0, start - 20) : start], text[end:]
        if OPERAND_BEFORE.search(before) or not OPERAND_AFTER.match(after):
            out.append(text[last:start] + "#")
            last = end
    return "".join(out) + text[last:]


def _values(text: str) -> set:
    """Numbers in `text` as (value, form); a time of day ("12:15") as itself; the coefficient of
    a term ("72x") as a number too."""
    times = re.findall(r"\b\d{1,2}:\d{2}\b", text)
    text = re.sub(r"\b\d{1,2}:\d{2}\b", " ", text)
    coefficients = re.sub(r"\b(\d+)[a-zA-Z]\b", r"\1 ", text)
    return {("time", t) for t in times} | set(number_mentions(coefficients))


def _claim(turn: str) -> set:
    """What the student concluded in `turn`: its last number (unless negated, "not 39") and any
    value it names as its result ("I got 13/24", "is it 12?")."""
    turn = normalise(turn)
    claim = set(number_mentions(re.sub(r"\bnot\s+\$?\s?\d[\d,.]*", " ", turn, flags=re.I))[-1:])
    return claim | {v for m in CLAIM.finditer(turn) for v in _values(m["x"])}


def _is_number(reference: str) -> bool:
    """Whether the reference answer is one number (with a unit or currency at most)."""
    ref = normalise(reference).strip()
    return bool(_NUMERIC_REF.match(ref)) and len(number_mentions(ref)) == 1


def _reference_span(reply: str, reference: str, context: str) -> str:
    """The first statement of `reply` that states the reference by itself (else the reply)."""
    for statement in STATEMENT_SPLIT.split(reply):
        if statement.strip() and reveals_answer(_mask_operands(statement), reference, context):
            return statement.strip()
    return reply.strip()
