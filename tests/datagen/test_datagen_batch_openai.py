"""`socratic data generate --batch openai` against the fake Files + Batches API on 127.0.0.1 (real
openai client, real uvicorn): a completed batch with failed lines (retried in the next round,
never dropped), an expired batch (its finished lines kept, the rest resubmitted), a batch someone
else cancelled, `--cancel-batch`, a batch that fails validation (fatal, resubmitted by the
rerun), resume after the process is SIGKILLed at every step of a round (upload, create, poll,
download) and while processing, with no line ever answered twice and no extra batch; Batch API
prices in the manifest; the result-line parser for both services' shapes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from datagen.batch_lines import parse_line, read_results
from datagen.client import FatalError
from datagen.cost import PRICES
from datagen.generate import GenerateArgs, run_generation
from datagen.session import Session
from testkit.fake_batch import BatchState, FakeBatchServer
from testkit.fake_generator import FakeState
from tutor.cli import main as socratic
from tutor.io import DataError


def _args(tmp_path: Path, srv: FakeBatchServer, n: int, **kw) -> GenerateArgs:
    base = dict(per_request=3, poll_s=0.01, progress=False, batch="openai", retries=3)
    return GenerateArgs(
        out=tmp_path / "gen.jsonl", n=n, base_url=srv.url, api_key="k", **{**base, **kw}
    )


def assert_ledger(manifest) -> dict:
    """Every conversation asked for is written, rejected with a reason, or failed."""
    ledger = manifest.data["sessions"][-1]["ledger"]
    settled = ledger["written"] + sum(ledger["rejected"].values()) + ledger["failed"]
    assert ledger["requested"] + ledger["extra_returned"] == settled, ledger
    counts = manifest.counts
    assert counts["returned"] == counts["parsed"] + counts["unparsed"]
    assert counts["requested"] + counts["extra"] == counts["returned"] + counts["missing"]
    return ledger


def _state(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "gen.batch.json").read_text())


def _never_paid_twice(state: BatchState, tmp_path: Path) -> None:
    assert state.answered and max(state.answered.values()) == 1, state.answered.most_common(3)
    assert len(state.batches) == _state(tmp_path)["rounds"], "a batch that no round recorded"


def test_failed_lines_are_retried_and_every_conversation_is_accounted_for(
    tmp_path: Path, check_file
) -> None:
    replies = FakeState(script=["malformed", "good", "wrong_roles", "500"], revise_every=3)
    state = BatchState(replies=replies, fail_every=5, lines_per_poll=2)
    with FakeBatchServer(state) as srv:
        m = run_generation(_args(tmp_path, srv, 12))
    assert m.stop_reason == "done" and m.conversations == 12
    records = check_file(tmp_path / "gen.jsonl", 12)
    ledger = assert_ledger(m)
    assert ledger["rejected"]["unparsed"] >= 1 and ledger["written"] == 12
    assert any("unknown role" in r for r in ledger["rejected"])
    rounds = m.data["sessions"][-1]["requests"]["rounds"]
    assert [r["kind"] for r in rounds[:2]] == ["generate", "critique"]
    assert sum(r["failed_lines"] for r in rounds) >= 3
    assert all(r["status"] == "completed" and r["remote"]["batch_id"] for r in rounds)
    _never_paid_twice(state, tmp_path)
    list_in, list_out = PRICES["gpt-4o-mini"]
    assert list(m.data["price_usd_per_1m_tokens"]) == [list_in / 2, list_out / 2]
    assert m.data["cost_usd"] > 0 and m.data["batch"]["mode"] == "openai"
    assert m.counts["revised"] >= 1 and sum(r["meta"]["revised"] for r in records) >= 1
    retried = [k for k, v in _state(tmp_path)["retries"].items() if v]
    assert retried, "the failed lines were counted as retries"


def test_expired_batch_keeps_its_results_and_resubmits_the_rest(tmp_path: Path, check_file) -> None:
    state = BatchState(expire={1: 2})  # the first batch runs 2 of its lines, then expires
    with FakeBatchServer(state) as srv:
        m = run_generation(_args(tmp_path, srv, 9, critique=False))
    assert m.stop_reason == "done"
    check_file(tmp_path / "gen.jsonl", 9)
    first, second = m.data["sessions"][-1]["requests"]["rounds"][:2]
    assert first["status"] == "expired" and first["lines"] == 3 and first["failed_lines"] == 1
    assert second["status"] == "completed"
    assert_ledger(m)
    _never_paid_twice(state, tmp_path)


def test_a_batch_cancelled_elsewhere_stops_the_run_and_a_rerun_finishes(
    tmp_path: Path, check_file
) -> None:
    state = BatchState(cancel={1: 1})
    with FakeBatchServer(state) as srv:
        first = run_generation(_args(tmp_path, srv, 9, critique=False))
        assert first.stop_reason == "cancelled" and first.conversations == 3
        assert _state(tmp_path)["generate"], "the lines never run wait for the next round"
        done = run_generation(_args(tmp_path, srv, 9, critique=False))
    assert done.stop_reason == "done"
    check_file(tmp_path / "gen.jsonl", 9)
    assert _state(tmp_path)["retries"] == {}, "a cancelled line spends no retry"
    _never_paid_twice(state, tmp_path)


def test_failed_validation_is_fatal_and_the_rerun_resubmits(tmp_path: Path, check_file) -> None:
    state = BatchState(fail_validation=True)
    with FakeBatchServer(state) as srv:
        with pytest.raises(FatalError, match="Enqueued token limit"):
            run_generation(_args(tmp_path, srv, 6, critique=False))
        manifest = json.loads((tmp_path / "gen.manifest.json").read_text())
        assert manifest["stop_reason"].startswith("error: batch batch_1 failed")
        assert _state(tmp_path)["current"]["failed_batches"] == ["batch_1"]
        state.fail_validation = False
        m = run_generation(_args(tmp_path, srv, 6, critique=False))
    assert m.stop_reason == "done" and len(state.batches) == 2
    check_file(tmp_path / "gen.jsonl", 6)


def test_a_refused_parameter_adapts_the_next_round(tmp_path: Path, check_file) -> None:
    state = BatchState(refuse="max_tokens")  # newer models want max_completion_tokens
    with FakeBatchServer(state) as srv:
        m = run_generation(_args(tmp_path, srv, 6, critique=False))
    assert m.stop_reason == "done" and m.data["structured_output"] is True
    check_file(tmp_path / "gen.jsonl", 6)
    first, second = m.data["sessions"][-1]["requests"]["rounds"]
    assert first["failed_lines"] == first["lines"] == 2 and second["failed_lines"] == 0
    assert m.counts["failed"] == 0, "an adapted line is retried, not given up"
    adaptations = m.data["sessions"][-1]["adaptations"]
    assert len(adaptations) == 1 and "max_completion_tokens" in adaptations[0]
    retried = (tmp_path / "gen.batches" / "round-002-generate.requests.jsonl").read_text()
    assert '"max_completion_tokens"' in retried and '"max_tokens"' not in retried


def test_max_cost_probes_then_sizes_rounds_by_the_cost_so_far(tmp_path: Path, check_file) -> None:
    state = BatchState()
    with FakeBatchServer(state) as srv:
        args = _args(tmp_path, srv, 300, critique=False, concurrency=2, max_cost=0.02)
        m = run_generation(GenerateArgs(**{**vars(args), "price_in": 1.0, "price_out": 1.0}))
    assert m.stop_reason == "max_cost" and 0 < m.conversations < 300
    rounds = m.data["sessions"][-1]["requests"]["rounds"]
    assert rounds[0]["lines"] == 2, "a probe round of --concurrency requests"
    per_request = m.data["cost_usd"] / sum(r["lines"] for r in rounds)
    assert 0.02 <= m.data["cost_usd"] < 0.02 + 2 * per_request  # at most ~one request over
    check_file(tmp_path / "gen.jsonl", m.conversations)


def _cli(tmp_path: Path, url: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "tutor.cli", "data", "generate", "--out", str(tmp_path / "gen.jsonl"),
        "--n", "6", "--per-request", "3", "--batch", "openai", "--base-url", url,
        "--poll-interval", "0.01", "--no-progress", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize(
    "kill_at",
    [
        ("files.create", 1),  # uploaded, the file id never saved
        ("batches.create", 1),  # the batch exists (paid for), its id never saved
        ("batches.retrieve", 2),  # while polling
        ("files.content", 1),  # while downloading the results
        ("batches.create", 2),  # the second round (the critique of the first)
    ],
)
def test_killed_at_any_step_the_rerun_resumes_and_never_pays_twice(
    tmp_path: Path, check_file, kill_at: tuple[str, int]
) -> None:
    env = {**os.environ, "OPENAI_API_KEY": "k"}
    state = BatchState(replies=FakeState(revise_every=2), kill_at=kill_at, lines_per_poll=1)
    with FakeBatchServer(state) as srv:
        proc = subprocess.Popen(_cli(tmp_path, srv.url), env=env, stderr=subprocess.PIPE)
        state.kill_pid = proc.pid
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == -9, err.decode()[-2000:]
        state.kill_at = None
        done = subprocess.run(_cli(tmp_path, srv.url), env=env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    check_file(tmp_path / "gen.jsonl", 6)
    _never_paid_twice(state, tmp_path)
    if kill_at[0] == "batches.create":
        assert "adopting it" in done.stderr.decode()
    manifest = json.loads((tmp_path / "gen.manifest.json").read_text())
    assert len(manifest["sessions"]) == 2 and manifest["stop_reason"] == "done"


def test_killed_while_processing_results_the_rerun_adds_no_duplicate(
    tmp_path: Path, check_file, monkeypatch
) -> None:
    state = BatchState()
    commit, calls = Session.commit, []

    def dies_on_the_second_commit(self, plan, results):
        calls.append(plan.index)
        if len(calls) == 2:
            raise KeyboardInterrupt
        commit(self, plan, results)

    with FakeBatchServer(state) as srv:
        monkeypatch.setattr(Session, "commit", dies_on_the_second_commit)
        with pytest.raises(KeyboardInterrupt):
            run_generation(_args(tmp_path, srv, 6, critique=False))
        monkeypatch.setattr(Session, "commit", commit)
        assert (tmp_path / "gen.jsonl").read_text().count("\n") == 3
        m = run_generation(_args(tmp_path, srv, 6, critique=False))
    assert m.stop_reason == "done"
    check_file(tmp_path / "gen.jsonl", 6)
    assert m.counts["duplicates"] == {"exact": 3}, "the reprocessed round met its own lines"
    assert len(state.batches) == 1, "the downloaded round was processed again, not resubmitted"


def test_cancel_batch_keeps_what_finished_then_a_rerun_completes(
    tmp_path: Path, check_file, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    env = {**os.environ, "OPENAI_API_KEY": "k"}
    state = BatchState(kill_at=("batches.retrieve", 2), lines_per_poll=1)
    with FakeBatchServer(state) as srv:
        proc = subprocess.Popen(_cli(tmp_path, srv.url, "--no-critique"), env=env)
        state.kill_pid = proc.pid
        assert proc.wait(timeout=120) == -9
        state.kill_at = None
        argv = _cli(tmp_path, srv.url, "--no-critique", "--cancel-batch")[3:]
        assert socratic(argv) == 1
        assert "stopped (cancelled)" in capsys.readouterr().err
        assert state.batches["batch_1"]["status"] == "cancelled"
        kept = (tmp_path / "gen.jsonl").read_text().count("\n")
        assert 0 < kept < 6
        assert socratic(_cli(tmp_path, srv.url, "--no-critique")[3:]) == 0
    check_file(tmp_path / "gen.jsonl", 6)
    _never_paid_twice(state, tmp_path)


def test_result_lines_of_both_services_are_read() -> None:
    body = {
        "choices": [{"message": {"content": "[]"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 2},
    }
    ok = parse_line({"custom_id": "gen-1", "response": {"status_code": 200, "body": body}})
    assert ok.reply.text == "[]" and ok.reply.prompt_tokens == 7 and not ok.error
    openai_500 = {
        "custom_id": "gen-2",
        "response": {"status_code": 500, "body": {"error": {"message": "boom", "code": None}}},
        "error": None,
    }
    line = parse_line(openai_500)
    assert line.reply is None and line.status == 500 and line.error == "boom"
    expired = {
        "custom_id": "x",
        "response": None,
        "error": {"code": "batch_expired", "message": "late"},
    }
    assert parse_line(expired).code == "batch_expired" and parse_line(expired).status is None
    vllm_error = {
        "custom_id": "gen-3",
        "response": {"status_code": 400, "request_id": "r", "body": None},
        "error": {
            "error": {
                "message": "bad\nrequest",
                "type": "BadRequestError",
                "param": "seed",
                "code": 400,
            }
        },
    }
    line = parse_line(vllm_error)
    assert (line.status, line.error, line.param, line.code) == (400, "bad request", "seed", None)
    vllm_text = {"custom_id": "gen-4", "response": {"status_code": 400}, "error": "stream mode"}
    assert parse_line(vllm_text).error == "stream mode"


def test_missing_and_malformed_result_lines(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    ok = {"custom_id": "a", "response": {"status_code": 200, "body": {"choices": []}}}
    path.write_text(json.dumps(ok) + "\n")
    lines = read_results([path], ["a", "b"])
    assert lines["a"].reply is not None and lines["b"].code == "missing"
    path.write_text(json.dumps(ok) + "\n{not json\n")
    with pytest.raises(DataError, match=r"out.jsonl:2"):
        read_results([path], ["a"])


def test_cli_batch_flags_have_help_and_checks(capsys, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    with pytest.raises(SystemExit):
        socratic(["data", "generate", "--help"])
    flat = " ".join(capsys.readouterr().out.split())
    for text in (
        "--batch {openai,vllm}",
        "Batch API (half the price",
        "(default: 30)",
        "--cancel-batch",
        "--vllm-args ARGS",
    ):
        assert text in flat
    assert socratic(["data", "generate", "--out", "x.jsonl", "--n", "2", "--cancel-batch"]) == 2
    assert "--cancel-batch needs --batch openai" in capsys.readouterr().err
