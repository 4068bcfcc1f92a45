"""Numbers in text, as exact values: numerals, fractions, mixed numbers, money, percentages and
spelled-out numbers ("three quarters", "one and a half"). Standard library only; used by the
offline metrics (`tutor.metrics`) and the data generator's checks.

    from tutor.numbers import find_numbers, number_mentions
    number_mentions("3/4 of $1,200 is nine hundred")  # [(3/4, 'frac'), (1200, 'int'), (900, 'int')]
    find_numbers("we get 72")[0].span                  # (7, 9)
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from fractions import Fraction


def normalise(text: str) -> str:
    """NFKC, Unicode minus/dashes/multiplication signs to ASCII, non-breaking spaces to spaces."""
    text = unicodedata.normalize("NFKC", text)
    for a, b in (("−", "-"), ("–", "-"), ("—", " - "), ("×", "*"), ("÷", "/"), ("⁄", "/")):
        text = text.replace(a, b)
    return text.replace("\u00a0", " ").replace("\u202f", " ")


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


@dataclass(frozen=True)
class Number:
    """One number found in (normalised) text: its exact value, written form and character span."""

    value: Fraction
    form: str
    span: tuple[int, int]

    @property
    def mention(self) -> Mention:
        return self.value, self.form


def find_numbers(text: str) -> list[Number]:
    """Every number in `normalise(text)`, in reading order, with its span in that text."""
    text = normalise(text)
    found: list[Number] = []
    for m in _NUMERAL.finditer(text):
        mention = _numeral_value(m)
        if mention:
            found.append(Number(*mention, span=m.span()))
    for m in _SPELLED.finditer(text):
        mention = _spelled_value(m.group(0))
        if mention:
            follows = text[m.end() : m.end() + 9].lower()
            form = "pct" if re.match(r"\s*(?:%|percent)", follows) else mention[1]
            lead = re.match(r"(?:and[\s-]+)*", m.group(0), re.I).end()  # "and three" is "three"
            found.append(Number(mention[0], form, (m.start() + lead, m.end())))
    return sorted(found, key=lambda n: n.span)


def number_mentions(text: str) -> list[Mention]:
    """Every number in `text` as (exact value, written form): numerals, fractions, mixed numbers,
    money, percentages (value in percent) and spelled-out numbers ("three quarters")."""
    return [n.mention for n in find_numbers(text)]


def _numeral_value(m: re.Match) -> Mention | None:
    if m["whole"]:
        value = int(m["whole"]) + Fraction(int(m["mnum"]), int(m["mden"]) or 1)
        form = "frac"
    elif m["num"]:
        num, den = int(m["num"]), int(m["den"])
        if den == 0:
            return None
        # 24/4 or 375/1000 is a calculation still to do, not the value written down.
        value = Fraction(num, den)
        form = "frac" if value.numerator == num else "ratio"
    else:
        value, form = Fraction(m["dec"].replace(",", "")), "int"
    if m["sign"]:
        value = -value
    return value, "pct" if m["pct"] else form
