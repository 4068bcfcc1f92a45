"""Does a tutor reply accept the student's claim as right? Rules over the words of the reply (no
model), explained by the rule that fired and the words that fired it; used by
`tutor.metrics.score_response` (`accepts_student_claim`, `verdict`) and measured against human
labels by `socratic eval claim-agreement` (data/claims).

    from tutor.verdict import accepts_student_claim
    accepts_student_claim("The square root of 81 is 8, yes?", "Right. What about the square of 9?")
    # Verdict(accepts=True, rule="accept", span="Right")
    accepts_student_claim("How do I start?", "What do you know already?")
    # Verdict(accepts=None, rule="no-claim", span="How do I start?")

Three answers: True when the reply accepts the claim (says so: "Yes", "Correct", "Exactly", "Well
done"; or builds on it as if right: "Great, now that x = 10, what is 2x?"); False when it does
not (questions, flags or corrects it: "Not quite", "Are you sure?", "Plug it back in", "It's 9,
not 8", restating a different result; or ignores it); None when the student's turn makes no
checkable claim (a plain question, "I don't know", a greeting): never False for those.

The rules, strongest first (the first that fires decides):
1. correction: a correction cue ("not quite", "incorrect", "close, but", "look again", "not 8").
2. accept: an explicit verdict ("That's correct", "You're right", "Exactly", "Spot on").
3. doubt: a probe of the claim ("Are you sure?", "Let's check", "What happens if you plug it in?").
4. restates: the reply states a result for the claim's question that differs from the claim.
5. praise: an opener of praise ("Great!", "Perfect.") or "builds-on": the reply carries on from the
   claim ("now that x = 10", "next, ...", "what about ...") or restates the claimed value as fact.
6. no-acceptance: none of these (a lecture that leaves the claim aside).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tutor.numbers import find_numbers, normalise

RULES = {
    "no-claim": "the student's turn states no answer or belief to check",
    "correction": "a correction cue ('not quite', 'incorrect', 'close, but', 'not 8')",
    "accept": "an explicit verdict of right ('correct', 'exactly', 'you're right', 'well done')",
    "doubt": "a probe of the claim ('are you sure?', 'let's check', 'plug it back in')",
    "restates": "states a result different from the student's for the same question",
    "praise": "opens with praise ('Great!', 'Perfect.') and no doubt",
    "builds-on": "carries on from the claim as if right ('now that x = 10', 'what about')",
    "no-acceptance": "neither accepts nor builds on the claim",
}


@dataclass(frozen=True)
class Verdict:
    """What the reply does with the student's claim, the rule that decided it (a key of `RULES`)
    and the words that fired it."""

    accepts: bool | None
    rule: str
    span: str


_F = re.I | re.M

# ------------------------------------------------------------------ the student's claim

_SENTENCES = re.compile(r"\S[^\n]*?(?:[.!?]+(?=\s|$)|$)", re.M)  # "50.3" stays whole
_NO_CLAIM = re.compile(
    r"^\W*(?:(?:hi|hello|hey|ok(?:ay)?|so|um+|uh+|well|also|and|but|please|sorry)\b\W*)*"
    r"(?:$|hi|hello|hey\b|good\s+(?:morning|afternoon|evening)|thanks?|thank\s+you|cool|bye|"
    r"(?:what|how|why|where|when|who|which)\b(?!\s+i\s+(?:got|get|think|found|did|wrote))|"
    r"i\s+think\s+i\s+(?:need|want|should|have\s+to|am\s+stuck|'m\s+stuck|'m\s+lost)|"
    r"sure\W*$|yes\W*$|no\W*$|(?:ok(?:ay)?|alright)\W*$|"
    r"i\s+(?:really\s+)?(?:don'?t|do\s+not|didn'?t|can'?t|cannot)\s+(?:know|understand|get|see|"
    r"remember|figure|follow|do|solve|work|start|think\s+of)|"
    r"i'?m\s+(?:stuck|lost|confused|not\s+sure|unsure|struggling|trying|working|doing|having|"
    r"studying|learning|reviewing|ready|here|back|new)|i\s+am\s+(?:stuck|lost|confused|not\s+sure|"
    r"unsure|struggling|trying|working|studying|learning)|no\s+idea|not\s+sure|idk|dunno|help|"
    r"i(?:\s+have|'ve)(?:\s+got)?\s+no\s+(?:idea|clue)|i\s+(?:have\s+)?not\s+a\s+clue|"
    r"can\s+you|could\s+you|would\s+you|will\s+you|"
    r"i\s+(?:want|need|would\s+like|'d\s+like|wanna|have\s+(?:a|an|some|this|my)\s+"
    r"(?:question|problem|homework|test|exam|assignment)|was\s+wondering|wonder)|"
    r"(?:my|our)\s+(?:teacher|homework|class|test|exam|assignment|question)\s+(?:is|was|has|"
    r"asks|says|said)\s+(?:about|on|asking|due|tomorrow|next)|"
    r"the\s+(?:question|problem|exercise|task)\s+(?:is|says|asks|reads)|here\s+is|here's|"
    r"this\s+is\s+(?:hard|difficult|confusing)|it'?s\s+(?:hard|difficult|confusing)|"
    r"(?:let\s+me|i'?ll)\s+(?:think|try))",
    re.I,
)
_CLAIM_WORDS = re.compile(
    r"\b(?:i\s+(?:think|thought|got|believe|found|said|wrote|figured|calculated|guess|reckon|"
    r"concluded|put|worked\s+out|came\s+up\s+with|ended\s+up\s+with)|i'm\s+pretty\s+sure|"
    r"my\s+(?:answer|result|guess|solution)\s+(?:is|was|=)|so\s+(?:it'?s|it\s+is|the\s+answer\s+is|"
    r"that'?s|we\s+get|i\s+get|that\s+means))\b|"
    r"(?:,|\s)\s*(?:right|yes|correct|no|isn'?t\s+it|aren'?t\s+they|doesn'?t\s+it|am\s+i\s+right)"
    r"\s*\?\s*$",
    re.I,
)
_WH_QUESTION = re.compile(
    r"^\W*(?:(?:so|and|but|ok|okay|then|hmm|um|wait)\W+)*(?:what|how|why|which|where|when|who|"
    r"whose|can|could|would|will|should)\b",
    re.I,
)
_OFFERED = re.compile(
    r"\b(?:is|was)\s+(?:it|the\s+answer|that)\s+(?:just\s+)?-?\$?\d|"
    r"(?:=|\bequals?\b)\s*-?\$?\d|"
    r"(?:,|\s)\s*(?:right|yes|correct|no|isn'?t\s+it|aren'?t\s+they|doesn'?t\s+it|am\s+i\s+right)"
    r"\s*\?\s*$|"
    # "So guanine is 20%?", "8 times 3, so 24?", "13?": a value offered
    r"^(?:[^?]*(?:\bis|\bso|\bare|\bmakes?|\bgives?|\bget|\bthen)\s+|\W*)"
    r"(?:about\s+|just\s+)?-?\$?\d[\d,./%]*(?:\s*[a-z%°²³]+)?\W*$",
    re.I,
)


def _claim_question(question: str) -> bool:
    """A question that carries a claim: "I got 5, right?", "Is it 12?", "so 24?"; a wh-question
    ("How do I solve 3x + 2 = 11?") only with claim words ("What if I got 12?")."""
    if _CLAIM_WORDS.search(question):
        return True
    return not _WH_QUESTION.match(question) and bool(_OFFERED.search(question))


def claim_sentences(student_turn: str) -> list[str]:
    """The sentences of the student's turn that state an answer or a belief, in order.

    A declarative sentence is a claim unless it only greets, asks for help, says the student is
    stuck or names the task; a question is one only when it carries a claim ("Is it 12?", "I got
    5, right?", "2x = 8 so x = 4, yes?").
    """
    found = []
    for sentence in _SENTENCES.findall(normalise(student_turn)):
        s = sentence.strip()
        if not s:
            continue
        if s.endswith("?"):
            if _claim_question(s):
                found.append(s)
        elif len(re.findall(r"\w+", s)) >= 2 and not _NO_CLAIM.match(s):
            found.append(s)
        elif re.search(r"\d", s) and re.search(r"=|\b(?:got|is|get)\b", s, re.I):
            found.append(s)  # "I don't know, I got 7" still states 7
    return found


def student_claim(student_turn: str) -> str | None:
    """The student's claim: their turn's claim sentences joined, or None when it makes none."""
    found = claim_sentences(student_turn)
    return " ".join(found) if found else None


def _claim_values(student_turn: str) -> set:
    """Values the student concluded: the numbers at the end of their claim sentences."""
    values = set()
    for sentence in _SENTENCES.findall(normalise(student_turn)):
        nums = [n.value for n in find_numbers(sentence)]
        if nums:
            values.add(nums[-1])
    return values


# ------------------------------------------------------------------ the reply's cues

_CORRECTION = re.compile(
    r"^\W*(?:no|nope|nah|hmm+|hm+|oops|uh-oh|not\s+really|not\s+yet)\b(?!\s+(?:worries|problem|"
    r"need|doubt|matter))"
    r"|\bnot\s+(?:quite|exactly|really|right|correct|true|the\s+case|so\s+fast|what\s+we)"
    r"|\b(?:isn'?t|is\s+not|aren'?t|are\s+not|wasn'?t|was\s+not|that'?s\s+not|it'?s\s+not|"
    r"doesn'?t|does\s+not|don'?t|do\s+not)\s+(?:quite\s+|exactly\s+|really\s+|actually\s+)?"
    r"(?:right|correct|true|accurate|the\s+(?:right|correct)|what\s+(?:we|the)|work|hold|add\s+up|"
    r"match|check\s+out|equal|make\s+sense|quite|how)"
    r"|\b(?:incorrect|inaccurate|wrong|mistaken|mistakes?|errors?|slip|misconception|misstep|"
    r"mix(?:ed)?[\s-]up|typo|off\s+by|went\s+astray|went\s+wrong|gone\s+wrong|not\s+what)\b"
    r"|\b(?:close|almost|nearly|good\s+(?:try|attempt|effort|guess)|nice\s+(?:try|attempt|effort)|"
    r"great\s+(?:try|attempt|effort)|so\s+close|on\s+the\s+right\s+track|getting\s+there|"
    r"part(?:ly|ially)\s+right|half\s+right)\b"
    r"|\b(?:look|check|think)\s+(?:again|once\s+more|more\s+carefully|it\s+over)"
    r"|\b(?:take|have)\s+(?:another|a\s+second|a\s+closer|one\s+more)\s+look"
    r"|\b(?:redo|reconsider|rethink|revisit|re-?check|re-?examine|re-?evaluate|re-?read)\b"
    r"|\btry\s+(?:(?:it|that|this|them)\s+)?(?:again|once\s+more|another\s+way|a\s+different)"
    r"|\b(?:careful|watch\s+out|be\s+careful|hold\s+on|wait|whoa|not\s+so\s+fast|other\s+way\s+"
    r"(?:around|round)|backwards|the\s+opposite|common\s+(?:trap|mix))\b"
    r"|^\W*(?:actually|well(?!\s+done)|however|unfortunately)\b"
    r"|\bactually\s*,",
    _F,
)
_DOUBT = re.compile(
    r"\b(?:are|r)\s+you\s+(?:sure|certain|confident)"
    r"|\b(?:let'?s|let\s+us|can\s+you|could\s+you|shall\s+we|why\s+don'?t\s+(?:you|we)|how\s+(?:about|"
    r"would\s+you)|want\s+to|try\s+to)\s+(?:quickly\s+)?(?:double[\s-]?)?(?:check|verify|test|"
    r"confirm|see\s+(?:if|whether)|make\s+sure|go\s+(?:back|over|through)|walk\s+through|trace|"
    r"plug|substitute|retrace|compare|reread|re-?do)"
    r"|\b(?:double[\s-]?check|sanity[\s-]check|plug(?:ging)?\s+(?:it|that|\w+|x\s*=\s*\S+)\s+"
    r"(?:back\s+)?in|substitut\w+\s+(?:it|that|\w+)\s+back|put\s+(?:it|that)\s+back)"
    r"|\b(?:what|which)\s+(?:happens|do\s+you\s+get|would\s+you\s+get|would\s+happen)\s+(?:if|when)"
    r"|\bhow\s+did\s+you\s+(?:get|arrive|come\s+up|find|decide|work\s+out|figure)"
    r"|\bwhere\s+did\s+(?:the|that|your|you|this)\b|\bwhere\s+(?:are|were)\s+you\s+getting"
    r"|\bhow\s+(?:does|do|did|can|could|is|would)\b[^?.!]*(?:=|\bequals?\b|\bmakes?\b|\bgives?\b)"
    r"|\bhow\s+(?:is|can)\s+(?:this|that|it)\s+(?:be\s+)?possible|\bcan\s+(?:that|this|it)\s+be\s+(?:right|true)"
    r"|\bwhy\s+do\s+you\s+think"
    r"|\b(?:does|do|would|will|did)\s+(?:that|this|it|your\s+\w+|they|both)\s+(?:really\s+)?"
    r"(?:work|hold|check\s+out|add\s+up|match|make\s+sense|fit|agree|give|equal|satisfy|balance)"
    r"|\b(?:is|was|are)\s+(?:that|this|it|\w+)\s+(?:really|actually|definitely|always|necessarily)"
    r"|\b(?:really|actually)\s*\?"
    r"|\b(?:i'?m\s+not\s+sure|i\s+(?:don'?t|do\s+not)\s+think|i\s+wonder\s+(?:if|whether)|"
    r"let'?s\s+(?:see|think|look|take\s+a\s+look|go\s+back|slow\s+down|step\s+back|revisit|test)|"
    r"not\s+sure\s+(?:that|this|about)|is\s+(?:that|it)\s+(?:right|correct|true)|"
    r"what\s+(?:is|are|was)\s+\S+\s+(?:times|plus|minus|squared|multiplied|divided)|"
    r"what\s+about\s+(?:the\s+)?(?:units?|sign|negative|remainder|order)|"
    r"should\s+(?:it|that|we)\s+(?:be|really)|check\s+(?:it|that|this|your|whether|if|by|the|"
    r"each|what)|verify|one\s+more\s+time|step\s+by\s+step)\b",
    _F,
)
_ACCEPT = re.compile(
    r"^\W*(?:yes|yes+|yep|yup|yeah|ya|correct|right|exactly|precisely|absolutely|indeed|bingo|"
    r"spot[\s-]+on|bang\s+on|perfect|perfectly\s+(?:right|correct)|that'?s\s+it|you\s+got\s+it|"
    r"you'?ve\s+got\s+it|got\s+it|nailed\s+it|you\s+nailed\s+it|well\s+done|bravo|"
    r"(?:great|good|nice|excellent)\s+(?:job|work|reasoning|thinking|catch)|excellent|brilliant|"
    r"fantastic|wonderful|superb|nicely\s+done|nice\s+one|good\s+one|mm+-?hm+|uh-huh|"
    r"correctamundo|sure\s+is|sure\s+thing|ding(?:\W+ding)*|yes\s+indeed|true|that\s+works|"
    r"you\s+bet)\b(?!\s*[-,]?\s*(?:but|however|although|though)\b)"
    r"|^\W*(?:100\s*%|👍|✅|✔️?|✓|💯|🎉)"
    r"|^\W*(?:it|that|they|you|she|he)\s+(?:sure\s+)?(?:does|do|did|is|are|was|were|can|will|has)"
    r"\s*(?:indeed\s*)?!"
    r"|\b(?:that'?s|that\s+is|this\s+is|it'?s|you'?re|you\s+are|(?:your|the)\s+(?:answer|result|"
    r"reasoning|work|solution|thinking|logic)\s+(?:is|was)|\w+\s+is)\s+(?:absolutely\s+|exactly\s+|"
    r"completely\s+|totally\s+|perfectly\s+|100%\s+|quite\s+|all\s+|indeed\s+|also\s+|"
    r"definitely\s+)?(?:right|correct|true|spot\s+on|accurate)\b(?!\s*(?:\?|triangle|angle|"
    r"side|hand|now|away|there|answer|idea|way|track|to|for|about|that|when|if))"
    r"|\b(?:you\s+(?:got|have|found|nailed|solved|did)\s+(?:it|that|the\s+right|the\s+correct|it\s+"
    r"right)|(?:you'?re|you\s+are)\s+(?:correct|right)|(?:the\s+)?(?:right|correct)\s+answer"
    r"(?!\s+(?:is|was|would|should|will|here))|well\s+done|spot[\s-]+on|bang\s+on|"
    r"exactly\s+(?:right|that|how\s+it\s+works)|good\s+job|great\s+job|nice\s+work|nice\s+job|"
    r"great\s+work|you'?ve\s+got\s+it|(?:i|we)\s+agree|that'?s\s+the\s+one|just\s+right|"
    r"(?:all|exactly)\s+correct|checks\s+out|is\s+indeed|\w+\s+indeed|(?:you'?ve\s+|you\s+)?"
    r"nailed\s+(?:it|the)|that\s+matches|nothing\s+to\s+(?:fix|correct|change)|no\s+mistakes?|"
    r"perfectly\s+\w+|(?:good|great|nice|excellent|perfect)\s+(?:definition|answer|explanation|"
    r"summary|example))\b",
    _F,
)
_PRAISE = re.compile(
    r"^\W*(?:great|good|nice|cool|awesome|lovely|super|sweet|okay\s+great|ok\s+great|"
    r"yay|wow|amazing|impressive|beautiful|neat|very\s+(?:good|nice|well)|alright|all\s+right|"
    r"good\s+stuff)\b(?!\s+(?:question|start|try|attempt|effort|guess|idea|thought|point|"
    r"observation))(?!\s*[-,]?\s*(?:but|however|although|though|let'?s\s+check)\b)",
    _F,
)
_BUILDS_ON = re.compile(
    r"\bnow\s+that\b|\bsince\s+(?:you|we|it|that|x|\w+\s*=)|\b(?:with|using|given|taking)\s+"
    r"(?:that|your|this|x\s*=|\w+\s*=)|\bso\s+now\b|^\W*(?:next|moving\s+on)\b|"
    r"\blet'?s\s+move\s+on|\bon\s+to\s+the\s+next|\bthe\s+next\s+(?:step|one|question|problem|part)|"
    r"^\W*(?:(?:and|so)\s*,?\s+)?(?:now|then|next)\s*,?\s+(?:what|how|can|could|let'?s|try|use|"
    r"which|add|find|work|multiply|divide|subtract|take|we|you)\b|"
    r"\bbuild(?:ing)?\s+on|\bfrom\s+there\b|\bone\s+step\s+further\b|\bnext\s+one\b|"
    r"\bkeep\s+going\b|\bcarry\s+on\b",
    _F,
)
# "but" / "however" after praise usually turns to the mistake ("very good. but you subtracted
# twice"); a follow-up request after a verdict does not ("Correct, but can you say why?").
_BUT = re.compile(
    r"(?:^|[,.;:!]\s*|\s)(?:but|however|although|though|yet)\b(?!\s*,?\s*(?:\?|also|first|why|how\b|"
    r"(?:can|could|would)\s+you\s+(?:also\s+)?(?:explain|say|tell|show|think|check\s+it)|"
    r"do\s+you\s+know\s+why|remember|don'?t\s+forget|well\s+done|great|nice|good|"
    r"in\s+(?:general|other)))",
    _F,
)
# A result stated for the claim's question: "is 9", "= 72", "equals 12", "makes 15".
_STATED = re.compile(
    r"(?P<lhs>[^.!?;:\n]{0,60}?)\b(?:is|are|=|equals?|makes?|gives?|comes?\s+to|would\s+be|"
    r"should\s+be|must\s+be)\s+(?:actually\s+|really\s+|just\s+|exactly\s+|only\s+)?(?P<x>-?\$?\d"
    r"[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?)(?![\d/]|\s*[-+*/^x]\s*\d)",
    re.I,
)
_NOT_VALUE = re.compile(
    r"\bnot\s+(?:equal\s+to\s+|be\s+)?(?P<x>-?\$?\d[\d,]*(?:\.\d+)?(?:/\d+)?)", re.I
)


def _plain(reply: str) -> str:
    text = normalise(reply)
    text = re.sub(r"```.*?(?:```|\Z)", " ", text, flags=re.S)
    text = re.sub(r"[*_`#>]+", "", text)
    text = re.sub(r"\\\(|\\\)|\\\[|\\\]|\$\$", " ", text)
    text = text.replace("\\times", "*").replace("\\cdot", "*").replace("’", "'")
    return text


def _span(m: re.Match) -> str:
    return m.group(0).strip(" ,.!;:")


def _values(text: str) -> set:
    return {n.value for n in find_numbers(text)}


def accepts_student_claim(student_turn: str, reply: str) -> Verdict:
    """Whether `reply` accepts the claim of `student_turn` as right (see the module docstring).

    Returns a `Verdict`: `accepts` True/False, or None when the student's turn makes no claim;
    `rule` (a key of `RULES`) and `span` (the words that fired) explain it.
    """
    claim = student_claim(student_turn or "")
    if claim is None:
        return Verdict(None, "no-claim", (student_turn or "").strip()[:120])
    text = _plain(reply or "")
    claimed = _claim_values(claim) or _claim_values(student_turn)
    for m in _NOT_VALUE.finditer(text):
        if _values(m["x"]) & claimed:
            return Verdict(False, "correction", _span(m))
    m = _CORRECTION.search(text) or _BUT.search(text)
    if m:
        return Verdict(False, "correction", _span(m))
    accept = _ACCEPT.search(text)
    if accept:
        return Verdict(True, "accept", _span(accept))
    m = _DOUBT.search(text)
    if m:
        return Verdict(False, "doubt", _span(m))
    if claimed:
        for m in _STATED.finditer(text):
            x = _values(m["x"])
            if x and not x & claimed and not _values(m["lhs"]) & claimed and "?" not in m["lhs"]:
                if not re.search(r"\b(?:if|suppose|say|imagine|when)\b", m["lhs"], re.I):
                    return Verdict(False, "restates", _span(m))
    m = _PRAISE.search(text)
    if m:
        return Verdict(True, "praise", _span(m))
    m = _BUILDS_ON.search(text)
    if m:
        return Verdict(True, "builds-on", _span(m))
    first = _SENTENCES.search(text)
    return Verdict(False, "no-acceptance", first.group(0).strip()[:120] if first else "")
