"""The generator against the project's own server: the real gateway in front of `transformers
serve` running the tiny random-weight model. Its output is nonsense, so every request exercises
the reject path: the run stops at --max-requests with no conversation accepted, every returned
item or reply is accounted for with a reason, and the manifest's counts add up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datagen.generate import GenerateArgs, run_generation

pytestmark = pytest.mark.slow


def test_tiny_model_output_is_rejected_and_counted(tiny_base: Path, tmp_path: Path) -> None:
    from server.launch import serve_in_background

    with serve_in_background(tiny_base, engine="transformers", start_timeout_s=240) as handle:
        args = GenerateArgs(
            out=tmp_path / "tiny.jsonl",
            n=4,
            per_request=2,
            exchanges=(2, 2),
            model="socratic-tutor",
            base_url=handle.url + "/v1",
            api_key="unused",
            concurrency=2,
            max_requests=3,
            max_tokens=48,
            retry_base_s=0.1,
            timeout_s=120,
            progress=False,
        )
        m = run_generation(args)
    assert m.stop_reason == "max_requests" and m.conversations == 0
    c = m.counts
    assert c["requests"] + c["failed_requests"] == 3 and c["accepted"] == 0
    assert c["returned"] == c["parsed"] + c["unparsed"] and c["unparsed"] >= 1
    assert c["parsed"] == sum(c["rejected"].values()) + sum(c["duplicates"].values())
    assert m.data["sessions"][-1]["usage"]["generate"]["completion_tokens"] > 0
    assert m.data["cost_usd"] is None  # no price for a local model: tokens only
    rejected = (tmp_path / "tiny.rejected.jsonl").read_text().splitlines()
    assert len(rejected) >= c["unparsed"] and all(json.loads(x)["reason"] for x in rejected)
    assert (tmp_path / "tiny.jsonl").read_bytes() == b""
