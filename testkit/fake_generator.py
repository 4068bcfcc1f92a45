"""A scripted fake OpenAI-compatible generator endpoint, for tests and benchmarks (no model).

It answers generation prompts with the number of conversations and exchanges the prompt asks for,
each unique (random pseudo-words, so no two are near-duplicates) and Socratic (tutor turns before
the last end with a question), and answers critic prompts with scores, revising every
`revise_every`-th conversation. A script makes chosen generation requests misbehave, in order:

    good         a clean JSON array
    fenced       prose, then the array in a ```json fence, with a trailing comma
    malformed    the second conversation is broken JSON
    truncated    the last conversation is cut off (finish_reason "length")
    wrong_roles  one conversation uses the role "bot"
    no_question  one conversation's first tutor turn asks nothing
    duplicate    one conversation repeats an earlier one word for word
    garbage      no JSON at all
    429          HTTP 429 with Retry-After: 1
    500          HTTP 500
    slow         answers after `slow_s` seconds (a client timeout below that retries)

    python -m testkit.fake_generator --port 8901 --latency-ms 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from testkit.asgi import (
    ThreadedServer,
    chat_completion,
    read_body,
    send_json,
    serve_until_interrupted,
)

_SYLLABLES = "ka lo mi nu pe ri sa to vu ze ba do fi gu he ja ke li mo na po qu re si te".split()
_CRITIC_MARKER = "SOCRATIC PRINCIPLES:\n1. probing_questions"


@dataclass
class FakeState:
    """The script and what the fake saw; safe to read from the test thread."""

    script: list[str] = field(default_factory=list)
    latency_s: float = 0.0
    slow_s: float = 1.5
    revise_every: int = 0  # 0 = the critic keeps everything
    reject_response_format: bool = False  # answer 400 to a JSON-schema response_format
    api_key: str | None = None  # when set, other keys get 401
    model: str | None = None  # when set, other models get 404
    seen: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    counter: int = 0
    last: list[dict] = field(default_factory=list)

    def next_action(self) -> str:
        with self.lock:
            action = self.script.pop(0) if self.script else "good"
            self.seen[action] += 1
            return action

    def fresh_id(self) -> int:
        with self.lock:
            self.counter += 1
            return self.counter


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join("".join(rng.choices(_SYLLABLES, k=rng.randint(2, 3))) for _ in range(n))


def conversation(uid: int, exchanges: int, *, question_first: bool = True) -> list[dict]:
    """A unique, valid, Socratic conversation (pseudo-words) without a system message."""
    rng = random.Random(uid)
    msgs = []
    for i in range(exchanges):
        msgs.append({"role": "user", "content": f"Why does {_sentence(rng, 7)} happen?"})
        if i == exchanges - 1:
            tutor = f"Yes, exactly: {_sentence(rng, 6)}."
        elif i == 0 and not question_first:
            tutor = f"Think about {_sentence(rng, 8)}."
        else:
            tutor = f"Good start. What would {_sentence(rng, 8)} tell you?"
        msgs.append({"role": "assistant", "content": tutor})
    return msgs


def _ints(prompt: str, pattern: str, default: int) -> int:
    m = re.search(pattern, prompt)
    return int(m.group(1)) if m else default


def generation_reply(state: FakeState, prompt: str, action: str) -> tuple[str, str]:
    """(content, finish_reason) for a generation prompt under `action`."""
    k = _ints(prompt, r"Generate exactly (\d+) separate", 3)
    ex = _ints(prompt, r"exactly (\d+) user/assistant exchanges", 2)
    convs = [{"conversations": conversation(state.fresh_id(), ex)} for _ in range(k)]
    if action == "wrong_roles":
        convs[0]["conversations"][1]["role"] = "bot"
    if action == "no_question" and ex > 1:
        convs[0] = {"conversations": conversation(state.fresh_id(), ex, question_first=False)}
    if action == "duplicate" and state.last:
        convs[0] = state.last[0]
    if action == "good":
        state.last = convs
    text = json.dumps(convs)
    if action == "fenced":
        return f"Here you go!\n```json\n{text[:-1]},]\n```\nHope this helps.", "stop"
    if action == "malformed" and k > 1:
        parts = [json.dumps(c) for c in convs]
        parts[1] = parts[1].replace('"role": "user"', '"role" "user"', 1)
        return "[" + ", ".join(parts) + "]", "stop"
    if action == "truncated":
        return text[: len(text) - len(json.dumps(convs[-1])) // 2], "length"
    if action == "garbage":
        return "I am sorry, I cannot produce that.", "stop"
    return text, "stop"


def critic_reply(state: FakeState, prompt: str) -> str:
    m = re.search(r"## CONVERSATION:\n(.*?)\n## YOUR REPLY", prompt, re.S)
    exchanges = (
        max(1, sum(1 for x in json.loads(m.group(1)) if x["role"] == "assistant")) if m else 2
    )
    uid = state.fresh_id()
    revise = state.revise_every > 0 and uid % state.revise_every == 0
    scores = {p: (2 if revise and p == "guide_discovery" else 4) for p in _PRINCIPLES}
    return json.dumps(
        {
            "scores": scores,
            "final_answer": "",
            "problems": "the tutor leads too much" if revise else "",
            "verdict": "revise" if revise else "keep",
            "revision": conversation(10**9 + uid, exchanges) if revise else [],
        }
    )


_PRINCIPLES = (
    "probing_questions challenge_assumptions guide_discovery break_down_problems "
    "critical_thinking analogies_examples acknowledge_reasoning".split()
)


def make_app(state: FakeState):
    """The ASGI app: POST /v1/chat/completions and GET /v1/models."""

    async def app(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"].endswith("/models"):
            await send_json(send, 200, {"object": "list", "data": [{"id": state.model or "fake"}]})
            return
        body = json.loads(await read_body(receive) or b"{}")
        headers = dict(scope["headers"])
        if state.api_key and headers.get(b"authorization") != f"Bearer {state.api_key}".encode():
            await send_json(send, 401, {"error": {"message": "Incorrect API key provided"}})
            return
        if state.model and body.get("model") != state.model:
            await send_json(
                send, 404, {"error": {"message": f"model {body.get('model')} not found"}}
            )
            return
        rf = body.get("response_format") or {}
        if state.reject_response_format and rf.get("type") == "json_schema":
            msg = "response_format json_schema is not supported"
            await send_json(send, 400, {"error": {"message": msg, "param": "response_format"}})
            return
        prompt = body["messages"][-1]["content"]
        await asyncio.sleep(state.latency_s)
        if _CRITIC_MARKER in prompt:
            content, finish = critic_reply(state, prompt), "stop"
        else:
            action = state.next_action()
            if action in ("429", "500"):
                extra = [(b"retry-after", b"1")] if action == "429" else []
                await send_json(send, int(action), {"error": {"message": f"fake {action}"}}, extra)
                return
            if action == "slow":
                await asyncio.sleep(state.slow_s)
            content, finish = generation_reply(state, prompt, action)
        await send_json(
            send, 200, completion_body(content, finish, body.get("model", "fake"), prompt)
        )

    return app


def completion_body(content: str, finish: str, model: str, prompt: str) -> dict:
    usage = {
        "prompt_tokens": len(prompt) // 4,
        "completion_tokens": len(content) // 4,
        "total_tokens": (len(prompt) + len(content)) // 4,
    }
    return chat_completion(content, model, finish, usage=usage, id_="chatcmpl-fake")


class FakeServer(ThreadedServer):
    """Serve a `FakeState` (or any ASGI `app`) on 127.0.0.1 in a background thread.

    with FakeServer(FakeState(script=["429", "malformed"])) as srv: ... srv.url ...
    """

    def __init__(self, state: Any, port: int = 0, app: Any = None):
        super().__init__(app or make_app(state), port, state=state)


def main() -> None:
    p = argparse.ArgumentParser(
        description="Fake OpenAI-compatible generator endpoint (scripted; for tests and benchmarks)."
    )
    p.add_argument("--port", type=int, default=8901, help="port on 127.0.0.1 (default: 8901)")
    p.add_argument(
        "--latency-ms", type=float, default=0.0, help="delay per reply in ms (default: 0)"
    )
    p.add_argument("--script", default="", help="comma-separated actions for the first requests")
    p.add_argument(
        "--revise-every", type=int, default=0, help="critic revises every Nth (0 = never)"
    )
    args = p.parse_args()
    state = FakeState(
        script=[a for a in args.script.split(",") if a],
        latency_s=args.latency_ms / 1000,
        revise_every=args.revise_every,
    )
    serve_until_interrupted(FakeServer(state, args.port), "fake generator endpoint at {url}")


if __name__ == "__main__":
    main()
