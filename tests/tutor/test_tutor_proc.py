"""tutor.proc: free ports, waiting until healthy (exit code and log tail on failure, a pause on
every retry, a 503 included), stopping a process group (TERM, grace, KILL), a threaded uvicorn on
a socket bound beforehand, and `spawned` stopping its process however the block ends."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tutor.proc import StartError, ThreadedUvicorn, free_port, spawned, stop_process, wait_healthy

PY = sys.executable


def status_app(status: int, hits: list):
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        hits.append(time.monotonic())
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_threaded_uvicorn_serves_then_frees_its_port() -> None:
    hits: list = []
    with ThreadedUvicorn(status_app(200, hits)) as srv:
        wait_healthy(srv.url + "/health", 5)
        port = srv.port
    assert len(hits) == 1
    with socket.socket() as s, pytest.raises(OSError):
        s.connect(("127.0.0.1", port))


def test_wait_healthy_pauses_between_503s_and_times_out_with_the_tail() -> None:
    hits: list = []
    with ThreadedUvicorn(status_app(503, hits)) as srv:
        with pytest.raises(StartError) as e:
            wait_healthy(srv.url, 1.0, tail=lambda: "loading weights", poll_s=0.3, name="engine")
    assert 3 <= len(hits) <= 5  # about one try per 0.3 s, not a busy loop
    assert e.value.returncode is None and "not healthy" in str(e.value)
    assert str(e.value).endswith("loading weights")


def test_wait_healthy_reports_the_exit_code_and_log_tail(tmp_path) -> None:
    proc = subprocess.Popen([PY, "-c", "print('bad flag'); raise SystemExit(3)"], text=True,
                            stdout=subprocess.PIPE)  # fmt: skip
    proc.wait()
    with pytest.raises(StartError) as e:
        wait_healthy(f"http://127.0.0.1:{free_port()}", 30, proc, lambda: proc.stdout.read())
    assert e.value.returncode == 3 and e.value.tail == "bad flag\n"
    assert "exited with code 3 during start-up" in str(e.value)


def test_stop_process_group_kills_what_ignores_sigterm() -> None:
    # the child ignores SIGTERM and starts a grandchild in its group: both must end
    code = (
        "import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "print(p.pid, flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([PY, "-c", code], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    grandchild = int(proc.stdout.readline())
    started = time.monotonic()
    assert stop_process(proc, grace_s=0.5, group=True) == -signal.SIGKILL
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 5
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(grandchild)


def test_spawned_stops_the_server_when_the_block_fails(tmp_path) -> None:
    port = free_port()
    cmd = [PY, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    with pytest.raises(RuntimeError, match="inside"):
        with spawned(cmd, f"http://127.0.0.1:{port}/", 30, cwd=tmp_path) as proc:
            assert proc.poll() is None
            raise RuntimeError("inside")
    assert proc.poll() is not None


def test_spawned_stops_a_server_that_never_gets_healthy(tmp_path) -> None:
    log = tmp_path / "server.log"
    cmd = [PY, "-c", "import os, time; print('starting', os.getpid(), flush=True); time.sleep(60)"]
    started = time.monotonic()
    with pytest.raises(StartError, match="starting"):
        with spawned(cmd, f"http://127.0.0.1:{free_port()}/", 1.0, log=log):
            pass
    assert time.monotonic() - started < 10
    word, pid = log.read_text().split()
    assert word == "starting" and not alive(int(pid))
