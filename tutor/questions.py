"""Questions a tutor reply asks, and the text it is judged on: prose outside code and quotations.
Used by `tutor.metrics` (`asks_question`, `question_count`) and `tutor.reveal` (a question does
not state a result).

    from tutor.questions import question_count
    question_count("Good start. Why? And walk me through the next step.")  # 2

A question is a sentence ending in '?' (or a fill-in-the-blank '=' or '___') outside code and
quotations, or an interrogative imperative ("Can you tell me...", "Walk me through...").
"""

from __future__ import annotations

import re
import unicodedata

from tutor.numbers import normalise

# ------------------------------------------------------------------ text cleanup

_CODE_BLOCK = re.compile(r"```.*?(?:```|\Z)", re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_QUOTED = re.compile(r"\"[^\"\n]{0,300}\"|“[^”\n]{0,300}”")
_WORD = re.compile(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)?")


def strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words(text: str) -> int:
    """Number of words (runs of letters/digits, contractions count once)."""
    return len(_WORD.findall(text))


# ------------------------------------------------------------------ questions

_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|$)", re.M)
INTERROGATIVE_IMPERATIVE = re.compile(
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


def prose(text: str) -> str:
    """The text the student reads as the tutor's own words: no code, no quotations."""
    text = _CODE_BLOCK.sub(" ", normalise(text))
    text = _INLINE_CODE.sub(" code ", text)
    return _QUOTED.sub(" quote ", text)


def question_count(text: str) -> int:
    """Questions put to the student: sentences ending in '?' or interrogative imperatives."""
    count = 0
    for sentence in _SENTENCE.findall(prose(text)):
        s = sentence.strip().lstrip("-*•>#0123456789.) ").strip()
        # "204 + 160 + 330 =" and "25_0" are fill-in-the-blank prompts.
        if s.endswith(("?", "=")) or re.search(r"\d_+\d|_{3,}", s):
            count += 1
        elif INTERROGATIVE_IMPERATIVE.match(s):
            count += 1
    return count


def asks_question(text: str) -> bool:
    """Whether the response asks the student at least one question."""
    return question_count(text) > 0
