"""The eval runner against fake OpenAI-compatible endpoints on 127.0.0.1: same prompt and
sampling for every endpoint, retries after 500s, failures and timeouts recorded (not dropped),
the on-disk cache (a rerun sends nothing), and the `socratic eval run` / `eval score` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluation.client import Sampling
from evaluation.run import run_eval
from tutor.cli import main
from tutor.prompts import TUTOR_SYSTEM_PROMPT

SINGLE = [
    {"id": "s1", "subject": "arithmetic", "kind": "homework", "reference_answer": "3/4",
     "messages": [{"role": "user", "content": "What is 1/2 + 1/4?"}]},
    {"id": "s2", "subject": "history", "kind": "conceptual", "reference_answer": None,
     "messages": [{"role": "user", "content": "Why did Rome fall?"}]},
]  # fmt: skip
MULTI = [
    {"id": "m1", "subject": "arithmetic", "kind": "wrong_attempt", "reference_answer": "3/4",
     "good_move": "guide", "scenario": {"problem": "1/2 + 1/4", "misconception": "adds tops",
                                        "persona": "a sixth grader"},
     "messages": [{"role": "user", "content": "1/2 + 1/4 = 2/6?"}]},
]  # fmt: skip


def write_set(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, rows in (("single_turn.jsonl", SINGLE), ("multi_turn.jsonl", MULTI)):
        (root / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_run_sends_the_same_request_everywhere_and_caches(tmp_path, fake_openai) -> None:
    base = fake_openai(lambda body: (200, "It is 3/4.", 0), model="base")
    tuned = fake_openai(lambda body: (200, "What is 1/2 in quarters?", 0), model="tuned")
    eval_set = write_set(tmp_path / "set")
    sampling = Sampling(temperature=0.3, top_p=0.9, max_tokens=64, seed=7)
    out = run_eval({"base": base.url, "tuned": tuned.url}, tmp_path / "run", eval_set,
                   sampling=sampling, progress=False)  # fmt: skip
    rows = [json.loads(line) for line in (out / "responses.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and not any(r["error"] for r in rows)
    by = {(r["id"], r["endpoint"]): r for r in rows}
    assert by[("s1", "base")]["metrics"]["reveals_answer"] is True
    assert by[("s1", "tuned")]["metrics"]["reveals_answer"] is False
    # judged without a reference too; the report counts it only where the item has one
    assert by[("s2", "tuned")]["metrics"]["reveals_answer"] is False
    assert by[("m1", "tuned")]["metrics"]["good_move_made"] is True
    for server, model in ((base, "base"), (tuned, "tuned")):
        assert len(server.requests) == 3
        for body in server.requests:
            assert body["messages"][0] == {"role": "system", "content": TUTOR_SYSTEM_PROMPT}
            assert (body["model"], body["temperature"], body["top_p"]) == (model, 0.3, 0.9)
            assert (body["max_tokens"], body["seed"]) == (64, 7)
    run_eval({"base": base.url, "tuned": tuned.url}, tmp_path / "run", eval_set,
             sampling=sampling, progress=False)  # fmt: skip
    assert len(base.requests) == len(tuned.requests) == 3  # the rerun came from the cache


def test_retries_500s_then_records_failures(tmp_path, fake_openai) -> None:
    calls = {"n": 0}

    def flaky(body):
        calls["n"] += 1
        return (500, None, 0) if calls["n"] <= 2 else (200, "Why do you think so?", 0)

    ok = fake_openai(flaky)
    down = fake_openai(lambda body: (500, None, 0))
    slow = fake_openai(lambda body: (200, "too late", 1.5))
    eval_set = write_set(tmp_path / "set")
    out = run_eval({"flaky": ok.url, "down": down.url, "slow": slow.url}, tmp_path / "run",
                   eval_set, limit=1, retries=2, timeout_s=0.5, progress=False)  # fmt: skip
    rows = [json.loads(line) for line in (out / "responses.jsonl").read_text().splitlines()]
    assert len(rows) == 6  # 2 items x 3 endpoints: failures are written, not dropped
    errors = {r["endpoint"]: r["error"] for r in rows}
    assert errors["flaky"] is None  # two 500s, then success within the retries
    assert "3 attempts failed" in errors["down"] and "InternalServerError" in errors["down"]
    assert "Timeout" in errors["slow"]
    assert all(r["metrics"] is None for r in rows if r["error"])
    assert json.loads((out / "run.json").read_text())["failed"] == 4


def test_cli_run_and_score(tmp_path, fake_openai, capsys) -> None:
    tutor = fake_openai(lambda body: (200, "What do you notice?", 0))
    eval_set = write_set(tmp_path / "set")
    out = tmp_path / "run"
    assert main(["eval", "run", "--endpoint", f"t={tutor.url}/v1", "--set", str(eval_set),
                 "--out", str(out), "--report"]) == 0  # fmt: skip
    assert (out / "report.md").exists()
    assert main(["eval", "run", "--endpoint", "nourl", "--out", str(out)]) == 2
    assert "NAME=http" in capsys.readouterr().err

    scored_in = tmp_path / "in.jsonl"
    scored_in.write_text(json.dumps({"messages": [*SINGLE[0]["messages"],
        {"role": "assistant", "content": "Is it 3/4?"}], "reference_answer": "3/4", "x": 1}) + "\n")  # fmt: skip
    assert main(["eval", "score", str(scored_in), "--out", str(tmp_path / "o.jsonl")]) == 0
    row = json.loads((tmp_path / "o.jsonl").read_text())
    assert row["x"] == 1 and row["metrics"]["reveals_answer"] is True
    assert row["metrics"]["asks_question"] is True
    scored_in.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    assert main(["eval", "score", str(scored_in), "--out", str(tmp_path / "bad.jsonl")]) == 2
    assert "in.jsonl:1: messages: must end with an assistant reply" in capsys.readouterr().err
    assert not (tmp_path / "bad.jsonl").exists()


def test_bad_eval_set_names_the_row(tmp_path) -> None:
    from evaluation.tasks import load_eval_set
    from tutor.io import DataError

    (tmp_path / "single_turn.jsonl").write_text(json.dumps({**SINGLE[0], "messages": []}) + "\n")
    with pytest.raises(DataError, match=r"single_turn.jsonl:1: messages"):
        load_eval_set(tmp_path)


def test_bundled_eval_set_loads() -> None:
    from evaluation.tasks import load_eval_set
    from tutor.paths import EVAL_DIR

    items = load_eval_set(EVAL_DIR)
    assert len(items) >= 150 and len({i.subject for i in items}) >= 12
    assert all(i.scenario for i in items if i.good_move)
