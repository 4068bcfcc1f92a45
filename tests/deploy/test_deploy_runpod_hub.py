"""`.runpod/hub.json` and `.runpod/tests.json`: the RunPod Hub listing of the serving image.

Every variable the listing offers is one the image reads (the engine's and the gateway's own,
worker-vllm's aliases, the worker's MAX_CONCURRENCY, HF_TOKEN) or a `vllm serve` flag the one rule
maps (server/vllm_flags.py); each input has a known type, a default of that type and options
that include the default; presets set only offered variables; the test jobs are ones the handler
takes (an OpenAI route, or messages with sampling_params).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from server.chat_request import normalize_chat_request
from server.engine import EngineSpec
from server.serverless import parse_job_input
from server.settings import Settings
from server.vllm_flags import ALIASES, serve_flags

REPO = Path(__file__).resolve().parents[2]
TYPES = {"string": str, "number": (int, float), "boolean": bool, "huggingface": str}


def read_by_the_image(name: str) -> bool:
    own = {f.name.upper() for f in (*dataclasses.fields(EngineSpec), *dataclasses.fields(Settings))}
    flag = "--" + name.lower().replace("_", "-")
    return name in own | set(ALIASES) | {"MAX_CONCURRENCY", "HF_TOKEN", "MODEL_REVISION"} or (
        flag in serve_flags()
    )


def test_hub_listing_offers_only_variables_the_image_reads():
    hub = json.loads((REPO / ".runpod" / "hub.json").read_text())
    assert hub["type"] == "serverless" and hub["config"]["runsOn"] == "GPU"
    keys = [e["key"] for e in hub["config"]["env"]]
    assert len(keys) == len(set(keys))
    for entry in hub["config"]["env"]:
        key, spec = entry["key"], entry["input"]
        assert read_by_the_image(key), key
        if "default" in spec:
            assert isinstance(spec["default"], TYPES[spec["type"]]), key
        if "options" in spec:
            assert spec["default"] in [o["value"] for o in spec["options"]], key
    assert next(e for e in hub["config"]["env"] if e["key"] == "MODEL_NAME")["input"]["required"]
    for preset in hub["config"]["presets"]:
        assert set(preset["defaults"]) <= set(keys), preset["name"]


def test_hub_tests_are_jobs_the_handler_takes():
    tests = json.loads((REPO / ".runpod" / "tests.json").read_text())
    for job in tests["tests"]:  # the handler's own readers, with the gateway's default rules
        route, body, _ = parse_job_input(job["input"])
        assert route == "/v1/chat/completions", job["name"]
        normalize_chat_request(body, Settings())
    assert {e["key"] for e in tests["config"]["env"]} <= {"MODEL_NAME", "MAX_MODEL_LEN"}
