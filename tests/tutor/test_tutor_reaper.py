"""`tutor.reaper`: a command and the processes it starts die with the caller, whether the caller
is SIGKILLed (the kernel's parent-death signal) or stops the group with one SIGTERM; the exit
status is the command's. Real processes, no mocks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux prctl")

# A command that starts a grandchild and sleeps: both must go.
FAMILY = (
    "import subprocess, sys, time; "
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); time.sleep(120)"
)


def _members(pgid: int) -> int:
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid:
                    count += 1
            except ProcessLookupError:
                continue
    return count


def _wait_for(predicate, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_a_killed_caller_takes_the_whole_family_with_it() -> None:
    caller = (
        "import subprocess, sys, time; "
        f"p = subprocess.Popen([sys.executable, '-m', 'tutor.reaper', '--', sys.executable, "
        f"'-c', {FAMILY!r}], start_new_session=True); print(p.pid, flush=True); time.sleep(120)"
    )
    proc = subprocess.Popen([sys.executable, "-c", caller], stdout=subprocess.PIPE)
    reaper = int(proc.stdout.readline())
    assert _wait_for(lambda: _members(reaper) == 3), "reaper, command and grandchild"
    proc.kill()
    proc.wait()
    assert _wait_for(lambda: _members(reaper) == 0), "processes outlived the killed caller"


def test_one_sigterm_stops_the_group_and_exit_codes_pass_through() -> None:
    cmd = [sys.executable, "-m", "tutor.reaper", "--", sys.executable, "-c", FAMILY]
    proc = subprocess.Popen(cmd, start_new_session=True)
    assert _wait_for(lambda: _members(proc.pid) == 3)
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert _wait_for(lambda: _members(proc.pid) == 0)
    ok = [sys.executable, "-m", "tutor.reaper", "--", sys.executable, "-c", "raise SystemExit(3)"]
    assert subprocess.run(ok).returncode == 3
    missing = subprocess.run([sys.executable, "-m", "tutor.reaper", "--", "/no/such/cmd"])
    assert missing.returncode == 127
