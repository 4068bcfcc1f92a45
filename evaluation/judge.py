"""`socratic eval judge`: grade every reply of a run with an LLM judge (any OpenAI-compatible model).

    socratic eval judge reports/RUN --judge-url http://127.0.0.1:9000 --judge-model gpt-4o-mini

The rubric: Socratic-ness and helpfulness (0 to 1) and the eight pedagogical dimensions of MRBench
(Maurya et al., NAACL 2025), each with its label and a one-sentence rationale, as one JSON object.
Mistake identification asks MRBench's question, "Has the tutor identified the mistake in the
student's answer?" (yes | to some extent | no), and is "not applicable" where the student's answer
is right or the student states none; such a judgement counts as not applicable in the report.
The judge sees the conversation, the reference answer and one reply; never the endpoint's name.
Replies are judged in a seeded random order, so the endpoints' replies are interleaved. A
judgement that fails or does not parse is retried (with a new seed, so the cache does not replay
it) and then recorded as missing, never replaced by a default. Writes `RUN/judgements.jsonl`.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from dataclasses import replace
from pathlib import Path

from evaluation.client import CallFailed, Chat, Sampling
from tutor.io import DataError, read_rows, write_jsonl

YES3 = ("yes", "to some extent", "no")
DIMENSIONS: dict[str, tuple[str, ...]] = {
    "mistake_identification": (*YES3, "not applicable"),
    "mistake_location": YES3,
    "revealing_of_the_answer": ("yes (correct)", "yes (incorrect)", "no"),
    "providing_guidance": YES3,
    "actionability": YES3,
    "coherence": YES3,
    "tutor_tone": ("encouraging", "neutral", "offensive"),
    "humanlikeness": YES3,
}
# Label -> number for the statistics (higher is better except revealing, where 1 = revealed);
# "not applicable" has no number (None: outside n).
LABEL_VALUE: dict[str, float | None] = {
    "not applicable": None,
    "yes": 1.0, "to some extent": 0.5, "no": 0.0, "yes (correct)": 1.0, "yes (incorrect)": 1.0,
    "encouraging": 1.0, "neutral": 0.5, "offensive": 0.0,
}  # fmt: skip

RUBRIC = """You are grading one reply of a tutor to a student. Judge only the LAST tutor reply.

Scores (0 to 1):
- socratic: 1 = guides the student to find the answer with questions or hints; 0 = lectures or \
hands over the answer.
- helpfulness: 1 = moves the student forward (correct, relevant, right amount of help; confirms a \
correct answer); 0 = unhelpful, wrong, evasive or off-topic.

Pedagogical dimensions (MRBench), with their labels:
- mistake_identification: has the tutor identified the mistake in the student's answer? \
yes | to some extent | no | not applicable (the student's answer is right, or there is none); \
a reply that accepts a wrong answer ("Yes, that's right") or builds on it has not identified it
- mistake_location: does it point to where the mistake is? yes | to some extent | no
- revealing_of_the_answer: does it give away the final answer? yes (correct) | yes (incorrect) | no
- providing_guidance: does it offer correct, relevant guidance (hint, explanation, example)? yes | to some extent | no
- actionability: is it clear what the student should do next? yes | to some extent | no
- coherence: is it logically consistent with the conversation? yes | to some extent | no
- tutor_tone: encouraging | neutral | offensive
- humanlikeness: does it read like a human tutor? yes | to some extent | no

Reply with one JSON object only, no prose around it:
{"socratic": {"score": 0.0, "rationale": "one sentence"},
 "helpfulness": {"score": 0.0, "rationale": "one sentence"},
 "mistake_identification": {"label": "yes", "rationale": "one sentence"},
 ... one entry like this for each of the eight dimensions ...}"""

JUDGE_SAMPLING = Sampling(max_tokens=800)  # room for eight one-sentence rationales


def judge_messages(row: dict) -> list[dict]:
    """The judge prompt for one reply: conversation, reference answer, reply; no endpoint name."""
    convo = "\n".join(f"{m['role'].upper()}: {m['content']}" for m in row["messages"])
    ref = row.get("reference_answer") or "(none: an open question)"
    body = (
        f"CONVERSATION SO FAR:\n{convo}\n\nREFERENCE ANSWER (the student should reach it): {ref}"
        f"\n\nTUTOR REPLY TO GRADE:\n{row['response']}"
    )
    return [{"role": "system", "content": RUBRIC}, {"role": "user", "content": body}]


def parse_judgement(text: str) -> dict:
    """Validate the judge's JSON; raises ValueError naming the bad field."""
    match = re.search(r"\{.*\}", text, re.S)
    if not match:
        raise ValueError("no JSON object in the judge's reply")
    data = json.loads(match.group(0))
    if not isinstance(data, dict):
        raise ValueError("the judgement is not a JSON object")
    out: dict = {}
    for key in ("socratic", "helpfulness"):
        entry = data.get(key)
        score = entry.get("score") if isinstance(entry, dict) else entry
        if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1:
            raise ValueError(f"{key}.score: expected a number from 0 to 1, got {score!r}")
        rationale = entry.get("rationale", "") if isinstance(entry, dict) else ""
        out[key] = {"score": float(score), "rationale": str(rationale)}
    for key, labels in DIMENSIONS.items():
        entry = data.get(key)
        label = entry.get("label") if isinstance(entry, dict) else entry
        label = str(label).strip().lower() if label is not None else ""
        if label not in labels:
            raise ValueError(f"{key}.label: expected one of {' | '.join(labels)}, got {label!r}")
        rationale = entry.get("rationale", "") if isinstance(entry, dict) else ""
        out[key] = {"label": label, "rationale": str(rationale)}
    return out


def judgement_scores(judgement: dict) -> dict[str, float | None]:
    """Numbers for the statistics: judge_socratic, judge_helpfulness, judge_<dimension>; None
    where the judge found the dimension not applicable."""
    scores = {f"judge_{k}": judgement[k]["score"] for k in ("socratic", "helpfulness")}
    scores.update({f"judge_{k}": LABEL_VALUE[judgement[k]["label"]] for k in DIMENSIONS})
    return scores


async def judge_reply(chat: Chat, row: dict, sampling: Sampling, attempts: int) -> dict:
    """One reply's judgement ({"judgement", "attempts", "error"}); `row` holds "messages" (the
    conversation before the reply), "response" and "reference_answer". A failed or invalid
    judgement is retried with the next seed, then returned as None with every attempt's error."""
    errors = []
    for attempt in range(attempts):
        try:
            text = await chat.complete(
                judge_messages(row), replace(sampling, seed=sampling.seed + attempt)
            )
            return {"judgement": parse_judgement(text), "attempts": attempt + 1, "error": None}
        except (CallFailed, ValueError) as e:
            errors.append(str(e)[:300])
    return {"judgement": None, "attempts": attempts, "error": " | ".join(errors)}


def judge_run(
    run_dir: str | Path,
    judge_url: str,
    judge_model: str | None = None,
    *,
    attempts: int = 3,
    concurrency: int = 4,
    timeout_s: float = 120.0,
    sampling: Sampling = JUDGE_SAMPLING,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Judge every answered reply of `run_dir`; return the path of judgements.jsonl."""
    run_dir = Path(run_dir)
    rows = [r.value for r in read_rows(run_dir / "responses.jsonl") if _ok(r)]
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    results = asyncio.run(
        _judge_all(rows, order, judge_url, judge_model, attempts, concurrency, timeout_s,
                   sampling, run_dir / "cache", progress)
    )  # fmt: skip
    out = run_dir / "judgements.jsonl"
    write_jsonl(out, results)
    return out


def _ok(row) -> bool:
    if row.error:
        raise DataError(f"{row.where}: {row.error}")
    return row.value.get("response") is not None


async def _judge_all(
    rows, order, url, model, attempts, concurrency, timeout_s, sampling, cache, bar
):
    from tqdm import tqdm

    chat = Chat(url, model, cache_dir=cache, concurrency=concurrency, retries=1,
                timeout_s=timeout_s)  # fmt: skip
    try:
        with tqdm(total=len(order), desc="eval judge", unit="reply", disable=not bar) as pbar:

            async def one(i: int) -> dict:
                result = await judge_reply(chat, rows[i], sampling, attempts)
                pbar.update(1)
                return {"id": rows[i]["id"], "endpoint": rows[i]["endpoint"], **result}

            results = await asyncio.gather(*(one(i) for i in order))
        model_name = chat.model
    finally:
        await chat.close()
    return [{**r, "judge_model": model_name} for r in results]
