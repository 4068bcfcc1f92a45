"""API keys and per-key limits for the gateway: pure logic, no HTTP.

    who = authenticate(request.headers.get("authorization"), settings.api_keys)  # or RequestError 401
    limiter.acquire(who); ...; limiter.release(who)                             # or RequestError 429

Keys are compared with `hmac.compare_digest` against every configured key (no early exit), so the
time taken does not tell which key or how much of it matched.
"""

from __future__ import annotations

import hmac
import math
import time
from collections import defaultdict, deque

from server.chat_request import RequestError
from server.observability import key_id


def authenticate(header: str | None, keys: tuple[str, ...]) -> str | None:
    """Return the caller's key label (None when no keys are configured); raise 401 otherwise."""
    if not keys:
        return None
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise RequestError(
            401,
            "missing API key: send 'Authorization: Bearer <key>'",
            "missing_api_key",
            type_="authentication_error",
        )
    token = token.strip()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(token.encode(), key.encode())
    if not matched:
        raise RequestError(401, "invalid API key", "invalid_api_key", type_="authentication_error")
    return key_id(token)


_PRUNE_EVERY = 1024  # acquisitions between sweeps of idle callers' rate windows


class KeyLimiter:
    """At most `max_in_flight` concurrent requests and `per_minute` requests (0 = unlimited) in any
    sliding 60 s window, per caller."""

    def __init__(self, max_in_flight: int, per_minute: int = 0):
        self.max_in_flight = max_in_flight
        self.per_minute = per_minute
        self.in_flight: dict[str, int] = defaultdict(int)
        self.recent: dict[str, deque[float]] = defaultdict(deque)
        self._acquired = 0

    def acquire(self, who: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self.per_minute:
            window = self.recent[who]
            while window and now - window[0] >= 60.0:
                window.popleft()
            if len(window) >= self.per_minute:
                wait = max(1, math.ceil(60.0 - (now - window[0])))
                raise RequestError(
                    429,
                    f"rate limit: at most {self.per_minute} requests per minute",
                    "rate_limit_exceeded",
                    type_="rate_limit_error",
                    retry_after=wait,
                )
        if self.in_flight[who] >= self.max_in_flight:
            raise RequestError(
                429,
                f"concurrency limit: at most {self.max_in_flight} requests at once",
                "concurrency_limit_exceeded",
                type_="rate_limit_error",
                retry_after=1,
            )
        if self.per_minute:
            self.recent[who].append(now)
            self._acquired += 1
            if self._acquired % _PRUNE_EVERY == 0:
                self.prune(now)
        self.in_flight[who] += 1

    def prune(self, now: float) -> None:
        """Forget callers with no request in the last minute (bounded memory without keys)."""
        for stale in [w for w, q in self.recent.items() if not q or now - q[-1] >= 60.0]:
            del self.recent[stale]

    def release(self, who: str) -> None:
        self.in_flight[who] -= 1
        if self.in_flight[who] <= 0:
            del self.in_flight[who]
