"""`socratic data generate --pairs` against the scripted fake upstream on 127.0.0.1 (real openai
client, real uvicorn) and the fake Batch API: every kind of bad reply and HTTP failure still ends
with exactly N valid, unique preference pairs whose kind is the source's label; the critic's
rejections are counted; the counts add up; resume and extension never repeat a request; an
unlabelled source lets the model name the point ("none" is counted, not kept); `--batch openai`
runs the same session; bad inputs are one-line errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import testkit.fake_batch
import testkit.fake_generator
from datagen.generate import GenerateArgs, run_generation
from datagen.pairs_prompting import source_turns
from testkit.fake_batch import BatchState, FakeBatchServer
from testkit.fake_generator import FakeServer, FakeState
from tutor.cli import main as socratic
from tutor.io import DataError
from tutor.pairs import load_pairs, pair_fingerprint

_ORIGINAL_REPLY = testkit.fake_generator.generation_reply
_OTHER_KIND = {"wrong_claim": "right_claim", "right_claim": "wrong_claim", "answer_demand": "wrong_claim"}  # fmt: skip


def pair_check(state: FakeState, prompt: str) -> str:
    """The fake critic of pairs: rejects every `revise_every`-th pair as differing elsewhere too."""
    uid = state.fresh_id()
    bad = state.revise_every > 0 and uid % state.revise_every == 0
    return json.dumps({"kind_holds": True, "differs_on_point": True, "differs_elsewhere": bad,
                       "problems": "rude" if bad else "", "verdict": "reject" if bad else "keep"})  # fmt: skip


def pair_reply(state: FakeState, prompt: str, action: str) -> tuple[str, str]:
    """The fake's rejected twin for a pair prompt; other prompts get the original fake.

    Actions: good; fenced (prose, fence, trailing comma); garbage; malformed (broken JSON);
    truncated (cut off, finish_reason "length"); duplicate (rejected equal to chosen);
    wrong_roles (another kind than asked); no_question (rejected three times as long)."""
    if "## PREFERENCE PAIR: REJECTED TWIN" not in prompt:
        return _ORIGINAL_REPLY(state, prompt, action)
    kind = re.search(r"The point to get wrong \((\w+)\)", prompt).group(1)
    chosen = re.search(r"## CHOSEN TURN:\n(.*?)\n\n## YOUR REPLY", prompt, re.S).group(1)
    if kind == "decide":
        kind = "none" if state.fresh_id() % 3 == 0 else "wrong_claim"
    rejected = "Yes, that's right, well done! " + chosen
    if action == "duplicate":
        rejected = chosen
    if action == "no_question":
        rejected = " ".join([rejected] * 3)
    if action == "wrong_roles":
        kind = _OTHER_KIND[kind]
    text = json.dumps({"kind": kind, "rejected": rejected if kind != "none" else ""})
    if action == "fenced":
        return f"Here it is:\n```json\n{text[:-1]},}}\n```", "stop"
    if action == "garbage":
        return "I would rather not.", "stop"
    if action == "malformed":
        return text.replace('"kind":', '"kind"', 1), "stop"
    if action == "truncated":
        return text[: len(text) // 2], "length"
    return text, "stop"


@pytest.fixture(autouse=True)
def fake_pairs(monkeypatch):
    """The fakes answer pair prompts; the pair check goes where their critic goes (no script)."""
    for module in (testkit.fake_generator, testkit.fake_batch):
        monkeypatch.setattr(module, "generation_reply", pair_reply)
        monkeypatch.setattr(module, "critic_reply", pair_check)
        monkeypatch.setattr(module, "_CRITIC_MARKER", "## PREFERENCE PAIR CHECK")


@pytest.fixture
def source(repo_root) -> Path:
    return repo_root / "data" / "sample" / "dialogues.jsonl"


def _args(tmp_path: Path, url: str, n: int, source: Path, **kw) -> GenerateArgs:
    base = dict(concurrency=4, retry_base_s=0.05, timeout_s=5.0, progress=False)
    return GenerateArgs(out=tmp_path / "pairs.jsonl", n=n, base_url=url, api_key="k", pairs=True,
                        pairs_from=source, **{**base, **kw})  # fmt: skip


def assert_counts_add_up(c: dict) -> None:
    rejected = sum(c["rejected"].values())
    early = sum(v for k, v in c["rejected"].items() if not k.startswith("critique:"))
    assert c["requested"] + c["extra"] == c["returned"] + c["missing"]
    assert c["returned"] == c["parsed"] + c["unparsed"]
    assert c["parsed"] == c["accepted"] + c["surplus"] + rejected + sum(c["duplicates"].values())
    assert c["valid"] == c["parsed"] - early


def assert_pairs_match_source(path: Path, n: int, source: Path) -> list[dict]:
    pairs = load_pairs(path)
    assert len(pairs) == n and len({pair_fingerprint(p) for p in pairs}) == n
    labels = {(t.where, t.turn): t for t in source_turns(source, 0).turns}
    for p in pairs:
        src = labels[(p["meta"]["source"], p["meta"]["turn"])]
        assert p["kind"] == src.kind and p["chosen"][0]["content"] == src.chosen
        assert p["prompt"] == src.prompt and p["rejected"][0]["content"].startswith("Yes, that's")
    return pairs


SCRIPT = ["good", "garbage", "429", "malformed", "duplicate", "500", "truncated", "wrong_roles",
          "no_question", "fenced", "good"]  # fmt: skip


def test_every_failure_kind_still_yields_exactly_n_pairs(tmp_path, source) -> None:
    state = FakeState(script=list(SCRIPT), revise_every=4)
    with FakeServer(state) as srv:
        m = run_generation(_args(tmp_path, srv.url, 12, source))
    assert not state.script and m.stop_reason == "done" and m.conversations == 12
    assert_pairs_match_source(tmp_path / "pairs.jsonl", 12, source)
    c = m.counts
    assert_counts_add_up(c)
    assert c["unparsed"] == 3  # garbage, malformed, truncated
    assert c["truncated_replies"] == 1
    assert c["rejected"]["schema: rejected[i].content: equal to chosen[i].content; a pair must differ"] == 1  # fmt: skip
    assert c["rejected"]["pairs: kind differs from the source's label"] == 1
    assert c["rejected"]["pairs: sides differ in length beyond the ratio bounds"] == 1
    assert c["rejected"]["critique: the sides differ elsewhere too"] >= 3
    assert m.data["pairs"]["source_turns"] > 200 and m.data["pairs"]["turns_without_a_point"] > 0
    lines = (tmp_path / "pairs.rejected.jsonl").read_text().splitlines()
    assert len(lines) == c["unparsed"] + sum(c["rejected"].values())
    assert socratic(["data", "validate", str(tmp_path / "pairs.jsonl")]) == 0


def test_resume_and_extend_never_repeat_a_request(tmp_path, source) -> None:
    state = FakeState()
    with FakeServer(state) as srv:
        first = run_generation(_args(tmp_path, srv.url, 5, source, critique=False))
        again = run_generation(_args(tmp_path, srv.url, 5, source, critique=False))
        more = run_generation(_args(tmp_path, srv.url, 9, source, critique=False))
    assert first.conversations == 5 and again.counts["requests"] == 0
    assert more.conversations == 9 and more.counts["requests"] == 4
    pairs = assert_pairs_match_source(tmp_path / "pairs.jsonl", 9, source)
    assert len({p["meta"]["request"] for p in pairs}) == 9
    assert [s["existing_at_start"] for s in more.data["sessions"]] == [0, 5, 5]


def test_unlabelled_source_lets_the_model_name_the_point(tmp_path, source) -> None:
    plain = tmp_path / "plain.jsonl"
    rows = [json.loads(line) for line in source.read_text().splitlines()[:20]]
    plain.write_text(
        "".join(json.dumps({"conversations": r["conversations"]}) + "\n" for r in rows)
    )
    with FakeServer(FakeState()) as srv:
        m = run_generation(_args(tmp_path, srv.url, 8, plain, critique=False))
    assert m.stop_reason == "done" and m.conversations == 8
    assert m.counts["rejected"]["pairs: the model found no point to contrast"] >= 2
    assert {p["kind"] for p in load_pairs(tmp_path / "pairs.jsonl")} == {"wrong_claim"}
    assert_counts_add_up(m.counts)


def test_batch_openai_runs_the_same_session(tmp_path, source) -> None:
    state = BatchState(replies=FakeState(script=["good", "garbage", "500"], revise_every=3))
    with FakeBatchServer(state) as srv:
        m = run_generation(_args(tmp_path, srv.url, 6, source, batch="openai", poll_s=0.01, retries=3))  # fmt: skip
    assert m.stop_reason == "done" and m.conversations == 6
    assert_pairs_match_source(tmp_path / "pairs.jsonl", 6, source)
    assert m.counts["critiqued"] >= 6 and m.counts["unparsed"] == 1
    assert m.data["batch"]["mode"] == "openai"


def test_bad_inputs_are_one_line_errors(tmp_path, source, capsys) -> None:
    with pytest.raises(DataError, match="--pairs needs --pairs-from"):
        run_generation(_args(tmp_path, "http://127.0.0.1:9/v1", 2, None))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"conversations": [{"role": "bot", "content": "x"}]}\n')
    with pytest.raises(
        DataError, match=r"--pairs-from: 1 invalid row\(s\) \(first: .*bad.jsonl:1: "
    ):
        run_generation(_args(tmp_path, "http://127.0.0.1:9/v1", 2, bad))
    rc = socratic(["data", "generate", "--pairs", "--pairs-from", str(tmp_path / "none.jsonl"),
                   "--out", str(tmp_path / "p.jsonl"), "--n", "2", "--base-url", "http://127.0.0.1:9/v1"])  # fmt: skip
    assert rc == 2 and "none.jsonl: no such file" in capsys.readouterr().err
