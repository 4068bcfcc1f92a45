"""Offline Socratic metrics: does a tutor response ask the student something, and does it give the
answer away? Pure standard-library heuristics, shared by the data generator (to filter dialogues)
and the evaluation harness (`socratic eval score`, `socratic eval mathdial-agreement`).

    from tutor.metrics import score_response
    score_response([{"role": "user", "content": "What is 3/4 as a decimal?"},
                    {"role": "assistant", "content": "What does the fraction bar mean?"}], "0.75")

Decisions (their agreement with human labels is in docs/evaluation.md):
- A question is a sentence ending in '?' outside code and quotations, or an interrogative
  imperative ("Can you tell me...", "Walk me through...", "Tell me what...").
- An answer stated inside a question ("Is it 12?") counts as revealing: the student only has to
  say yes.
- A mention of the answer whose value *and* written form (integer/decimal, fraction, percent)
  already appear in the context (the problem, the student's own words) is a restatement, not a
  reveal: "0.375" in "Write 0.375 as a fraction" is not the answer 3/8, but "three eighths" is.
"""

from __future__ import annotations

import re
import unicodedata
from fractions import Fraction

# ------------------------------------------------------------------ text cleanup

_CODE_BLOCK = re.compile(r"```.*?(?:```|\Z)", re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_QUOTED = re.compile(r"\"[^\"\n]{0,300}\"|“[^”\n]{0,300}”")
_WORD = re.compile(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)?")


def _normalise(text: str) -> str:
    """NFKC, Unicode minus/dashes/multiplication signs to ASCII, non-breaking spaces to spaces."""
    text = unicodedata.normalize("NFKC", text)
    for a, b in (("−", "-"), ("–", "-"), ("—", " - "), ("×", "*"), ("÷", "/"), ("⁄", "/")):
        text = text.replace(a, b)
    return text.replace("\u00a0", " ").replace("\u202f", " ")


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words(text: str) -> int:
    """Number of words (runs of letters/digits, contractions count once)."""
    return len(_WORD.findall(text))


# ------------------------------------------------------------------ questions

_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|$)", re.M)
_INTERROGATIVE_IMPERATIVE = re.compile(
    r"^(?:(?:so|now|ok(?:ay)?|great|good|very good|nice|then|first|next|and|but|well|alright|"
    r"right|yes|no|correct|hmm+)[, ]+)*"
    r"(?:(?:how\s+(?:many|much|long|far|old|would|do|did|does|can|could|is|are|will|should)"
    r"|what(?:'s|\s+(?:is|are|do|does|did|would|will|should|if|about|happens|was|were))"
    r"|why|which(?!\s+(?:means|is\s+why|gives|makes))|is\s+(?:it|that|this|there)|are\s+(?:you|there|they|we)|do\s+you|did\s+you"
    r"|does\s+(?:it|that|this)|have\s+you|should\s+(?:you|we|it)|isn't|aren't|don't|didn't)\b"
    r"|(?:please\s+)?(?:can|could|would)\s+you"
    r"|(?:please\s+)?(?:tell|show|remind)\s+me\s+(?:what|how|why|which|where|when|who|whether|if)"
    r"|(?:please\s+)?(?:walk|talk|take)\s+me\s+through"
    r"|(?:please\s+)?(?:explain|describe)\s+(?:to\s+me\s+)?(?:how|why|what|which|where|when|your)"
    r"|what\s+do\s+you\s+(?:think|notice|get|see)"
    r"|i\s+wonder\s+(?:if|whether|what|how|why)"
    r"|let\s+me\s+know\s+(?:what|how|why|if|whether))\b",
    re.I,
)


def _prose(text: str) -> str:
    """The text the student reads as the tutor's own words: no code, no quotations."""
    text = _CODE_BLOCK.sub(" ", _normalise(text))
    text = _INLINE_CODE.sub(" code ", text)
    return _QUOTED.sub(" quote ", text)


def question_count(text: str) -> int:
    """Questions put to the student: sentences ending in '?' or interrogative imperatives."""
    count = 0
    for sentence in _SENTENCE.findall(_prose(text)):
        s = sentence.strip().lstrip("-*•>#0123456789.) ").strip()
        # "204 + 160 + 330 =" and "25_0" are fill-in-the-blank prompts.
        if s.endswith(("?", "=")) or re.search(r"\d_+\d|_{3,}", s):
            count += 1
        elif _INTERROGATIVE_IMPERATIVE.match(s):
            count += 1
    return count


def asks_question(text: str) -> bool:
    """Whether the response asks the student at least one question."""
    return question_count(text) > 0


# ------------------------------------------------------------------ numbers

_SMALL = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen".split()
    )
}
_TENS = {
    w: 10 * i
    for i, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split())
    if w != "_"
}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9}
_DENOMINATORS = {
    "half": 2, "halves": 2, "third": 3, "thirds": 3, "quarter": 4, "quarters": 4, "fourth": 4,
    "fourths": 4, "fifth": 5, "fifths": 5, "sixth": 6, "sixths": 6, "seventh": 7, "sevenths": 7,
    "eighth": 8, "eighths": 8, "ninth": 9, "ninths": 9, "tenth": 10, "tenths": 10,
    "twelfth": 12, "twelfths": 12, "hundredth": 100, "hundredths": 100,
}  # fmt: skip
_NUMBER_WORD = "|".join(
    sorted([*_SMALL, *_TENS, *_SCALES, "a", "an", "and"], key=len, reverse=True)
)
_SPELLED = re.compile(
    rf"\b(?:{_NUMBER_WORD})(?:[\s-]+(?:{_NUMBER_WORD}))*"
    rf"(?:[\s-]+(?:{'|'.join(sorted(_DENOMINATORS, key=len, reverse=True))}))?\b",
    re.I,
)
_NUMERAL = re.compile(
    r"(?<![\w.])(?P<sign>-)?(?P<money>\$\s?)?"
    r"(?:(?P<whole>\d+)\s+(?P<mnum>\d+)/(?P<mden>\d+)"  # mixed number 2 3/4
    r"|(?P<num>\d+)\s*/\s*(?P<den>\d+)(?![\d/])"  # fraction 3/4
    r"|(?P<dec>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+))"  # 1,234.5 | 12 | .5
    r"(?:st|nd|rd|th)?(?![\w/])(?P<pct>\s?%|\s+percent\b)?",
    re.I,
)

# A mention: (value, form); form is "int" for integers and decimals, "frac" (lowest terms),
# "ratio" (a fraction not in lowest terms: never the answer itself) or "pct".
Mention = tuple[Fraction, str]


def _spelled_value(phrase: str) -> Mention | None:
    tokens = [t for t in re.split(r"[\s-]+", phrase.lower()) if t]
    if len(tokens) > 3 and tokens[-3:-1] == ["and", "a"] and tokens[-1] in _DENOMINATORS:
        whole = _spelled_value(" ".join(tokens[:-3]))  # "one and a half"
        return (whole[0] + Fraction(1, _DENOMINATORS[tokens[-1]]), "frac") if whole else None
    tokens = [t for t in tokens if t != "and"]
    if not tokens or all(t in ("a", "an") for t in tokens):
        return None
    denominator = _DENOMINATORS.get(tokens[-1])
    if denominator:
        tokens = tokens[:-1] or ["a"]
    total, current = 0, 0
    for t in tokens:
        if t in ("a", "an"):
            current = max(current, 1)
        elif t in _SMALL:
            current += _SMALL[t]
        elif t in _TENS:
            current += _TENS[t]
        elif t in _SCALES:
            current = max(current, 1) * _SCALES[t]
            if _SCALES[t] >= 1000:
                total, current = total + current, 0
    value = Fraction(total + current)
    if denominator:
        return value / denominator, "frac"
    if tokens in (["a"], ["an"]):
        return None
    return value, "int"


def number_mentions(text: str) -> list[Mention]:
    """Every number in `text` as (exact value, written form): numerals, fractions, mixed numbers,
    money, percentages (value in percent) and spelled-out numbers ("three quarters")."""
    text = _normalise(text)
    found: list[Mention] = []
    for m in _NUMERAL.finditer(text):
        if m["whole"]:
            value = int(m["whole"]) + Fraction(int(m["mnum"]), int(m["mden"]) or 1)
            form = "frac"
        elif m["num"]:
            num, den = int(m["num"]), int(m["den"])
            if den == 0:
                continue
            # 24/4 or 375/1000 is a calculation still to do, not the value written down.
            value = Fraction(num, den)
            form = "frac" if value.numerator == num else "ratio"
        else:
            value, form = Fraction(m["dec"].replace(",", "")), "int"
        if m["sign"]:
            value = -value
        if m["pct"]:
            form = "pct"
        found.append((value, form))
    for m in _SPELLED.finditer(text):
        mention = _spelled_value(m.group(0))
        if mention:
            follows = text[m.end() : m.end() + 9].lower()
            form = "pct" if re.match(r"\s*(?:%|percent)", follows) else mention[1]
            found.append((mention[0], form))
    return found


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
    text = _strip_accents(_normalise(text)).lower().replace("²", "^2").replace("³", "^3")
    return re.sub(r"[\s`]+", "", text)


def _phrase_in(phrase: str, text: str) -> bool:
    """Word-boundary, case- and accent-insensitive match; a trailing plural 's' is optional."""
    norm = lambda s: " ".join(re.findall(r"\w+", _strip_accents(_normalise(s)).lower()))  # noqa: E731
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
    ref = _normalise(reference)
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
    ref = _normalise(str(reference_answer)).strip()
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


# ------------------------------------------------------------------ one response


def score_response(messages: list[dict], reference_answer: str | None = None) -> dict:
    """Offline metrics of the last message (the assistant response) given the earlier turns.

    Returns {"asks_question", "question_count", "reveals_answer", "words", "ends_with_question"}.
    """
    if not messages or messages[-1].get("role") != "assistant":
        raise ValueError("messages: expected a list ending with the assistant response to score")
    response = str(messages[-1].get("content") or "")
    context = "\n".join(
        str(m.get("content") or "") for m in messages[:-1] if m.get("role") != "system"
    )
    count = question_count(response)
    return {
        "asks_question": count > 0,
        "question_count": count,
        "reveals_answer": reveals_answer(response, reference_answer, context),
        "words": words(response),
        "ends_with_question": _prose(response).rstrip().endswith("?"),
    }
