"""The JSONL line formats of a batch: request lines (`request_line`) and result lines of either
service, OpenAI's output and error files and vLLM's output (`parse_line`, `read_results`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datagen.client import Reply
from tutor.io import DataError

ENDPOINT = "/v1/chat/completions"


@dataclass
class Line:
    """One request's result: a reply, or why there is none."""

    custom_id: str
    reply: Reply | None = None
    error: str = ""  # one line
    status: int | None = None  # the request's HTTP status; None for batch-level failures
    code: str | None = None  # e.g. "batch_expired", "batch_cancelled"
    param: str | None = None


def request_line(custom_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body}


def parse_line(obj: Any) -> Line:
    """Read a result line of either service (OpenAI's output and error files, vLLM's output)."""
    if not isinstance(obj, dict) or not isinstance(obj.get("custom_id"), str):
        raise ValueError("not a batch result line (no custom_id)")
    resp = obj.get("response") if isinstance(obj.get("response"), dict) else {}
    status, body = resp.get("status_code"), resp.get("body")
    if status == 200 and isinstance(body, dict) and isinstance(body.get("choices"), list):
        return Line(obj["custom_id"], reply=_reply(body))
    err = obj.get("error") or (body.get("error") if isinstance(body, dict) else None)
    if isinstance(err, dict) and isinstance(err.get("error"), dict):
        err = err["error"]  # vLLM nests an ErrorResponse
    if isinstance(err, dict):
        message, code, param = err.get("message"), err.get("code"), err.get("param")
    else:
        message, code, param = err, None, None
    message = " ".join(str(message or f"status {status}").split())[:300]
    return Line(
        obj["custom_id"],
        error=message,
        status=status if isinstance(status, int) and status != 200 else None,
        code=str(code) if code is not None and not isinstance(code, int) else None,
        param=param if isinstance(param, str) else None,
    )


def _reply(body: dict) -> Reply:
    choice = body["choices"][0] if body["choices"] else {}
    usage = body.get("usage") or {}
    return Reply(
        text=(choice.get("message") or {}).get("content") or "",
        finish_reason=choice.get("finish_reason"),
        prompt_tokens=usage.get("prompt_tokens") or 0,
        completion_tokens=usage.get("completion_tokens") or 0,
    )


def read_results(paths: list[Path], ids: list[str]) -> dict[str, Line]:
    """Every id's line; an id with no line gets a failure, a line for no id is ignored."""
    wanted, out = set(ids), {}
    for path in paths:
        with path.open(encoding="utf-8") as f:
            for lineno, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                try:
                    line = parse_line(json.loads(raw))
                except ValueError as e:
                    raise DataError(f"{path}:{lineno}: {e}") from None
                if line.custom_id in wanted and (line.reply or line.custom_id not in out):
                    out[line.custom_id] = line
    for cid in ids:
        out.setdefault(cid, Line(cid, error="no result line for this request", code="missing"))
    return out
