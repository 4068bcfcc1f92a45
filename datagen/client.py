"""The generator's chat client: `tutor.openai_client`, the project's one retrying client of
OpenAI-compatible endpoints (bounded concurrency, retries with backoff on 429/5xx/timeouts, fail
fast on a bad key or model, a circuit breaker, optional parameters adapted to after a 400).
Its names stay importable from here."""

from __future__ import annotations

from tutor.openai_client import (
    CallStats,
    Endpoint,
    FatalError,
    ParamFallback,
    Reply,
    RequestFailed,
    RetryPolicy,
    error_message,
)
from tutor.openai_client import retry_after_s as _retry_after

__all__ = [
    "CallStats",
    "Endpoint",
    "FatalError",
    "ParamFallback",
    "Reply",
    "RequestFailed",
    "RetryPolicy",
    "_retry_after",
    "error_message",
]
