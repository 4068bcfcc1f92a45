"""`handler.py` through the runpod SDK's local API server (`--rp_serve_api`), which runs generator
handlers (unlike `--test_input`), in front of a real `transformers serve` that the handler starts
itself: both input shapes, /runsync and /run + /stream/{id}, streaming and not, /v1/models, bad
input answered with {"error": "<JSON text>"} while the worker keeps serving, and SIGTERM (which
uvicorn re-raises after its own shutdown) ending the worker with exit 0 and stopping the engine.
"""

from __future__ import annotations

import json
import os
import signal
import sys

import httpx
import pytest

from tutor.paths import REPO_ROOT
from tutor.proc import free_port, spawned

USER = [{"role": "user", "content": "How do plants make food?"}]


@pytest.fixture(scope="module")
def worker(tiny_base, tmp_path_factory):
    api_port, engine_port = free_port(), free_port()
    log = tmp_path_factory.mktemp("handler") / "worker.log"
    env = {**os.environ, "MODEL": str(tiny_base), "ENGINE": "transformers", "ENGINE_PORT": str(engine_port),
           "MAX_CONCURRENCY": "4", "ENGINE_START_TIMEOUT_S": "240"}  # fmt: skip
    url = f"http://127.0.0.1:{api_port}"
    cmd = [sys.executable, "handler.py", "--rp_serve_api", "--rp_api_port", str(api_port)]
    with spawned(cmd, url + "/docs", 300, env=env, log=log, cwd=REPO_ROOT, poll_s=0.5) as proc:
        yield url, proc, engine_port


def runsync(url: str, job_input: dict) -> dict:
    resp = httpx.post(url + "/runsync", json={"input": job_input}, timeout=120)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_simple_shape_runsync(worker):
    result = runsync(worker[0], {"messages": USER, "sampling_params": {"max_tokens": 6}})
    assert result["status"] == "COMPLETED"
    [output] = result["output"]
    assert isinstance(output["choices"][0]["tokens"][0], str) and output["choices"][0]["tokens"][0]
    assert output["usage"]["output"] <= 6 and output["usage"]["input"] > 0


def test_openai_shape_runsync(worker):
    job = {
        "openai_route": "/v1/chat/completions",
        "openai_input": {"messages": USER, "max_tokens": 6},
    }
    [completion] = runsync(worker[0], job)["output"]
    assert completion["object"] == "chat.completion" and completion["model"] == "socratic-tutor"
    assert completion["choices"][0]["message"]["content"]
    [models] = runsync(worker[0], {"openai_route": "/v1/models"})["output"]
    assert models["data"][0]["id"] == "socratic-tutor"


def test_openai_shape_streams_sse_text(worker):
    job = {
        "openai_route": "/v1/chat/completions",
        "openai_input": {"messages": USER, "max_tokens": 6, "stream": True},
    }
    outputs = runsync(worker[0], job)["output"]
    assert all(o.startswith("data: ") and o.endswith("\n\n") for o in outputs)
    assert outputs[-1] == "data: [DONE]\n\n"
    chunks = [json.loads(o[6:]) for o in outputs[:-1]]
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert sum(bool(c["choices"][0]["delta"].get("content")) for c in chunks) >= 2


def test_simple_shape_run_and_stream(worker):
    job = {"messages": USER, "sampling_params": {"max_tokens": 6}, "stream": True}
    run = httpx.post(worker[0] + "/run", json={"input": job}, timeout=30).json()
    assert run["status"] == "IN_PROGRESS"
    streamed = httpx.post(f"{worker[0]}/stream/{run['id']}", timeout=120).json()
    assert streamed["status"] == "COMPLETED"
    outputs = [item["output"] for item in streamed["stream"]]
    assert len(outputs) >= 3  # one output per chunk
    text = "".join(o["choices"][0]["tokens"][0] for o in outputs)
    assert text.strip()
    assert outputs[-1]["choices"][0]["finish_reason"] in ("stop", "length")


@pytest.mark.parametrize(
    "job_input, status, code",
    [
        ({"messages": "hi"}, 400, "invalid_messages"),
        ({"messages": USER, "sampling_params": {"max_tokens": -5}}, 400, "invalid_max_tokens"),
        ({"openai_route": "/v1/embeddings", "openai_input": {}}, 404, "unknown_route"),
        ({"prompt": "hi"}, 400, "invalid_input"),
    ],
)
def test_bad_input_yields_error_and_worker_survives(worker, job_input, status, code):
    [output] = runsync(worker[0], job_input)["output"]
    error = json.loads(output["error"])  # JSON text: runpod-python passes on str() of an error
    assert error["status"] == status and error["code"] == code
    assert (
        runsync(worker[0], {"messages": USER, "sampling_params": {"max_tokens": 2}})["status"]
        == "COMPLETED"
    )


def test_sigterm_stops_worker_and_engine(worker):
    url, proc, engine_port = worker
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{engine_port}/health", timeout=2)
