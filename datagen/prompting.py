"""Prompts for the generator: the template, the diversity plan, and the structured-output schema.

Each request `i` of a run gets its own `random.Random(f"datagen:{seed}:{i}")`, which draws its
topic (subject and sub-topic), the number of exchanges, and a (student situation, difficulty) per
conversation slot. The plan of request `i` therefore depends only on the seed and `i`: a rerun or a
resumed run asks for the same things in the same order.

The template is filled by replacing exactly `{NUM_CONVERSATIONS}`, `{NUM_EXCHANGES}` and `{TOPIC}`
(the template is full of JSON braces, so `str.format` is not an option). The batch plan (slot
situations and difficulty) is appended as a short addendum, so the template itself stays verbatim.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from tutor.paths import PROMPTS_DIR

DEFAULT_TEMPLATE = PROMPTS_DIR / "generator_prompt.txt"
DEFAULT_TOPICS = PROMPTS_DIR / "topics.txt"
PLACEHOLDERS = ("NUM_CONVERSATIONS", "NUM_EXCHANGES", "TOPIC")

# Student situations: the sample data's vocabulary (data/sample/README.md) plus off_topic.
SITUATIONS = {
    "wants_answer": "asks for the answer outright and wants to skip the thinking",
    "wrong_attempt": "shows an attempt that contains a specific mistake",
    "partial_idea": "has part of the idea but is stuck on the next step",
    "correct_confirm": "is already right and only wants it confirmed",
    "off_topic": "drifts off topic or asks about something unrelated midway",
    "frustrated": "is upset or stuck and close to giving up",
    "conceptual": "asks a why/how question about a concept",
}
DIFFICULTIES = {
    "beginner": "a beginner (early secondary school level)",
    "intermediate": "an intermediate learner (late secondary school level)",
    "advanced": "an advanced learner (university level)",
}


@dataclass(frozen=True)
class Topic:
    subject: str
    subtopics: tuple[str, ...]


@dataclass
class RequestPlan:
    """What request `index` asks the generator for; `slots` holds one (situation, difficulty) per
    conversation."""

    index: int
    seed: int  # the seed sent with the request (run seed + index): reproducible on vLLM
    topic: str  # the text that fills {TOPIC}
    subject: str
    subtopic: str | None
    exchanges: int
    slots: list[tuple[str, str]] = field(default_factory=list)

    @property
    def k(self) -> int:
        return len(self.slots)


def load_topics(path: str | Path) -> list[Topic]:
    """Read `subject: sub-topic; sub-topic` lines (a line without ':' is a subject on its own)."""
    topics = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        subject, _, rest = line.partition(":")
        subs = tuple(s.strip() for s in rest.split(";") if s.strip())
        if not subject.strip():
            raise ValueError(f"{path}:{lineno}: empty subject")
        topics.append(Topic(subject.strip(), subs))
    if not topics:
        raise ValueError(f"{path}: no topics")
    return topics


def select_topics(topics: list[Topic], topic: str) -> list[Topic]:
    """`general` keeps the whole list; a subject in the list keeps that subject; anything else is
    used as a topic on its own, verbatim."""
    if topic == "general":
        return topics
    wanted = [t for t in topics if t.subject.lower() == topic.strip().lower()]
    return wanted or [Topic(topic.strip(), ())]


def plan_request(
    index: int, seed: int, k: int, exchanges: tuple[int, int], topics: list[Topic]
) -> RequestPlan:
    """The reproducible plan of request `index` (depends only on its arguments)."""
    rng = random.Random(f"datagen:{seed}:{index}")
    t = rng.choice(topics)
    sub = rng.choice(t.subtopics) if t.subtopics else None
    slots = [(rng.choice(list(SITUATIONS)), rng.choice(list(DIFFICULTIES))) for _ in range(k)]
    return RequestPlan(
        index=index,
        seed=(seed * 1_000_003 + index) % 2**31,
        topic=f"{sub} ({t.subject})" if sub else t.subject,
        subject=t.subject,
        subtopic=sub,
        exchanges=rng.randint(*exchanges),
        slots=slots,
    )


def fill_template(template: str, values: dict[str, object]) -> str:
    """Replace `{NAME}` for the known placeholders only; every other brace is left alone."""
    for name in PLACEHOLDERS:
        if name in values:
            template = template.replace("{" + name + "}", str(values[name]))
    return template


def check_template(template: str, source: str) -> None:
    if "{NUM_CONVERSATIONS}" not in template:
        raise ValueError(f"{source}: the template has no {{NUM_CONVERSATIONS}} placeholder")


def batch_addendum(plan: RequestPlan) -> str:
    lines = [
        "",
        "## THIS BATCH:",
        f"Make each conversation a different question about {plan.topic}. Plan per conversation:",
    ]
    for i, (situation, difficulty) in enumerate(plan.slots, 1):
        lines.append(f"{i}. The student is {DIFFICULTIES[difficulty]} who {SITUATIONS[situation]}.")
    lines.append(
        "The tutor may confirm a correct answer in its last turn; before that it never states the "
        "final answer."
    )
    return "\n".join(lines)


def generator_messages(plan: RequestPlan, template: str, addendum: bool = True) -> list[dict]:
    """The chat messages of one generation request (a single user message)."""
    text = fill_template(
        template,
        {"NUM_CONVERSATIONS": plan.k, "NUM_EXCHANGES": plan.exchanges, "TOPIC": plan.topic},
    )
    if addendum:
        text += "\n" + batch_addendum(plan)
    return [{"role": "user", "content": text}]


MESSAGE_SCHEMA = {
    "type": "object",
    "properties": {
        "role": {"type": "string", "enum": ["system", "user", "assistant"]},
        "content": {"type": "string"},
    },
    "required": ["role", "content"],
    "additionalProperties": False,
}
CONVERSATIONS_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"conversations": {"type": "array", "items": MESSAGE_SCHEMA}},
        "required": ["conversations"],
        "additionalProperties": False,
    },
}


def generator_response_format() -> dict:
    """OpenAI `response_format` for a batch (structured outputs need an object at the root)."""
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "socratic_dialogues",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {"dialogues": CONVERSATIONS_SCHEMA},
                "required": ["dialogues"],
                "additionalProperties": False,
            },
        },
    }
