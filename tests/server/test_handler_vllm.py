"""`handler.py` with ENGINE=vllm through the runpod SDK's local API server: the worker starts the
real vLLM engine (CPU build) on the merged SmolLM2 export and answers both job shapes, plain and
streamed, and /v1/models; and the merged export's greedy reply equals the greedy reply of the same
adapter served by vLLM's multi-LoRA on the base model (the session's `socratic serve`).
"""

from __future__ import annotations

import json
import os
import sys

import httpx
import openai
import pytest

from tutor.paths import REPO_ROOT
from tutor.proc import free_port, spawned

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

PROMPTS = ["Why is 1 not a prime number?", "I think 0.5 is smaller than 0.25 because 5 < 25."]
GREEDY = {"temperature": 0, "max_tokens": 48}


@pytest.fixture(scope="module")
def worker(vllm_install, smol_run, tmp_path_factory):
    api_port = free_port()
    log = tmp_path_factory.mktemp("handler-vllm") / "worker.log"
    env = {**os.environ, "MODEL": str(smol_run.export), "ENGINE": "vllm",
           "ENGINE_PORT": str(free_port()), "MAX_MODEL_LEN": "2048",
           "ENGINE_START_TIMEOUT_S": "1200"}  # fmt: skip
    url = f"http://127.0.0.1:{api_port}"
    cmd = [sys.executable, "handler.py", "--rp_serve_api", "--rp_api_port", str(api_port)]
    with spawned(cmd, url + "/docs", 1300, env=env, log=log, cwd=REPO_ROOT, grace_s=60, poll_s=1.0):
        yield url


def runsync(url: str, job_input: dict) -> list:
    resp = httpx.post(url + "/runsync", json={"input": job_input}, timeout=300)
    assert resp.status_code == 200, resp.text
    result = resp.json()
    assert result["status"] == "COMPLETED", result
    return result["output"]


def chat_job(content: str, **fields) -> dict:
    body = {"messages": [{"role": "user", "content": content}], **GREEDY, **fields}
    return {"openai_route": "/v1/chat/completions", "openai_input": body}


def test_models_and_both_job_shapes(worker):
    [models] = runsync(worker, {"openai_route": "/v1/models"})
    assert [m["id"] for m in models["data"]] == ["socratic-tutor"]
    [completion] = runsync(worker, chat_job(PROMPTS[0]))
    assert completion["model"] == "socratic-tutor"
    assert completion["choices"][0]["message"]["content"].strip()
    simple = {"messages": [{"role": "user", "content": PROMPTS[0]}], "sampling_params": GREEDY}
    [output] = runsync(worker, simple)
    assert output["choices"][0]["tokens"][0] == completion["choices"][0]["message"]["content"]
    assert 0 < output["usage"]["output"] <= 48


def test_streamed_job_equals_the_plain_one(worker):
    [completion] = runsync(worker, chat_job(PROMPTS[0]))
    outputs = runsync(worker, chat_job(PROMPTS[0], stream=True))
    assert outputs[-1] == "data: [DONE]\n\n"
    chunks = [json.loads(o[6:]) for o in outputs[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == completion["choices"][0]["message"]["content"]


def test_merged_export_replies_as_the_adapter_on_the_base(worker, vllm_serve):
    """Greedy: the merged weights (this worker) and base + LoRA (vLLM's multi-LoRA) agree."""
    lora = openai.OpenAI(base_url=vllm_serve.url + "/v1", api_key=vllm_serve.key, max_retries=0)
    for prompt in PROMPTS:
        [merged] = runsync(worker, chat_job(prompt))
        adapter = lora.chat.completions.create(
            model="socratic-tutor", messages=[{"role": "user", "content": prompt}], **GREEDY
        )
        assert merged["usage"]["prompt_tokens"] == adapter.usage.prompt_tokens  # same prompt
        assert merged["choices"][0]["message"]["content"] == adapter.choices[0].message.content
