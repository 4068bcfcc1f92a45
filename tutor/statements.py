"""The language of stated results, as regular expressions: how a tutor's reply declares an
answer ("the answer is 16"), states a calculation with its result ("9 x 8 = 72"), a result phrase
("we get 420", "which leaves 9") or offers a value in a yes/no question ("Is it 72?"), and the cue
words around them (conclusions, corrections, hypotheticals). Data only; the rules that use them
are in `tutor.reveal.find_reveal`.
"""

from __future__ import annotations

import re

RULES = {
    "reference": "states the reference answer",
    "answer": "declares a value the answer ('the answer is 16', 'so 14 is our answer', 'x = 5')",
    "calculation": "an operation with its result ('9 x 8 = 72', 'half of 24 is 12')",
    "result": "a result phrase with a new value ('we get 420', 'which leaves 9', 'so he has 15')",
    "offered": "a new value offered in a yes/no question ('Is it 72?', 'Is 72 right?')",
}

_SPELLED_X = (
    r"(?:zero|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|"
    r"fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|"
    r"eighty|ninety)"
)  # "one" is left out: far more often "one of them" than a result
_NUM = (
    r"(?:\d{1,2}:\d{2}(?:\s?[ap]\.?m\b\.?)?|(?:\$\s?)?-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
    r"(?:\s?/\s?\d+)?(?:\s?%|\s+percent\b)?)"
)
# The value stated: a whole number that does not start a longer expression ("3 times as many",
# "24/3 =", "2*capacity", "3x", "5 out of 8") or name a unit ("60 minutes in an hour").
_WHOLE = r"(?![\d_/]|[.,:]\d|[a-z](?![a-z]))"
_CONTINUES = (
    r"\s*(?:times|plus|minus|divided|multiplied|take\s+away|x\s*\$?\d|[-+*/^=]|(?:more|less|"
    r"fewer)\s+than|as\s+(?:many|much)|or\s+(?:more|less|fewer)|of\b|out\s+of\s+(?:\d|the|every|each)|"
    r"per\b|to\s+\d|\w+\s+in\s+(?:an?|one|each|every)\s+\w+)"
)
_X = rf"(?P<x>{_NUM}|\b{_SPELLED_X}\b){_WHOLE}(?!{_CONTINUES})"
_OP = r"(?:[-+*/x]|plus|minus|times|multiplied\s+by|divided\s+by|over|take\s+away)"
_UNIT_WORDS = (
    r"(?:\s+(?!(?:is|are|was|equals?|makes?|gives?|and|so|then|which|that|not)\b)[a-z]+){0,3}"
)
_OPERAND = rf"\(?{_NUM}\)?{_UNIT_WORDS}"
_PART = (
    r"(?:half|double|twice|triple|a\s+third|a\s+quarter|one\s+third|one\s+quarter|\d+\s?%|"
    r"\d+\s?/\s?\d+)"
)
_IS = (
    r"(?:=|equals?|is(?:\s+equal\s+to)?|are|was|makes?|gives?(?:\s+(?:us|you))?|comes?\s+to|"
    r"would\s+be|will\s+be|should\s+be|must\s+be|leaves?(?:\s+(?:us|you))?)"
)
_VERB = (
    r"(?:has|have|had|gets?|got|needs?|needed|spends?|spent|pays?|paid|makes?|made|earns?|"
    r"earned|takes?|took|sold|sells|bought|buys|uses?|used|reads?|does|did|walks?|walked|saves?|"
    r"saved|ate|eats|owes?|scored?|holds?|contains?|drinks?|drank|costs?|weighs?|lasts?|is|are|"
    r"was|were|(?:will|would|can|could|must|should)(?:\s+\w+)?|[a-z]+ed)"
)
_LEAD = r"(?:a\s+total\s+of\s+|only\s+|about\s+|exactly\s+|just\s+|actually\s+|still\s+)?"
_OBJ = r"(?:us\s+|you\s+|her\s+|him\s+|them\s+)?"
_NOT_A_SUBJECT = r"(?!(?:what|how|which|why|when|where|who|is|are|do|does|did|can|could|would)\b)"

# (rule, pattern, declared): a declared value reveals unless it is the student's own conclusion;
# any other value reveals unless a student turn holds it.
_SOURCES = [
    (
        "answer",
        rf"\banswer\s*(?:is|was|should\s+be|would\s+be|will\s+be|must\s+be|=|:)\s*"
        rf"(?:that\s+)?(?:there\s+(?:are|were|is)\s+)?{_LEAD}{_X}",
        True,
    ),
    (
        "answer",
        rf"{_X}\s+(?:is|was|would\s+be|should\s+be|will\s+be)\s+(?:the|your|our|my)\s+"
        rf"(?:\w+\s+){{0,2}}answer",
        True,
    ),
    (
        "answer",
        rf"^(?:no\W+)?(?:it|its|it's|that's)(?:\s+is|\s+should\s+be|\s+must\s+be)?\s+{_X}"
        r"(?:\s+\w+)?(?:\s+(?:who|that|which)\b|\s*[,.!]|\W*$)",
        True,
    ),
    ("answer", rf"(?<![A-Za-z])\d*[a-z](?![A-Za-z])\s*=\s*{_X}", False),  # a solved equation
    ("calculation", rf"{_OPERAND}(?:\s*{_OP}\s*{_OPERAND})+\s*{_IS}\s*{_LEAD}{_X}", False),
    (
        "calculation",
        rf"\b{_PART}\s+of\s+(?:the\s+)?{_NUM}{_UNIT_WORDS}\s*{_IS}\s*{_LEAD}{_X}",
        False,
    ),
    (
        "calculation",
        rf"\b(?:sum|difference|product|quotient|total)\s+(?:of|between)\s+{_OPERAND}\s+and\s+"
        rf"{_OPERAND}\s*{_IS}\s*{_LEAD}{_X}",
        False,
    ),
    # "3 lawns is 900 square feet"; "1 hour is 60 minutes" or "hour = 60" is a unit, not a result
    (
        "calculation",
        rf"^(?!1\b|one\b){_NUM}(?:\s+[a-z]+){{1,2}}\s+(?:is|are|=|makes?|equals?)\s+"
        rf"{_X}",
        False,
    ),
    ("calculation", rf"(?<=[\d)%])\s*=\s*{_X}", False),
    (
        "result",
        rf"\b(?:we|you|she|he|they)(?:'ll|\s+will|\s+would|\s+should|\s+can|\s+could)?"
        rf"(?:\s+have)?\s+"
        rf"(?:get|got|gotten|end\s+up\s+with|are\s+left\s+with|have\s+left|find)\s+{_LEAD}{_X}",
        False,
    ),
    ("result", rf"\bto\s+(?:get|make|give)\s+{_OBJ}{_X}", False),
    (
        "result",
        rf"\b(?:which|that|this|it)(?:'s|\s+is)?\s+(?:gives|makes|leaves|equals|is\s+"
        rf"equal\s+to|comes\s+to|adds\s+up\s+to|works\s+out\s+(?:to|as))\s+{_OBJ}{_LEAD}{_X}",
        False,
    ),
    ("result", rf"\bmakes?\s+(?:it|that|this)\s+{_X}", False),
    ("result", rf"\b(?:leaves?|leaving)\s+{_OBJ}(?:with\s+)?{_X}", False),
    (
        "result",
        rf"\b(?:becomes?|turns?\s+into|rounds?\s+(?:up\s+|down\s+)?to|simplifies\s+"
        rf"(?:again\s+)?to|reduces\s+to|arrives?\s+at|finishes\s+at)\s+{_X}",
        False,
    ),
    (
        "result",
        rf"\b(?:it|that|this)(?:'s|\s+is|\s+should\s+be|\s+would\s+be|\s+will\s+be|\s+"
        rf"must\s+be)\s+{_LEAD}{_X}",
        False,
    ),
    (
        "result",
        rf"\b(?:total|sum|difference|product|result)(?:\s+[a-z]+){{0,3}}?\s+(?:is\s+|was\s+|"
        rf"would\s+be\s+|will\s+be\s+|comes\s+to\s+|of\s+|=\s*|:\s*)?{_LEAD}{_X}",
        False,
    ),
    (
        "result",
        rf"{_X}(?:\s+[a-z]+){{0,2}}\s+(?:is|would\s+be)\s+(?:the|your|our)\s+(?:\w+\s+)?"
        r"(?:total|result|product|sum|difference|quotient)\b",
        False,
    ),
    ("result", rf"\b(?:is|are)\s+(?:the\s+same\s+as|equal\s+to|equivalent\s+to)\s+{_X}", False),
    (
        "result",
        rf"\b(?:so|then|therefore|thus|hence|which\s+means|that\s+means|this\s+means)\b"
        rf"\s*,?\s+(?:[A-Za-z']+\s+){{0,4}}?{_X}",
        False,
    ),
    ("result", rf"\b(?:he|she|they|there)\s+(?:\w+\s+){{0,2}}{_VERB}\s+{_LEAD}{_X}", False),
    (
        "result",
        rf"(?:^|,\s+and\s+|\band\s+)(?:[A-Z][a-z]+(?:'s\s+[a-z]+)?|(?:an?|the|each|every)\s+\w+"
        rf"(?:\s+\w+)?|"
        rf"{_NUM}\s+[a-z]+){_NOT_A_SUBJECT}\s+{_VERB}\s+{_LEAD}{_X}",
        False,
    ),
    (
        "result",
        rf"{_X}(?:\s+[a-z]+){{0,2}}\s+(?:is|would\s+be|should\s+be)\s+(?:the\s+)?"
        r"(?:correct|right)\b",
        False,
    ),
    (
        "offered",
        rf"\b(?:is|isn't|was|wasn't|would|wouldn't|could|should|shouldn't|does|doesn't)\s+"
        rf"(?:it|this|that|the\s+answer|the\s+total|the\s+result|n't\s+it)\s+(?:be\s+|equal\s+)?"
        rf"{_X}[^.?!]*\?",
        False,
    ),
    ("offered", rf"\b(?:did|do)\s+you\s+(?:get|mean)\s+{_X}[^.?!]*\?", False),
    (
        "offered",
        rf"\b(?:is|would|could)\s+{_X}(?:\s+[a-z]+){{0,2}}\s+(?:be\s+)?(?:the\s+)?"
        r"(?:correct|right|answer|total)\b[^.?!]*\?",
        False,
    ),
]
PATTERNS = [(rule, re.compile(p, re.I), declared) for rule, p, declared in _SOURCES]
# Statements of a reply: sentences, lines and clauses after ";" or ":" ("Hint: it's 72"), but
# "Answer: 72" stays whole.
STATEMENT_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+|(?<![Aa]nswer)(?<![Tt]otal)(?<![Rr]esult)[;:]\s+")
# A conclusion or, before a calculation, a correction declares the value after it: "so 14 is our
# answer" or "No, 7 x 2 = 14" reveals 14 even if the student wrote 14 somewhere, unless 14 is what
# the student concluded in their last turn. "So ..." also opens summaries of the student's work,
# so it declares only answers and calculations; "therefore" declares any result.
CONCLUSION = re.compile(
    r"(?:^\W*|,\s*|\band\s+)(?:so|then)\b(?!\s+(?:that|far|many|much|on|as)\b)|"
    r"\bso\s+(?=(?:he|she|they|we|you|it|there|the)\b)|"
    r"\b(?:therefore|thus|hence|which\s+means|that\s+means|this\s+means)\b",
    re.I,
)
STRONG_CONCLUSION = re.compile(r"\b(?:therefore|thus|hence)\b", re.I)
CORRECTION = re.compile(
    r"^\W*(?:no|nope|not\s+quite|actually|wrong|incorrect|(?:close|nearly|almost)\W+but)\b", re.I
)
HYPOTHETICAL = re.compile(
    r"^(?:\W*(?:so|ok(?:ay)?|now|and|but|well|no)\W+)*(?:if|suppose|imagine|let's\s+say|say|"
    r"what\s+if|for\s+example|pretend|i\s+have|i\s+had|i\s+sold|i\s+bought)\b",
    re.I,
)
COUNTERFACTUAL = re.compile(r"\bwould\s+mean\b", re.I)
LABEL = re.compile(
    r"\b(?:week|day|step|line|question|part|page|chapter|row|number|no\.|grade|level|lesson|"
    r"problem|exercise|example|unit|table|hour|minute|round|game|test)\s*$",
    re.I,
)


# A student naming their result: "I got 13/24", "I think it's 63", "is it 12?", "my answer is 4".
CLAIM = re.compile(
    rf"\b(?:i\s+(?:got|get|think|said|wrote|found|have)(?:\s+(?:it's|it\s+is|that|the\s+answer\s+"
    rf"is|about))?|is\s+it|it's|it\s+is|(?:answer|result)\s+(?:is|was|would\s+be|=|:))\s*{_X}",
    re.I,
)

# LaTeX maths and markdown emphasis in a reply, as plain text.
LATEX = [
    (r"\\(?:times|cdot|ast)", "*"), (r"\\div", "/"), (r"\\frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}", r"\1/\2"),
    (r"\\(?:boxed|text|mathrm|textbf)\s*\{([^{}]*)\}", r"\1"), (r"\\[()\[\]]", " "),
    (r"\*\*|__", ""),  # markdown bold; a single * stays multiplication
]  # fmt: skip


# A number that is an input of a calculation or an item of a list ("times 26", "4, 8, 12"): the
# words before it, and (by failing to match) the words after it.
OPERAND_BEFORE = re.compile(
    r"(?:[-+*/x]|\b(?:times|by|plus|minus|from|add|subtract|multiply|divide))\s*$", re.I
)
OPERAND_AFTER = re.compile(rf"{_WHOLE}(?!{_CONTINUES}|,\s*\d)", re.I)
