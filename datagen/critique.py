"""Constitutional self-critique: a critic scores each conversation against the plan's seven
Socratic principles and rewrites the ones that fall short.

The critic prompt (`data/prompts/critic_prompt.txt`, `--critic-template` swaps it) gets the
dialogue as JSON and answers with scores 0-5 per principle (0 = no occasion to apply), the final
answer the student should reach (used by the reveal check), a verdict and, for "revise", the whole
rewritten conversation. A conversation falls short when the verdict is "revise" or any applicable
principle scores below `min_score`; the revision then goes through every quality gate again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from datagen.extract import extract_object
from datagen.prompting import MESSAGE_SCHEMA
from tutor.paths import PROMPTS_DIR

DEFAULT_CRITIC_TEMPLATE = PROMPTS_DIR / "critic_prompt.txt"
PRINCIPLES = (
    "probing_questions",
    "challenge_assumptions",
    "guide_discovery",
    "break_down_problems",
    "critical_thinking",
    "analogies_examples",
    "acknowledge_reasoning",
)


@dataclass
class Critique:
    scores: dict[str, int]
    final_answer: str = ""
    problems: str = ""
    verdict: str = "keep"
    revision: list[Any] = field(default_factory=list)

    def falls_short(self, min_score: int) -> bool:
        return self.verdict == "revise" or any(0 < s < min_score for s in self.scores.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "scores": self.scores,
            "final_answer": self.final_answer,
            "problems": self.problems,
            "verdict": self.verdict,
        }


def critic_messages(
    messages: list[dict[str, str]], template: str, min_score: int
) -> list[dict[str, str]]:
    dialogue = [m for m in messages if m["role"] != "system"]
    text = template.replace(
        "{CONVERSATION}", json.dumps(dialogue, indent=1, ensure_ascii=False)
    ).replace("{MIN_SCORE}", str(min_score))
    return [{"role": "user", "content": text}]


def parse_critique(text: str) -> Critique:
    """Read the critic's reply; raises ValueError (one line) when it is not usable."""
    obj = extract_object(text)
    raw = obj.get("scores")
    if not isinstance(raw, dict):
        raise ValueError("critique has no 'scores' object")
    scores = {}
    for name in PRINCIPLES:
        value = raw.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 5:
            raise ValueError(f"critique score {name!r} is missing or not 0-5")
        scores[name] = int(value)
    verdict = str(obj.get("verdict", "")).strip().lower()
    if verdict not in ("keep", "revise"):
        raise ValueError(f"critique verdict {verdict!r} is not 'keep' or 'revise'")
    revision = obj.get("revision") or []
    return Critique(
        scores=scores,
        final_answer=str(obj.get("final_answer") or "").strip(),
        problems=str(obj.get("problems") or "").strip(),
        verdict=verdict,
        revision=revision if isinstance(revision, list) else [revision],
    )


def critic_response_format() -> dict:
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "socratic_critique",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {
                    "scores": {
                        "type": "object",
                        "properties": {p: {"type": "integer"} for p in PRINCIPLES},
                        "required": list(PRINCIPLES),
                        "additionalProperties": False,
                    },
                    "final_answer": {"type": "string"},
                    "problems": {"type": "string"},
                    "verdict": {"type": "string", "enum": ["keep", "revise"]},
                    "revision": {"type": "array", "items": MESSAGE_SCHEMA},
                },
                "required": ["scores", "final_answer", "problems", "verdict", "revision"],
                "additionalProperties": False,
            },
        },
    }
