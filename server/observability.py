"""Request logs and Prometheus metrics for the gateway.

Logs are one JSON object per line on the `server` logger: request id, route, status, latency,
token counts and a short hash of the API key; message text only when LOG_LEVEL=DEBUG, never keys.
Metrics live in a registry per app (so several gateways can share a process in tests) and are
served at GET /metrics in the Prometheus text format.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LOGGER = logging.getLogger("server")
LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "event", ...fields}`: fields come from `extra={"fields": {...}}`."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        return json.dumps(line, ensure_ascii=False)


def setup_logging(level: str = "INFO") -> None:
    """Send the `server` logger's JSON lines to stderr (idempotent)."""
    LOGGER.setLevel(level.upper())
    if not any(getattr(h, "_socratic", False) for h in LOGGER.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler._socratic = True  # type: ignore[attr-defined]
        LOGGER.addHandler(handler)
    LOGGER.propagate = False


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    LOGGER.log(level, event, extra={"fields": fields})


def key_id(key: str | None) -> str | None:
    """A short, non-reversible label for an API key (for logs and per-key limits)."""
    return hashlib.sha256(key.encode()).hexdigest()[:8] if key else None


class Metrics:
    """The gateway's Prometheus metrics, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "gateway_requests",
            "Requests by route and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "gateway_request_latency_seconds",
            "Time to the full answer, seconds.",
            ["route"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.first_token = Histogram(
            "gateway_time_to_first_token_seconds",
            "Streaming: time to the first content chunk.",
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.tokens = Counter(
            "gateway_tokens", "Tokens reported by the engine.", ["kind"], registry=self.registry
        )
        self.in_flight = Gauge(
            "gateway_in_flight_requests", "Chat requests being answered.", registry=self.registry
        )
        self.engine_errors = Counter(
            "gateway_engine_errors", "Engine failures by code.", ["code"], registry=self.registry
        )
