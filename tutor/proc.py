"""Starting and stopping servers: a free port, wait until healthy, stop a process group, a uvicorn
server in a thread on a socket bound beforehand, and "spawn, wait, always stop" as one block.

Standard library only (uvicorn is imported when a threaded server starts).

    with spawned([sys.executable, "-m", "http.server", str(port)], f"http://127.0.0.1:{port}/"):
        ...   # the process answers 200 here; it is stopped (TERM, grace, KILL) however the block ends
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


class StartError(RuntimeError):
    """A process did not become healthy: it exited (`returncode` set) or the time ran out."""

    def __init__(self, message: str, returncode: int | None = None, tail: str = ""):
        super().__init__(message)
        self.returncode, self.tail = returncode, tail


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` now (another process may take it before it is bound again)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A socket bound to host:port (0 = any free port), for a server to serve on: no race."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # health checks stay local


def answers_ok(url: str, timeout_s: float = 2.0) -> bool:
    """Whether GET `url` answers 200 now (a refused connection, a 503 or a timeout: no)."""
    try:
        with _DIRECT.open(url, timeout=timeout_s) as resp:
            return resp.status == 200
    except (OSError, ValueError):  # URLError, HTTPError (a 503 while loading), timeouts
        return False


def wait_healthy(
    url: str,
    timeout_s: float,
    proc: subprocess.Popen | None = None,
    tail: Callable[[], str] = lambda: "",
    poll_s: float = 0.5,
    name: str = "the process",
) -> None:
    """Block until GET `url` answers 200, sleeping `poll_s` between tries whatever the answer.

    Raises StartError with the exit code and `tail()` (the log's last lines) when `proc` exits
    first, and with `tail()` when `timeout_s` passes (the process is left running: stop it).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if proc is not None and proc.poll() is not None:
            text = tail()
            raise StartError(
                f"{name} exited with code {proc.returncode} during start-up; last log lines:\n"
                f"{text}",
                proc.returncode,
                text,
            )
        if answers_ok(url):
            return
        if time.monotonic() >= deadline:
            text = tail()
            raise StartError(
                f"{name} was not healthy at {url} within {timeout_s:g} s; last log lines:\n{text}",
                None,
                text,
            )
        time.sleep(poll_s)


def stop_process(proc: subprocess.Popen, grace_s: float = 10.0, group: bool = False) -> int | None:
    """SIGTERM, up to `grace_s` seconds to exit, then SIGKILL; returns the exit code.

    `group`: signal the process's whole group (a child started with start_new_session=True, so
    worker processes it started go too).
    """

    def send(sig: int) -> None:
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig) if group else proc.send_signal(sig)
        except ProcessLookupError:
            pass

    send(signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        proc.wait(timeout=10)
    return proc.returncode


def file_tail(log: IO[str] | Path, chars: int = 4000) -> str:
    """The last `chars` characters of a log file (a path, or a file opened w+)."""
    if isinstance(log, Path):
        return log.read_text(errors="replace")[-chars:] if log.exists() else ""
    log.flush()
    log.seek(0)
    return log.read()[-chars:]


@contextmanager
def spawned(
    cmd: Sequence[str],
    health_url: str,
    timeout_s: float = 60.0,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    cwd: str | Path | None = None,
    grace_s: float = 10.0,
    poll_s: float = 0.1,
    name: str | None = None,
) -> Iterator[subprocess.Popen]:
    """Run `cmd` in its own process group until the block ends; wait until `health_url` answers
    200 first. Its output goes to `log` (or a temporary file: a pipe nobody reads could fill up
    and stall it); StartError carries the last of it. The group is stopped however the block ends
    (SIGTERM, `grace_s`, SIGKILL); a process the block already stopped is left as it is.
    """
    with open(log, "w+") if log else tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(
            list(cmd), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            text=True, env=None if env is None else dict(env), cwd=cwd, start_new_session=True,
        )  # fmt: skip
        try:
            wait_healthy(
                health_url, timeout_s, proc, lambda: file_tail(out), poll_s, name or str(cmd[0])
            )
            yield proc
        finally:
            stop_process(proc, grace_s, group=True)


class ThreadedUvicorn:
    """An ASGI app served by uvicorn in a daemon thread on a socket bound before it starts (so
    the port is known and nobody else can take it).

    with ThreadedUvicorn(app) as srv: ... srv.url ...   # http://127.0.0.1:PORT
    """

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        sock: socket.socket | None = None,
        lifespan: str = "auto",
        **config: Any,
    ):
        self.app, self.lifespan, self.config = app, lifespan, config
        self.sock = sock or bind_socket(host, port)
        self.port = self.sock.getsockname()[1]
        bound = self.sock.getsockname()[0]
        self.url = f"http://{f'[{bound}]' if ':' in bound else bound}:{self.port}"
        self.server: Any = None
        self.thread: threading.Thread | None = None

    def start(self, timeout_s: float = 30.0) -> ThreadedUvicorn:
        import uvicorn

        options = {"log_level": "warning", "access_log": False, **self.config}
        self.server = uvicorn.Server(uvicorn.Config(self.app, lifespan=self.lifespan, **options))
        self.thread = threading.Thread(
            target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])), daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                self.stop()
                raise StartError(f"the server at {self.url} did not start within {timeout_s:g} s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=10)
        self.sock.close()

    def __enter__(self) -> ThreadedUvicorn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
