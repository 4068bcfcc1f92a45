"""`handler.py` as RunPod runs it: runpod-python's real worker loop (JobScaler), taking jobs from a
fake RunPod job API on 127.0.0.1 (job-take, job-stop, stream and job-done webhooks) instead of the
SDK's local API server. Covers what only that loop does: a yielded error reaches RunPod as the
job's `error` string, which is JSON that parses (runpod-python sends `str()` of it); an error
after streamed chunks fails the job with the error alone (the aggregate is dropped, the chunks
were streamed); the aggregated output of a streamed job; and SIGTERM, whose handler the JobScaler
replaces, ending the worker with exit 0 through `handler.start`'s `finally`, which stops the
engine the handler started (a real `transformers serve` with the tiny model). Also the start
command `runpodctl project deploy` (v2.7.2, cmd/project/functions.go) puts in the endpoint's
template, built from runpod.toml and run from `/` against a network-volume layout whose project
folder is a copy-free link to this checkout, and the dev pod's environment read back from
runpod/base's /etc/rp_environment.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import tomllib

import httpx
import pytest
from fastapi import FastAPI, Request, Response

import handler
from tutor.paths import REPO_ROOT
from tutor.proc import free_port

USER = [{"role": "user", "content": "How do plants make food?"}]
POLL_S = 0.3  # how long the fake job-take and job-stop hold an empty poll (RunPod long-polls)


class FakeRunPod:
    """The job API a RunPod worker talks to: queued jobs out, streamed and final results in."""

    def __init__(self, serve_app) -> None:
        self.pending: list[dict] = []
        self.streamed: dict[str, list] = {}
        self.done: dict[str, dict] = {}
        app = FastAPI()

        async def take(request: Request) -> Response:
            if self.pending:
                jobs = [self.pending.pop(0)]
                batch = "job-take-batch" in request.url.path
                return Response(
                    json.dumps(jobs if batch else jobs[0]), media_type="application/json"
                )
            await asyncio.sleep(POLL_S)
            return Response(status_code=204)

        async def stop() -> Response:
            await asyncio.sleep(POLL_S)
            return Response(status_code=204)

        async def result(kind: str, job_id: str, request: Request) -> dict:
            body = json.loads(await request.body())
            if kind == "job-stream":
                self.streamed.setdefault(job_id, []).append(body)
            else:
                self.done[job_id] = body
            return {}

        app.add_api_route("/job-take/{worker}", take)
        app.add_api_route("/job-take-batch/{worker}", take)
        app.add_api_route("/job-stop/{worker}", stop)
        app.add_api_route("/{kind}/{worker}/{job_id}", result, methods=["POST"])
        self.server = serve_app(app)

    def env(self) -> dict[str, str]:
        url = self.server.url
        return {
            "RUNPOD_WEBHOOK_GET_JOB": f"{url}/job-take/$ID?gpu=test",
            "RUNPOD_WEBHOOK_POST_OUTPUT": f"{url}/job-done/$RUNPOD_POD_ID/$ID?gpu=test",
            "RUNPOD_WEBHOOK_POST_STREAM": f"{url}/job-stream/$RUNPOD_POD_ID/$ID?gpu=test",
            "RUNPOD_POD_ID": "test-worker",
            # The SDK's start-up checks probe the GPU and an outside host; neither exists here.
            "RUNPOD_SKIP_AUTO_SYSTEM_CHECKS": "true",
            "RUNPOD_SKIP_GPU_CHECK": "true",
        }

    def run(self, job_id: str, job_input: dict, proc: subprocess.Popen, timeout_s=60) -> dict:
        self.pending.append({"id": job_id, "input": job_input})
        deadline = time.monotonic() + timeout_s
        while job_id not in self.done:
            assert proc.poll() is None, "the worker exited"
            assert time.monotonic() < deadline, f"job {job_id} not done in {timeout_s} s"
            time.sleep(0.05)
        return self.done[job_id]


def start_worker(fake: FakeRunPod, log_path, argv=None, cwd=REPO_ROOT, **env) -> subprocess.Popen:
    outer = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
    full = {**outer, **fake.env(), "MAX_CONCURRENCY": "4", **env}
    with open(log_path, "w") as log:
        return subprocess.Popen(
            argv or [sys.executable, "handler.py"], cwd=cwd, env=full, stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip


def stop_worker(proc: subprocess.Popen, log_path) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"worker ignored SIGTERM: {log_path.read_text()[-2000:]}")


@pytest.fixture
def fake_runpod(serve_app):
    return FakeRunPod(serve_app)


def test_worker_loop_errors_are_json_strings(fake_runpod, fake_engine, tmp_path):
    log = tmp_path / "worker.log"
    proc = start_worker(fake_runpod, log, ENGINE_URL=fake_engine.url)
    try:
        bad = fake_runpod.run("bad-1", {"messages": "hi"}, proc)
        assert set(bad) == {"error"} and isinstance(bad["error"], str)
        error = json.loads(bad["error"])
        assert error["status"] == 400 and error["code"] == "invalid_messages"

        died = fake_runpod.run("die-1", {"messages": [{"role": "user", "content": "mode:die"}],
                                          "stream": True}, proc)  # fmt: skip
        assert set(died) == {"error"} and json.loads(died["error"])["status"] >= 500
        chunks = [s["output"] for s in fake_runpod.streamed["die-1"]]
        assert "".join(c["choices"][0]["tokens"][0] for c in chunks) == "What "

        ok = fake_runpod.run("ok-1", {"messages": USER, "stream": True}, proc)
        text = "".join(o["choices"][0]["tokens"][0] for o in ok["output"])
        assert text == "What do you think?" and len(fake_runpod.streamed["ok-1"]) >= 3
    finally:
        code = stop_worker(proc, log)
    assert code == 0, log.read_text()[-2000:]


def test_sigterm_ends_the_worker_loop_and_stops_the_engine(fake_runpod, tiny_base, tmp_path):
    log, engine_port = tmp_path / "worker.log", free_port()
    proc = start_worker(fake_runpod, log, MODEL=str(tiny_base), ENGINE="transformers",
                        ENGINE_PORT=str(engine_port), ENGINE_START_TIMEOUT_S="240")  # fmt: skip
    try:
        done = fake_runpod.run("gen-1", {"messages": USER, "sampling_params": {"max_tokens": 4}},
                               proc, timeout_s=300)  # fmt: skip
        assert done["output"][0]["usage"]["output"] <= 4
        assert httpx.get(f"http://127.0.0.1:{engine_port}/health", timeout=5).status_code == 200
    finally:
        code = stop_worker(proc, log)
    assert code == 0, log.read_text()[-2000:]
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{engine_port}/health", timeout=2)


def deploy_start_command(volume: str) -> tuple[str, dict[str, str]]:
    """The endpoint template's start command and env that runpodctl v2.7.2's deployProject
    builds from runpod.toml, with `volume` for the network volume's mount path."""
    cfg = tomllib.loads((REPO_ROOT / "runpod.toml").read_text())
    project, runtime = cfg["project"], cfg["runtime"]
    prod = f"{volume}/{project['uuid']}/prod"
    handler_path = f"{prod}/{cfg['name']}/{runtime['handler_path']}"
    command = f'bash -c ". {prod}/venv/bin/activate && python -u {handler_path}"'
    return command, {**project["env_vars"], "RUNPOD_PROJECT_ID": project["uuid"]}


def test_deploy_start_command_runs_the_worker(fake_runpod, fake_engine, tmp_path):
    cfg = tomllib.loads((REPO_ROOT / "runpod.toml").read_text())
    prod = tmp_path / cfg["project"]["uuid"] / "prod"
    (prod / "venv" / "bin").mkdir(parents=True)
    # The venv runpodctl builds there holds the requirements; this one puts ours first on PATH.
    (prod / "venv" / "bin" / "activate").write_text(
        f'export PATH="{os.path.dirname(sys.executable)}:$PATH"\n'
    )
    (prod / cfg["name"]).symlink_to(REPO_ROOT)  # runpodctl rsyncs the checkout here
    command, env = deploy_start_command(str(tmp_path))
    env |= {"ENGINE_URL": fake_engine.url, "PYTHONPATH": ""}  # no engine start; no path help
    log = tmp_path / "worker.log"
    proc = start_worker(fake_runpod, log, shlex.split(command), cwd="/", **env)
    try:
        done = fake_runpod.run("deploy-1", {"openai_route": "/v1/models"}, proc)
        assert done["output"][0]["data"][0]["id"] == env["SERVED_MODEL_NAME"]
    finally:
        code = stop_worker(proc, log)
    assert code == 0, log.read_text()[-2000:]


def test_dev_session_reads_the_pods_saved_environment(tmp_path):
    saved = tmp_path / "rp_environment"  # what runpod/base's start.sh writes (export_env_vars)
    saved.write_text(
        'export MODEL="you/socratic-tutor-7b"\nexport ENGINE_PORT="8011"\n'
        'export GREETING="say "hi" twice"\nnot an export line\n'
    )
    assert handler.pod_environment(saved) == {
        "MODEL": "you/socratic-tutor-7b", "ENGINE_PORT": "8011", "GREETING": 'say "hi" twice',
    }  # fmt: skip
    assert handler.pod_environment(tmp_path / "absent") == {}
