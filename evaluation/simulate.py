"""`socratic eval simulate`: multi-turn conversations between each tutor and a simulated student.

    socratic eval simulate reports/RUN --student-url http://127.0.0.1:9000 --turns 3

A student model role-plays the learner of each multi-turn scenario (problem, misconception,
persona), continuing the item's conversation; the tutor under test answers; up to k tutor turns.
As in MathDial: success@k = the student states the correct answer within k turns; telling@k =
the tutor stated it before the student did. The tutor endpoints and settings come from the run's
`run.json`. Items whose student has already solved the problem (good_move confirm:
`solved_confirm`, `claim_right`) are skipped: there is nothing left to discover. Writes `RUN/simulations.jsonl`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

from evaluation.client import CallFailed, Chat, Sampling
from evaluation.tasks import EvalItem, load_eval_set
from tutor.io import DataError, write_jsonl
from tutor.metrics import reveals_answer

STUDENT_PROMPT = """You are role-playing a student talking to a tutor. Stay in character.
Problem: {problem}
Your misconception: {misconception}
Who you are: {persona}
Write only your next message to the tutor (one to three sentences). Keep your misconception until
the tutor's questions make you see the mistake yourself; then work the problem out and say your
answer. Never pretend to be the tutor."""


def student_messages(item: EvalItem, conversation: list[dict]) -> list[dict]:
    """The student model's view: its persona as system prompt, roles swapped (tutor = user)."""
    swap = {"user": "assistant", "assistant": "user"}
    system = STUDENT_PROMPT.format(**{k: item.scenario.get(k, "") for k in
                                      ("problem", "misconception", "persona")})  # fmt: skip
    return [{"role": "system", "content": system}] + [
        {"role": swap[m["role"]], "content": m["content"]} for m in conversation
    ]


async def simulate_item(
    item: EvalItem, tutor: Chat, student: Chat, turns: int, sampling: Sampling, student_sampling
) -> dict:
    """One conversation of up to `turns` tutor turns; the turn numbers of success and telling."""
    conversation = list(item.messages)
    problem = item.scenario.get("problem", "")
    solved_at = told_at = None
    for turn in range(1, turns + 1):
        reply = await tutor.complete(item.prompt()[:1] + conversation, sampling)
        seen = "\n".join(m["content"] for m in conversation)
        if told_at is None and reveals_answer(reply, item.reference_answer, seen):
            told_at = turn
        conversation.append({"role": "assistant", "content": reply})
        said = await student.complete(student_messages(item, conversation), student_sampling)
        conversation.append({"role": "user", "content": said})
        if reveals_answer(said, item.reference_answer, problem):
            solved_at = turn
            break
    return {
        "id": item.id,
        "subject": item.subject,
        "kind": item.kind,
        "turns": turns,
        "solved_at": solved_at,
        "told_at": told_at,
        "success": solved_at is not None,
        # the tutor gave the answer before (or in the turn that) the student first stated it
        "telling": told_at is not None and (solved_at is None or told_at <= solved_at),
        "conversation": conversation,
    }


def simulate_run(
    run_dir: str | Path,
    student_url: str,
    student_model: str | None = None,
    *,
    turns: int = 3,
    student_temperature: float = 0.7,
    concurrency: int = 4,
    timeout_s: float = 120.0,
    progress: bool = True,
) -> Path:
    """Simulate every scenario against every endpoint of `run_dir`; return simulations.jsonl."""
    run_dir = Path(run_dir)
    try:
        config = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(f"{run_dir / 'run.json'}: {e}") from None
    items = [
        i
        for i in load_eval_set(config["eval_set"], config.get("limit"))
        if i.scenario and i.reference_answer and i.good_move != "confirm"  # not solved already
    ]
    sampling = Sampling(**config["sampling"])
    rows = asyncio.run(
        _simulate_all(items, config, student_url, student_model, turns, sampling,
                      replace(sampling, temperature=student_temperature), concurrency,
                      timeout_s, run_dir / "cache", progress)
    )  # fmt: skip
    out = run_dir / "simulations.jsonl"
    write_jsonl(out, rows)
    return out


async def _simulate_all(items, config, student_url, student_model, turns, sampling,
                        student_sampling, concurrency, timeout_s, cache, bar):  # fmt: skip
    from tqdm import tqdm

    common = {"cache_dir": cache, "concurrency": concurrency, "timeout_s": timeout_s}
    tutors = {
        name: Chat(url, config["models"].get(name), **common)
        for name, url in config["endpoints"].items()
    }
    student = Chat(student_url, student_model, **common)
    jobs = [(item, name) for item in items for name in tutors]
    try:
        with tqdm(total=len(jobs), desc="eval simulate", unit="dialogue", disable=not bar) as pbar:

            async def one(item: EvalItem, name: str) -> dict:
                try:
                    row = await simulate_item(
                        item, tutors[name], student, turns, sampling, student_sampling
                    )
                    row["error"] = None
                except CallFailed as e:
                    row = {"id": item.id, "subject": item.subject, "kind": item.kind,
                           "turns": turns, "success": None, "telling": None, "error": str(e)}  # fmt: skip
                pbar.update(1)
                return {"endpoint": name, **row}

            return list(await asyncio.gather(*(one(item, name) for item, name in jobs)))
    finally:
        for chat in [*tutors.values(), student]:
            await chat.close()
