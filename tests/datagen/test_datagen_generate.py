"""The generator end to end against the scripted fake OpenAI-compatible server on 127.0.0.1 (real
openai client, real uvicorn): a run through every kind of bad reply and HTTP failure ends with
exactly N valid unique conversations and counts that add up; critique and revision; structured-
output fallback; bad key / bad model fail at once; the circuit breaker; --max-cost; resume and
extension; `socratic data generate` and `socratic data push --save-to`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datagen.client import FatalError
from datagen.generate import GenerateArgs, run_generation
from testkit.fake_generator import FakeServer, FakeState
from tutor.cli import main as socratic
from tutor.data import Report, iter_conversations
from tutor.schema import fingerprint

SCRIPT = [
    "slow",
    "good",
    "duplicate",
    "fenced",
    "malformed",
    "truncated",
    "wrong_roles",
    "no_question",
]
SCRIPT += ["429", "500", "garbage", "duplicate"]


def _args(tmp_path: Path, srv: FakeServer, n: int, **kw) -> GenerateArgs:
    base = dict(per_request=3, concurrency=4, retry_base_s=0.05, timeout_s=5.0, progress=False)
    return GenerateArgs(
        out=tmp_path / "gen.jsonl", n=n, base_url=srv.url, api_key="k", **{**base, **kw}
    )


def assert_counts_add_up(counts: dict) -> None:
    assert counts["requested"] + counts["extra"] == counts["returned"] + counts["missing"]
    rejected = sum(counts["rejected"].values())
    early = sum(v for k, v in counts["rejected"].items() if not k.startswith("critique:"))
    assert counts["returned"] == counts["parsed"] + counts["unparsed"]
    ends = counts["accepted"] + counts["surplus"] + rejected + sum(counts["duplicates"].values())
    assert counts["parsed"] == ends
    assert counts["valid"] == counts["parsed"] - early


def test_every_failure_kind_still_yields_exactly_n(tmp_path: Path, check_file) -> None:
    state = FakeState(script=list(SCRIPT), slow_s=1.5)
    with FakeServer(state) as srv:  # the 429's Retry-After (1 s) outlasts the timeout (0.5 s)
        m = run_generation(_args(tmp_path, srv, 24, critique=False, timeout_s=0.5))
    assert not state.script, "the whole script was played"
    assert m.stop_reason == "done" and m.conversations == 24
    records = check_file(tmp_path / "gen.jsonl", 24)
    c = m.counts
    assert_counts_add_up(c)
    assert c["accepted"] == 24 and c["unparsed"] >= 3 and c["truncated_replies"] == 1
    ledger = m.data["sessions"][-1]["ledger"]  # every conversation asked for, by fate
    settled = ledger["written"] + sum(ledger["rejected"].values()) + ledger["failed"]
    assert ledger["requested"] + ledger["extra_returned"] == settled and ledger["written"] == 24
    assert ledger["rejected"]["unparsed"] == c["unparsed"] and c["missing"] >= 1  # "garbage"
    assert any("unknown role" in r for r in c["rejected"])
    assert any("asks no question" in r for r in c["rejected"])
    assert c["duplicates"].get("exact", 0) >= 1
    errors = m.data["sessions"][-1]["requests"]["errors"]
    assert errors["429"] == 1 and errors["500"] == 1 and errors["timeout"] == 1
    assert m.data["sessions"][-1]["usage"]["generate"]["completion_tokens"] > 0
    assert m.data["cost_usd"] > 0  # gpt-4o-mini is in the price table
    meta = records[0]["meta"]
    assert {"subject", "situation", "difficulty", "request", "model"} <= set(meta)
    rejected = [json.loads(x) for x in (tmp_path / "gen.rejected.jsonl").read_text().splitlines()]
    assert all(r["reason"] for r in rejected)
    assert sum(r["reason"] == "unparsed" for r in rejected) == 3  # malformed, truncated, garbage


def test_critique_revises_and_keeps_the_trail(tmp_path: Path, check_file) -> None:
    state = FakeState(revise_every=3)
    with FakeServer(state) as srv:
        m = run_generation(_args(tmp_path, srv, 12))
    records = check_file(tmp_path / "gen.jsonl", 12)
    c = m.counts
    assert_counts_add_up(c)
    assert c["critiqued"] >= 12 and c["revised"] >= 2
    assert sum(r["meta"]["revised"] for r in records) == c["revised"]
    trail = [json.loads(x) for x in (tmp_path / "gen.critique.jsonl").read_text().splitlines()]
    assert len(trail) == c["critiqued"]
    revised = [t for t in trail if t["critique"]["verdict"] == "revise"]
    assert revised and all(t["original"] and t["revision"] and t["outcome"] for t in revised)
    accepted = {fingerprint(r["conversations"]) for r in records}
    assert any(fingerprint(t["revision"]) in accepted for t in revised)
    assert not any(fingerprint(t["original"]) in accepted for t in revised)


def test_structured_output_falls_back_when_refused(tmp_path: Path) -> None:
    with FakeServer(FakeState(reject_response_format=True)) as srv:
        m = run_generation(_args(tmp_path, srv, 5, critique=False))
    assert m.conversations == 5 and m.data["structured_output"] is False
    assert any("response_format" in a for a in m.data["sessions"][-1]["adaptations"])


@pytest.mark.parametrize(
    "state, kw, message",
    [
        (FakeState(api_key="right"), {}, r"rejected the API key \(401\)"),
        (FakeState(model="served-model"), {}, "not found"),
        (FakeState(script=["500"] * 50), {"breaker": 4}, "circuit breaker"),
    ],
)
def test_fatal_endpoint_errors_stop_at_once(tmp_path: Path, state, kw, message) -> None:
    with FakeServer(state) as srv, pytest.raises(FatalError, match=message):
        run_generation(_args(tmp_path, srv, 5, **kw))
    manifest = json.loads((tmp_path / "gen.manifest.json").read_text())
    assert manifest["stop_reason"].startswith("error:")
    assert sum(state.seen.values()) <= 5


def test_max_cost_stops_cleanly(tmp_path: Path, check_file) -> None:
    with FakeServer(FakeState()) as srv:
        args = _args(tmp_path, srv, 200, concurrency=1, max_cost=0.002, price_in=1.0, price_out=1.0)
        m = run_generation(args)
    assert m.stop_reason == "max_cost" and 0 < m.conversations < 200
    assert m.data["cost_usd"] >= 0.002
    check_file(tmp_path / "gen.jsonl", m.conversations)


def test_resume_extends_without_duplicates(tmp_path: Path, check_file) -> None:
    out = tmp_path / "gen.jsonl"
    with FakeServer(FakeState()) as srv:
        first = run_generation(_args(tmp_path, srv, 7, critique=False))
        with out.open("ab") as f:
            f.write(b'{"conversations": [{"role": "user", "content": "cut off')  # an old crash
        second = run_generation(_args(tmp_path, srv, 13, critique=False))
        again = run_generation(_args(tmp_path, srv, 13, critique=False))
    assert first.conversations == 7 and second.conversations == 13
    records = check_file(out, 13)
    s = second.data["sessions"][-1]
    assert s["existing_at_start"] == 7 and s["truncated_partial_bytes"] > 0
    first_requests = {r["meta"]["request"] for r in records[:7]}
    assert not first_requests & {r["meta"]["request"] for r in records[7:]}
    assert again.counts["requests"] == 0 and len(again.data["sessions"]) == 3


def test_extending_a_file_with_an_invalid_row_is_refused(tmp_path: Path, capsys) -> None:
    (tmp_path / "gen.jsonl").write_text('{"conversations": []}\n')
    with FakeServer(FakeState()) as srv:
        code = socratic(
            [
                "data",
                "generate",
                "--out",
                str(tmp_path / "gen.jsonl"),
                "--n",
                "3",
                "--base-url",
                srv.url,
            ]
        )
    assert code == 2 and "gen.jsonl:1" in capsys.readouterr().err


def test_cli_generate_and_push_save_to(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("FAKE_KEY", "sk-secret-value")
    out = tmp_path / "cli.jsonl"
    with FakeServer(FakeState(api_key="sk-secret-value", revise_every=4)) as srv:
        argv = ["data", "generate", "--out", str(out), "--n", "6", "--base-url", srv.url]
        argv += ["--api-key-env", "FAKE_KEY", "--per-request", "2", "--retry-base", "0.05"]
        assert socratic([*argv, "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "6 conversations in" in err and "sk-secret-value" not in err
    manifest = json.loads((tmp_path / "cli.manifest.json").read_text())
    assert manifest["args"]["per_request"] == 2 and "sk-secret" not in json.dumps(manifest)
    assert socratic(["data", "push", "--in", str(out), "--save-to", str(tmp_path / "ds")]) == 0
    card = (tmp_path / "ds" / "README.md").read_text()
    assert "gpt-4o-mini" in card and "license: apache-2.0" in card and "6 multi-turn" in card
    report = Report()
    back = list(iter_conversations([tmp_path / "ds"], report))
    assert report.valid == 6 and not report.invalid
    assert back[0].meta["request"] is not None


def test_cli_help_and_missing_key(monkeypatch, capsys) -> None:
    with pytest.raises(SystemExit):
        socratic(["data", "generate", "--help"])
    text = capsys.readouterr().out
    for flag in (
        "--n",
        "--exchanges",
        "--per-request",
        "--concurrency",
        "--max-cost",
        "--no-critique",
    ):
        assert flag in text
    flat = " ".join(text.split())  # help text re-wrapped to one line
    assert "(default: 5)" in flat and "USD per 1M input tokens" in flat
    assert "USD per 1M output tokens" in flat and "progress bar (shown by default)" in flat
    # defaults are written once, in words: no argparse "None"/"True" placeholders
    assert "(default: None)" not in flat and "(default: True)" not in flat
    assert (
        "endpoint, e.g. http://localhost:8000/v1 (default: $OPENAI_BASE_URL if set, else "
        "OpenAI) --api-key-env" in flat
    )
    with pytest.raises(SystemExit):
        socratic(["data", "push", "--help"])
    text = capsys.readouterr().out
    assert "(default: None)" not in text and "(default: HF_TOKEN)" in " ".join(text.split())
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert socratic(["data", "generate", "--out", "x.jsonl", "--n", "1"]) == 2
    assert "OPENAI_API_KEY" in capsys.readouterr().err
