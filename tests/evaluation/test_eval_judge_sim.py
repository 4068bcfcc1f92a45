"""The LLM judge and the simulated student against fake endpoints on 127.0.0.1: a valid judgement
is parsed ("not applicable" mistake identification scores None: outside n), garbage JSON is
retried with a new seed and then counted missing (never defaulted), the judge never sees the
endpoint's name; success@k and telling@k of simulated dialogues."""

from __future__ import annotations

import json

import pytest
from test_eval_runner import write_set

from evaluation.judge import DIMENSIONS, judge_run, judgement_scores, parse_judgement
from evaluation.run import run_eval
from evaluation.simulate import simulate_run

GOOD = {
    "socratic": {"score": 0.9, "rationale": "Asks a guiding question."},
    "helpfulness": {"score": 0.7, "rationale": "Points at the right step."},
    **{k: {"label": labels[0], "rationale": "ok"} for k, labels in DIMENSIONS.items()},
}


def test_parse_judgement_validates_every_field() -> None:
    parsed = parse_judgement("Here you go:\n```json\n" + json.dumps(GOOD) + "\n```")
    assert judgement_scores(parsed)["judge_tutor_tone"] == 1.0
    assert parsed["coherence"]["label"] == "yes"
    right = {**GOOD, "mistake_identification": {"label": "Not applicable", "rationale": "right"}}
    assert (
        judgement_scores(parse_judgement(json.dumps(right)))["judge_mistake_identification"] is None
    )
    with pytest.raises(ValueError, match="no JSON"):
        parse_judgement("I think it is good.")
    with pytest.raises(ValueError, match="socratic.score"):
        parse_judgement(json.dumps({**GOOD, "socratic": {"score": 1.5}}))
    with pytest.raises(ValueError, match="tutor_tone.label"):
        parse_judgement(json.dumps({**GOOD, "tutor_tone": {"label": "rude"}}))


def test_judge_retries_garbage_then_counts_missing(tmp_path, fake_openai) -> None:
    tutors = {name: fake_openai(lambda b: (200, "What is 1/2 in quarters?", 0), model=name)
              for name in ("secret-base", "secret-tuned")}  # fmt: skip
    run = run_eval({k: v.url for k, v in tutors.items()}, tmp_path / "run",
                   write_set(tmp_path / "set"), progress=False)  # fmt: skip

    def judge(body):
        prompt = json.dumps(body["messages"])
        assert "secret" not in prompt  # blind to the endpoint and model
        if "Rome" in prompt:
            return 200, "{not json", 0  # always garbage for this item
        if body["seed"] == 0:
            return 200, '{"socratic": "high"}', 0  # first try unparseable, second fine
        return 200, json.dumps(GOOD), 0

    server = fake_openai(judge, model="judge")
    out = judge_run(run, server.url, attempts=3, progress=False)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 6
    missing = [r for r in rows if r["judgement"] is None]
    assert {r["id"] for r in missing} == {"s2"} and all(r["attempts"] == 3 for r in missing)
    assert all("JSON" in r["error"] or "Expecting" in r["error"] for r in missing)
    assert all(r["attempts"] == 2 for r in rows if r["judgement"] is not None)
    seeds = sorted({b["seed"] for b in server.requests})
    assert seeds == [0, 1, 2]


def test_simulated_student_success_and_telling(tmp_path, fake_openai) -> None:
    guide = fake_openai(lambda b: (200, "What is 1/2 written in quarters?", 0), model="guide")
    teller = fake_openai(lambda b: (200, "The answer is 3/4.", 0), model="teller")
    run = run_eval({"guide": guide.url, "teller": teller.url}, tmp_path / "run",
                   write_set(tmp_path / "set"), progress=False)  # fmt: skip

    def student(body):
        tutor_turns = [m for m in body["messages"] if m["role"] == "user"]
        assert "adds tops" in body["messages"][0]["content"]  # the scenario is role-played
        said = "oh so it's 3/4" if len(tutor_turns) >= 2 else "hmm, 2/6?"
        return 200, said, 0

    out = simulate_run(run, fake_openai(student).url, turns=3, progress=False)
    sims = {r["endpoint"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert sims["guide"]["success"] and sims["guide"]["solved_at"] == 2
    assert not sims["guide"]["telling"]
    assert sims["teller"]["telling"] and sims["teller"]["told_at"] == 1
    assert sims["guide"]["conversation"][-1] == {"role": "user", "content": "oh so it's 3/4"}


def test_right_claims_are_not_simulated(tmp_path, fake_openai) -> None:
    # the student who already states the right answer has nothing left to discover
    tutor = fake_openai(lambda b: (200, "How could you check it?", 0), model="tutor")
    claims = [{"id": f"c{i}", "subject": "arithmetic", "kind": kind, "good_move": move,
               "reference_answer": "56", "scenario": {"problem": "7 x 8", "persona": "p"},
               "messages": [{"role": "user", "content": f"7 x 8 = {said}, right?"}]}
              for i, (kind, move, said) in enumerate((("claim_wrong", "probe", 54),
                                                      ("claim_right", "confirm", 56)))]  # fmt: skip
    (tmp_path / "claims.jsonl").write_text("".join(json.dumps(c) + "\n" for c in claims))
    run = run_eval({"t": tutor.url}, tmp_path / "run", tmp_path / "claims.jsonl", progress=False)
    student = fake_openai(lambda b: (200, "oh, 56", 0))
    out = simulate_run(run, student.url, turns=1, progress=False)
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["c0"]
