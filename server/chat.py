"""`socratic chat`: an interactive terminal chat with the tutor through the gateway.

    socratic chat --url http://127.0.0.1:8000

Answers stream as they are generated; the whole conversation is sent each turn (multi-turn).
`/reset` starts a new conversation, `/quit` (or end of input) leaves.
"""

from __future__ import annotations

import sys
from typing import TextIO

HELP = "/reset starts a new conversation, /quit leaves."


def run_chat(
    url: str,
    api_key: str | None = None,
    model: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    stdin: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
) -> int:
    """The chat loop; returns the exit code (0 on /quit or end of input)."""
    import openai

    client = openai.OpenAI(
        base_url=url.rstrip("/") + "/v1", api_key=api_key or "none", max_retries=0, timeout=300.0
    )
    if model is None:
        try:
            model = client.models.list().data[0].id
        except (openai.APIError, IndexError) as e:
            print(f"socratic: error: cannot list models at {url}: {_reason(e)}", file=sys.stderr)
            return 1
    print(f"Chatting with {model} at {url}. {HELP}", file=out, flush=True)
    history: list[dict[str, str]] = []
    options = {
        k: v for k, v in (("max_tokens", max_tokens), ("temperature", temperature)) if v is not None
    }
    while True:
        print("you> ", end="", file=out, flush=True)
        line = stdin.readline()
        if not line:
            print(file=out)
            return 0
        text = line.strip()
        if not text:
            continue
        if text == "/quit":
            return 0
        if text == "/reset":
            history.clear()
            print("(new conversation)", file=out, flush=True)
            continue
        if text.startswith("/"):
            print(f"unknown command {text!r}. {HELP}", file=out, flush=True)
            continue
        history.append({"role": "user", "content": text})
        reply = stream_reply(client, model, history, options, out)
        if reply is None:
            history.pop()  # keep the history valid: the turn can be retried
        else:
            history.append({"role": "assistant", "content": reply})


def stream_reply(client, model: str, history: list[dict], options: dict, out: TextIO) -> str | None:
    """Print the tutor's answer as it streams; None when the request failed."""
    import openai

    print("tutor> ", end="", file=out, flush=True)
    parts: list[str] = []
    try:
        stream = client.chat.completions.create(
            model=model, messages=history, stream=True, **options
        )
        for chunk in stream:
            delta = chunk.choices[0].delta.content if chunk.choices else None
            if delta:
                parts.append(delta)
                print(delta, end="", file=out, flush=True)
    except openai.APIError as e:
        print(f"\n[error] {_reason(e)}", file=out, flush=True)
        return None
    print(file=out, flush=True)
    return "".join(parts)


def _reason(e: Exception) -> str:
    import openai

    if isinstance(e, openai.APIStatusError):
        return f"HTTP {e.status_code}: {e.message}"
    return str(e) or type(e).__name__
