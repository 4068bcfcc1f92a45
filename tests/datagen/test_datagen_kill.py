"""Crash safety: `socratic data generate` is SIGKILLed several times mid-run (with critique on and
requests in flight) and rerun with the same command; the file ends with exactly N valid, unique
conversations, never a partial line, and the plan stays reproducible (no request index appears
twice). The fake endpoint runs in this process on 127.0.0.1; the generator is a real subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from testkit.fake_generator import FakeServer, FakeState

N = 60


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _command(out: Path, url: str) -> list[str]:
    return [
        sys.executable, "-m", "tutor.cli", "data", "generate", "--out", str(out), "--n", str(N),
        "--base-url", url, "--per-request", "3", "--concurrency", "4", "--retry-base", "0.05",
        "--seed", "11", "--no-progress",
    ]  # fmt: skip


def test_sigkill_and_rerun_leaves_exactly_n(tmp_path: Path, check_file) -> None:
    out = tmp_path / "gen.jsonl"
    env = {**os.environ, "OPENAI_API_KEY": "fake"}
    state = FakeState(latency_s=0.03, revise_every=4)
    kills = 0
    with FakeServer(state) as srv:
        for stop_at in (6, 21, 38):
            proc = subprocess.Popen(_command(out, srv.url), env=env, stderr=subprocess.PIPE)
            deadline = time.monotonic() + 60
            while _lines(out) < stop_at and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
            kills += 1
            raw = out.read_bytes()
            assert not raw or raw.endswith(b"\n"), "a kill left a partial line"
            assert stop_at <= _lines(out) < N
        done = subprocess.run(_command(out, srv.url), env=env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    records = check_file(out, N)
    requests = [(r["meta"]["request"], r["meta"]["slot"]) for r in records]
    assert len(set(requests)) == N
    assert kills == 3 and "resuming" in done.stderr.decode()
