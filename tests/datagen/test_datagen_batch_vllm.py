"""`socratic data generate --batch vllm` against the REAL vLLM engine (its CPU build, found by
`tutor.vllm.find_vllm`) with the real SmolLM2-135M-Instruct, end to end, once per test session:
the first attempt is SIGKILLed once vLLM's engine process is up (the runner and its engine
processes must die with it, and no result file is left to trust), the rerun resumes the same
round, finishes it, and sends no other (the resumed round counts against --max-requests). A 135M model is a poor generator: the tests check that every
conversation asked for is written, rejected with a reason or failed, never what the model says.
Skipped when no vLLM is found (set VLLM_PYTHON)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tutor.vllm import VllmError, check_vllm, find_vllm

pytestmark = pytest.mark.slow

N = 6
RERUN_TIMEOUT_S = 540  # vLLM CPU start (eager: no compile) plus 6 short replies, on busy cores


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="session")
def vllm_run(tmp_path_factory: pytest.TempPathFactory, smol_base: Path) -> dict:
    try:
        check_vllm(find_vllm())
    except VllmError as e:
        pytest.skip(str(e))
    out = tmp_path_factory.mktemp("vllm-batch") / "gen.jsonl"
    cmd = [
        sys.executable, "-m", "tutor.cli", "data", "generate", "--out", str(out), "--n", str(N),
        "--batch", "vllm", "--model", str(smol_base), "--per-request", "1",
        "--exchanges", "2", "--max-tokens", "320", "--max-requests", str(N), "--no-critique",
        "--no-progress", "--seed", "3",
    ]  # fmt: skip
    env = dict(os.environ)
    first = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
    log = out.with_name("gen.batches") / "round-001-generate.vllm.log"
    deadline = time.monotonic() + 300  # until the engine process is up (its log names it)
    while not (log.exists() and b"EngineCore" in log.read_bytes()) and time.monotonic() < deadline:
        time.sleep(0.5)
    runner = _runner_pid(first.pid)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    deadline = time.monotonic() + 120
    while runner and _group_alive(runner) and time.monotonic() < deadline:
        time.sleep(0.5)
    orphans = runner is not None and _group_alive(runner)
    if orphans:
        os.killpg(runner, signal.SIGKILL)
    t0 = time.monotonic()
    done = subprocess.run(cmd, env=env, capture_output=True, timeout=RERUN_TIMEOUT_S)
    return {
        "out": out,
        "runner": runner,
        "orphans": orphans,
        "done": done,
        "wall_s": time.monotonic() - t0,
        "manifest": json.loads(out.with_name("gen.manifest.json").read_text()),
    }


def _runner_pid(parent: int) -> int | None:
    """The batch runner started by `parent` (its process group leader), if any yet."""
    for _ in range(100):
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == parent:  # ppid
                return int(entry.name)
        time.sleep(0.1)
    return None


def test_the_killed_runner_dies_with_the_generator(vllm_run: dict) -> None:
    assert vllm_run["runner"] is not None, "vLLM's batch runner never started"
    assert not vllm_run["orphans"], "vLLM processes outlived the killed generator"
    batches = vllm_run["out"].with_name("gen.batches")
    assert not list(batches.glob("round-001-generate.results.jsonl.tmp*"))


def test_the_rerun_resumes_the_round_and_accounts_for_every_conversation(
    vllm_run: dict, check_file
) -> None:
    done, m = vllm_run["done"], vllm_run["manifest"]
    err = done.stderr.decode()
    assert done.returncode in (0, 1), err[-3000:]  # 1 = stopped at --max-requests
    assert "resuming round 1 (generate)" in err
    assert m["stop_reason"] in ("done", "max_requests") and len(m["sessions"]) == 2
    session = m["sessions"][-1]
    ledger = session["ledger"]
    settled = ledger["written"] + sum(ledger["rejected"].values()) + ledger["failed"]
    assert ledger["requested"] + ledger["extra_returned"] == settled == N + ledger["extra_returned"]
    assert ledger["failed"] == 0, "every line came back from the engine"
    rounds = session["requests"]["rounds"]
    assert [r["kind"] for r in rounds] == ["generate"] and rounds[0]["failed_lines"] == 0
    assert session["usage"]["generate"]["completion_tokens"] > 0
    written = m["conversations_in_file"]
    if written:  # a 135M model rarely writes a valid Socratic dialogue; none is fine too
        check_file(vllm_run["out"], written)
    else:
        assert vllm_run["out"].read_bytes() == b""
    rejected = vllm_run["out"].with_name("gen.rejected.jsonl").read_text().splitlines()
    assert all(json.loads(x)["reason"] for x in rejected)


def test_requests_carry_the_schema_and_seed_and_the_cpu_flags(vllm_run: dict) -> None:
    batches = vllm_run["out"].with_name("gen.batches")
    lines = [json.loads(x) for x in (batches / "round-001-generate.requests.jsonl").open()]
    assert len(lines) == N and len({x["custom_id"] for x in lines}) == N
    body = lines[0]["body"]
    assert body["response_format"]["type"] == "json_schema" and isinstance(body["seed"], int)
    command = vllm_run["manifest"]["sessions"][-1]["requests"]["rounds"][0]["engine"]["command"]
    for flag in ("--no-enable-chunked-prefill", "--dtype float32", "--enforce-eager"):
        assert flag in command
    results = (batches / "round-001-generate.results.jsonl").read_text().splitlines()
    assert len(results) == N
