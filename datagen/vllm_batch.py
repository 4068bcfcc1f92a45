"""`--batch vllm`: one round through vLLM's offline batch runner, on a local model dir or Hub id.

    $VLLM_PYTHON -m vllm.entrypoints.openai.run_batch -i round.requests.jsonl -o results \
        --model MODEL [CPU defaults] [--vllm-args ...]

vLLM is the one `socratic serve` finds (`tutor.vllm`: VLLM_CMD, VLLM_PYTHON, the checkout's
.venv-vllm, `vllm` on PATH; `vllm serve` becomes `vllm run-batch`), with the same CPU defaults. The runner writes its
output in place at the very end, so it writes to a temporary name that is renamed only after it
exits cleanly: a killed round leaves no result file that a rerun would trust, and the rerun runs
it again. The runner and its engine processes run under `tutor.reaper`, so they stop with this
process: on an exception their process group is terminated, and if this process is killed the
kernel tells the reaper, which kills the group.
Its log goes to `<round>.vllm.log`; the bar follows its "Running batch" progress.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datagen.client import FatalError
from datagen.job import GenerateArgs, log, round_bar
from tutor.proc import stop_process
from tutor.vllm import (
    VllmError,
    batch_launcher,
    check_vllm,
    describe,
    engine_flags,
    find_vllm,
    max_model_len,
    vllm_on_cpu,
)

_PROGRESS = re.compile(rb"Running batch:\s+\d+% Completed \| (\d+)/(\d+)")
_POLL_S = 1.0


class VllmBatches:
    base_url = None

    def __init__(self, args: GenerateArgs, folder: Path):
        self.args, self.folder = args, folder
        try:
            self.install = check_vllm(find_vllm(), context="--batch vllm")
            self.launcher = batch_launcher(self.install)
        except VllmError as e:
            raise FatalError(str(e)) from None
        self.cpu = vllm_on_cpu(self.install)
        self.user_flags = shlex.split(args.vllm_args)
        # vLLM refuses max_tokens above --max-model-len (a 400) but shortens any smaller value
        # to the context the prompt leaves: cap at the length when the flags name it.
        self.max_tokens_cap = max_model_len(engine_flags(self.user_flags, self.cpu)[0])

    def close(self) -> None:
        pass

    def cancel(self, batch_id: str) -> None:  # a local run has nothing to cancel
        pass

    def command(self, requests: Path, output: Path, model: str) -> tuple[list[str], dict]:
        flags, env = engine_flags(self.user_flags, self.cpu)
        cmd = [*self.launcher, "-i", str(requests)]
        return [*cmd, "-o", str(output), "--model", model, *flags], env

    def run(self, rnd: dict[str, Any], save: Callable[[], None]) -> None:
        name = rnd["name"]
        out = self.folder / f"{name}.results.jsonl"
        tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
        log_path = self.folder / f"{name}.vllm.log"
        cmd, env = self.command(self.folder / f"{name}.requests.jsonl", tmp, rnd["model"])
        log(f"round {rnd['n']}: vLLM batch runner on {rnd['model']} (log: {log_path})")
        t0 = time.monotonic()
        try:
            with log_path.open("wb") as sink:
                rc = self._supervise(cmd, env, sink, log_path, rnd)
            if rc != 0:
                raise FatalError(
                    f"vLLM's batch runner exited with {rc}: {_last_error(log_path)} "
                    f"(vLLM {describe(self.install)}; full log: {log_path})"
                )
            if not tmp.exists():
                raise FatalError(f"vLLM's batch runner wrote no output (log: {log_path})")
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
        rnd["engine"] = {"wall_s": round(time.monotonic() - t0, 1), "command": shlex.join(cmd)}
        rnd["results"], rnd["status"] = [out.name], "completed"
        save()

    def _supervise(
        self, cmd: list[str], env: dict, sink: Any, log_path: Path, rnd: dict[str, Any]
    ) -> int:
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tutor.reaper", "--", *cmd],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env},
                start_new_session=True,
            )
        except OSError as e:
            raise FatalError(f"cannot run {describe(self.install)}: {e.strerror}") from None
        bar = round_bar(self.args, rnd, total=len(rnd["ids"]), what=" (vLLM)")
        try:
            while proc.poll() is None:
                time.sleep(_POLL_S)
                if found := _PROGRESS.findall(_tail(log_path)):
                    bar.n = int(found[-1][0])
                    bar.refresh()
            return proc.returncode
        finally:
            bar.close()
            if proc.poll() is None:
                # SIGTERM makes the reaper kill the whole group; SIGKILL if even that does not
                stop_process(proc, grace_s=15, group=True)


def _tail(path: Path, size: int = 4096) -> bytes:
    with path.open("rb") as f:
        f.seek(max(0, os.fstat(f.fileno()).st_size - size))
        return f.read()


def _last_error(log_path: Path) -> str:
    """The most telling line of the runner's log (the last error, else the last line)."""
    lines = [x.strip() for x in log_path.read_text(errors="replace").splitlines() if x.strip()]
    for line in reversed(lines):
        if re.search(r"Error|error:|No module named", line):
            return line[-300:]
    return lines[-1][-300:] if lines else "no output"
