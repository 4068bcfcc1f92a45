"""Run a command so that it, and every process it starts, dies with the process that asked.

    subprocess.Popen([sys.executable, "-m", "tutor.reaper", "--", *cmd], start_new_session=True)

A killed parent cannot clean up, and engines such as vLLM start processes of their own that
outlive their direct parent. This wrapper leads a process group of its own (the caller starts it
with `start_new_session=True`), asks Linux for SIGTERM when its parent dies (`PR_SET_PDEATHSIG`),
and on SIGTERM, SIGINT or SIGHUP kills the whole group with SIGKILL, itself included. So the
caller stops everything with one `os.killpg(wrapper.pid, SIGTERM)`, and a caller killed with
SIGKILL takes everything with it. Elsewhere than Linux it only runs the command. Its exit status
is the command's (128 + N when the command died of signal N).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

_PR_SET_PDEATHSIG = 1


def _reap(signum: int, frame: object) -> None:
    os.killpg(os.getpgid(0), signal.SIGKILL)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: python -m tutor.reaper -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    parent = os.getppid()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _reap)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the request took effect
            return 1
    try:
        child = subprocess.Popen(argv)
    except OSError as e:
        print(f"tutor.reaper: cannot run {argv[0]}: {e.strerror}", file=sys.stderr)
        return 127
    rc = child.wait()
    return 128 - rc if rc < 0 else rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
