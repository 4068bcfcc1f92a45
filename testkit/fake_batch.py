"""A fake OpenAI Files + Batches API on 127.0.0.1, for tests (no model, no network).

It follows the documented shapes: `POST /v1/files` (multipart, purpose "batch"), `GET
/v1/files/{id}/content`, `POST /v1/batches` (input_file_id, endpoint, completion_window "24h",
metadata), `GET /v1/batches/{id}`, `GET /v1/batches` (newest first, `limit`/`after`), `POST
/v1/batches/{id}/cancel`. A batch moves one step per retrieve: validating (every line is checked:
custom_id unique, method POST, url = the batch's endpoint, one model) -> in_progress (answers
`lines_per_poll` lines per retrieve) -> finalizing -> completed; or failed (validation),
expired (`expire`: batch number -> lines answered first), cancelling -> cancelled (on request, or
`cancel`: batch number -> lines answered before someone else cancels it). Output lines are
`{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}`; failed requests
go to the error file (`response.status_code` >= 400 with an error body; `response: null` with
`error.code` "batch_expired" or "batch_cancelled" for lines never run).

Replies come from `testkit.fake_generator` (a generation script and a critic). `kill_at = (call,
nth)` SIGKILLs `kill_pid` when the nth such call arrives, after acting on it and before
answering: the client dies exactly where a crash would hurt most.

    python -m testkit.fake_batch --port 8902
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from testkit.asgi import read_body, send_json, serve_until_interrupted
from testkit.fake_generator import (
    _CRITIC_MARKER,
    FakeServer,
    FakeState,
    completion_body,
    critic_reply,
    generation_reply,
)

_LINE_ERRORS = {"400", "429", "500"}  # script actions that fail the line with that status


@dataclass
class BatchState:
    """What the fake holds and how it misbehaves; safe to read from the test thread."""

    replies: FakeState = field(default_factory=FakeState)
    lines_per_poll: int = 1000
    fail_every: int = 0  # every Nth line answered fails with a 500
    expire: dict[int, int] = field(default_factory=dict)  # batch number -> lines, then expired
    cancel: dict[int, int] = field(default_factory=dict)  # batch number -> lines, then cancelled
    fail_validation: bool = False  # every batch fails validation
    refuse: str | None = None  # a body parameter every line carrying it gets a 400 for
    kill_at: tuple[str, int] | None = None  # (call name, nth)
    kill_pid: int | None = None
    api_key: str | None = None
    files: dict[str, dict] = field(default_factory=dict)
    batches: dict[str, dict] = field(default_factory=dict)
    calls: Counter = field(default_factory=Counter)
    answered: Counter = field(default_factory=Counter)  # custom_id -> times answered with 200
    lock: threading.RLock = field(default_factory=threading.RLock)
    lines_done: int = 0

    def public(self, batch_id: str) -> dict:
        return {k: v for k, v in self.batches[batch_id].items() if not k.startswith("_")}


def _now() -> int:
    return int(time.time())


def _new_file(state: BatchState, data: bytes, filename: str, purpose: str) -> dict:
    fid = f"file-{len(state.files) + 1}"
    meta = {
        "id": fid,
        "object": "file",
        "bytes": len(data),
        "created_at": _now(),
        "filename": filename,
        "purpose": purpose,
        "status": "processed",
    }
    state.files[fid] = {"meta": meta, "data": data}
    return meta


def _validate(state: BatchState, batch: dict) -> list[dict]:
    """The input file's problems, as the API reports them (empty when valid)."""
    errors, seen, models = [], set(), set()
    data = state.files[batch["input_file_id"]]["data"].decode()
    for n, raw in enumerate(data.splitlines(), 1):
        try:
            line = json.loads(raw)
            cid, body = line["custom_id"], line["body"]
            problem = (
                "duplicate custom_id" if cid in seen
                else "method must be POST" if line.get("method") != "POST"
                else f"url must be {batch['endpoint']}" if line.get("url") != batch["endpoint"]
                else "body.model is required" if not body.get("model")
                else "body.messages is required" if not body.get("messages")
                else None
            )  # fmt: skip
            seen.add(cid)
            models.add(body.get("model"))
        except (ValueError, KeyError, TypeError, AttributeError):
            problem = "not a valid batch request line"
        if problem:
            errors.append({"code": "invalid_request", "line": n, "message": problem})
    if len(models) > 1:
        errors.append({"code": "mismatched_model", "message": "one model per batch file"})
    if state.fail_validation:
        errors.append({"code": "token_limit_exceeded", "message": "Enqueued token limit reached"})
    return errors


def _answer(state: BatchState, line: dict) -> dict:
    """One request's result line (success or a failed request)."""
    body, cid = line["body"], line["custom_id"]
    prompt = body["messages"][-1]["content"]
    state.lines_done += 1
    head = {"id": f"batch_req_{state.lines_done}", "custom_id": cid, "error": None}
    action = "good" if _CRITIC_MARKER in prompt else state.replies.next_action()
    if state.fail_every and state.lines_done % state.fail_every == 0:
        action = "500"
    if state.refuse and state.refuse in body:
        message = f"Unsupported parameter: '{state.refuse}' is not supported with this model."
        if state.refuse == "max_tokens":
            message += " Use 'max_completion_tokens' instead."
        error = {"message": message, "type": "invalid_request_error", "param": state.refuse}
        resp = {"status_code": 400, "request_id": f"req_{state.lines_done}"}
        return {**head, "response": {**resp, "body": {"error": error}}}
    if action in _LINE_ERRORS:
        error = {"message": f"fake {action}", "type": "server_error", "param": None, "code": None}
        resp = {"status_code": int(action), "request_id": f"req_{state.lines_done}"}
        return {**head, "response": {**resp, "body": {"error": error}}}
    if _CRITIC_MARKER in prompt:
        content, finish = critic_reply(state.replies, prompt), "stop"
    else:
        content, finish = generation_reply(state.replies, prompt, action)
    state.answered[cid] += 1
    reply = completion_body(content, finish, body["model"], prompt)
    resp = {"status_code": 200, "request_id": f"req_{state.lines_done}", "body": reply}
    return {**head, "response": resp}


def _unrun(cid: str, code: str) -> dict:
    message = {
        "batch_expired": "This request could not be executed before the completion window expired.",
        "batch_cancelled": "This request was not executed because the batch was cancelled.",
    }[code]
    return {"id": f"batch_req_{cid}", "custom_id": cid, "response": None,
            "error": {"code": code, "message": message}}  # fmt: skip


def _finish(state: BatchState, b: dict, status: str, unrun_code: str | None = None) -> None:
    rest = b["_lines"][b["_next"] :]
    errors = b["_errors"] + [_unrun(x["custom_id"], unrun_code) for x in rest if unrun_code]
    for kind, rows in (("output_file_id", b["_output"]), ("error_file_id", errors)):
        if rows:
            data = "".join(json.dumps(r) + "\n" for r in rows).encode()
            b[kind] = _new_file(state, data, f"{b['id']}_{kind[:-8]}.jsonl", f"batch_{kind[:-8]}")[
                "id"
            ]
    counts = b["request_counts"]
    counts["failed"] = counts["total"] - counts["completed"]
    b["status"] = status
    b[f"{status}_at"] = _now()


def advance(state: BatchState, b: dict) -> None:
    """One step of a batch's life (called on every retrieve)."""
    status = b["status"]
    if status == "validating":
        if errors := _validate(state, b):
            b.update(status="failed", failed_at=_now(), errors={"object": "list", "data": errors})
            return
        data = state.files[b["input_file_id"]]["data"].decode()
        b["_lines"] = [json.loads(x) for x in data.splitlines() if x.strip()]
        b["request_counts"]["total"] = len(b["_lines"])
        b.update(status="in_progress", in_progress_at=_now())
    elif status == "in_progress":
        number = int(b["id"].split("_")[1])
        for _ in range(state.lines_per_poll):
            if b["_next"] >= len(b["_lines"]):
                break
            if b["_next"] >= state.expire.get(number, len(b["_lines"])):
                return _finish(state, b, "expired", "batch_expired")
            if b["_next"] >= state.cancel.get(number, len(b["_lines"])):
                b.update(status="cancelling", cancelling_at=_now())
                return
            row = _answer(state, b["_lines"][b["_next"]])
            b["_next"] += 1
            ok = row["response"]["status_code"] == 200
            (b["_output"] if ok else b["_errors"]).append(row)
            b["request_counts"]["completed" if ok else "failed"] += 1
        if b["_next"] >= len(b["_lines"]):
            b.update(status="finalizing", finalizing_at=_now())
    elif status == "finalizing":
        _finish(state, b, "completed")
    elif status == "cancelling":
        _finish(state, b, "cancelled", "batch_cancelled")


def _create_batch(state: BatchState, req: dict) -> tuple[int, dict]:
    if req.get("input_file_id") not in state.files:
        return 400, {"error": {"message": "input_file_id not found", "param": "input_file_id"}}
    if req.get("completion_window") != "24h" or req.get("endpoint") != "/v1/chat/completions":
        return 400, {"error": {"message": "completion_window must be 24h; endpoint a chat one"}}
    bid = f"batch_{len(state.batches) + 1}"
    state.batches[bid] = {
        "id": bid, "object": "batch", "endpoint": req["endpoint"], "errors": None,
        "input_file_id": req["input_file_id"], "completion_window": "24h",
        "status": "validating", "output_file_id": None, "error_file_id": None,
        "created_at": _now(), "expires_at": _now() + 86400,
        "request_counts": {"total": 0, "completed": 0, "failed": 0},
        "metadata": req.get("metadata"),
        "_lines": [], "_next": 0, "_output": [], "_errors": [],
    }  # fmt: skip
    return 200, state.public(bid)


def _list(state: BatchState, query: str) -> dict:
    params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
    ids = sorted(state.batches, key=lambda b: int(b.split("_")[1]), reverse=True)
    if after := params.get("after"):
        ids = ids[ids.index(after) + 1 :] if after in ids else []
    limit = int(params.get("limit", 20))
    page = [state.public(b) for b in ids[:limit]]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(ids) > limit,
    }


def _route(state: BatchState, method: str, path: str, query: str, body: bytes, ctype: str):
    """(call name, status, payload) of one request; payload bytes are sent raw."""
    if method == "POST" and path == "/v1/files":
        form = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {ctype}\r\n\r\n".encode() + body)
        parts = {p.get_param("name", header="content-disposition"): p for p in form.iter_parts()}
        purpose = parts["purpose"].get_payload(decode=True).decode() if "purpose" in parts else ""
        if purpose != "batch" or "file" not in parts:
            return "files.create", 400, {"error": {"message": "purpose must be batch, with a file"}}
        upload = parts["file"]
        meta = _new_file(state, upload.get_payload(decode=True), upload.get_filename(), "batch")
        return "files.create", 200, meta
    if m := re.fullmatch(r"/v1/files/([\w-]+)/content", path):
        found = state.files.get(m[1])
        return "files.content", (200 if found else 404), (found["data"] if found else {})
    if method == "POST" and path == "/v1/batches":
        return "batches.create", *_create_batch(state, json.loads(body or b"{}"))
    if method == "GET" and path == "/v1/batches":
        return "batches.list", 200, _list(state, query)
    if m := re.fullmatch(r"/v1/batches/([\w-]+)(/cancel)?", path):
        if m[1] not in state.batches:
            return "batches.retrieve", 404, {"error": {"message": f"no batch {m[1]}"}}
        b = state.batches[m[1]]
        if m[2] and method == "POST":
            if b["status"] in ("validating", "in_progress", "finalizing"):
                b.update(status="cancelling", cancelling_at=_now())
            return "batches.cancel", 200, state.public(m[1])
        advance(state, b)
        return "batches.retrieve", 200, state.public(m[1])
    return "unknown", 404, {"error": {"message": f"no route {method} {path}"}}


def make_app(state: BatchState):
    async def app(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = dict(scope["headers"])
        body = await read_body(receive)
        if state.api_key and headers.get(b"authorization") != f"Bearer {state.api_key}".encode():
            await send_json(send, 401, {"error": {"message": "Incorrect API key provided"}})
            return
        with state.lock:
            call, status, payload = _route(
                state,
                scope["method"],
                scope["path"],
                scope["query_string"].decode(),
                body,
                headers.get(b"content-type", b"").decode(),
            )
            state.calls[call] += 1
            if state.kill_at == (call, state.calls[call]) and state.kill_pid:
                os.kill(state.kill_pid, signal.SIGKILL)
        if isinstance(payload, bytes):
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/octet-stream")]})  # fmt: skip
            await send({"type": "http.response.body", "body": payload})
        else:
            await send_json(send, status, payload)

    return app


class FakeBatchServer(FakeServer):
    """`with FakeBatchServer(BatchState()) as srv: ... srv.url ...`"""

    def __init__(self, state: BatchState, port: int = 0):
        super().__init__(state, port, app=make_app(state))


def main() -> None:
    p = argparse.ArgumentParser(description="Fake OpenAI Files + Batches API (for tests).")
    p.add_argument("--port", type=int, default=8902, help="port on 127.0.0.1 (default: 8902)")
    p.add_argument(
        "--fail-every", type=int, default=0, help="every Nth line fails with 500 (0 = none)"
    )
    args = p.parse_args()
    server = FakeBatchServer(BatchState(fail_every=args.fail_every), args.port)
    serve_until_interrupted(server, "fake batch API at {url}")


if __name__ == "__main__":
    main()
